"""Latent spaces for optimal quantization: an encoder ``[N,C,H,W] -> [N,d]`` and its decoder.

``pixel``  the identity (flattened normalised images);
``pca``    the top principal components of the training split (fitted per dataset);
``ae``     a small convolutional autoencoder trained on the training split, cached on disk;
``vae``    a pretrained diffusers ``AutoencoderKL`` (optional dependency, local weights only).

Images arrive and leave in the dataset's normalised space. Encoding and decoding run in
batches on the requested device.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dd_bench.plugin import (
    ConfigError,
    DataError,
    RealData,
    atomic_torch_save,
    batches,
    cache_lock,
    data_fingerprint,
    seeded_build,
)

AE_FORMAT_VERSION = 1


@dataclass
class Latent:
    """Base class: batched ``encode``/``decode`` between normalised images and ``[N, d]`` latents."""

    shape: tuple[int, int, int]
    device: torch.device
    batch_size: int = 1024
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "latent"

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[N,C,H,W]`` (any device) -> ``[N, d]`` float32 on ``self.device``."""
        out = None  # filled in place: one copy of the latents, never a list of chunks and their concatenation
        for s in range(0, x.shape[0], self.batch_size):
            xb = x[s : s + self.batch_size]
            z = self._encode(xb.to(self.device, torch.float32)).reshape(len(xb), -1)
            if out is None:
                out = torch.empty(x.shape[0], z.shape[1], dtype=z.dtype, device=self.device)
            out[s : s + len(xb)] = z
        return out if out is not None else torch.zeros(0, 0, device=self.device)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, d]`` -> ``[N,C,H,W]`` float32 on ``self.device``."""
        out = [
            self._decode(z[s : s + self.batch_size].to(self.device, torch.float32))
            for s in range(0, z.shape[0], self.batch_size)
        ]
        return torch.cat(out).reshape(z.shape[0], *self.shape)


class PixelLatent(Latent):
    """The identity: quantization in (normalised) pixel space."""

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], *self.shape)


class PCALatent(Latent):
    """Coordinates on the top ``components`` principal axes of the training split (not whitened).

    Not whitened on purpose: distances in this space are pixel distances within the principal
    subspace, so the quantization error stays comparable with pixel space. Fitted from the
    exact covariance (float64 ``eigh``), so no random draw is involved.
    """

    def __init__(self, shape, device, mean: torch.Tensor, axes: torch.Tensor, info: dict[str, Any]):
        super().__init__(shape=shape, device=device, info=info, name="pca")
        self.mean, self.axes = mean.to(device), axes.to(device)

    @classmethod
    def fit(cls, train_x: torch.Tensor, components: int, device: torch.device, chunk: int = 8192) -> PCALatent:
        shape = tuple(train_x.shape[1:])
        dim = train_x[0].numel()
        n = train_x.shape[0]
        k = min(components, dim)
        chunk = max(1, min(chunk, 2**28 // (dim * 8)))  # at most 256 MiB of float64 rows at a time
        mean = torch.zeros(dim, dtype=torch.float64, device=device)
        for s in range(0, n, chunk):
            mean += train_x[s : s + chunk].reshape(-1, dim).to(device, torch.float64).sum(0)
        mean /= n
        cov = torch.zeros(dim, dim, dtype=torch.float64, device=device)
        for s in range(0, n, chunk):
            xb = train_x[s : s + chunk].reshape(-1, dim).to(device, torch.float64) - mean
            cov += xb.T @ xb
        cov /= max(1, n - 1)
        values, vectors = torch.linalg.eigh(cov)  # ascending
        values, vectors = values.flip(0), vectors.flip(1)
        axes = vectors[:, :k]
        # a deterministic sign per axis (largest |entry| positive), independent of the LAPACK build
        signs = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True))).squeeze(0)
        axes = axes * torch.where(signs == 0, torch.ones_like(signs), signs)
        total = float(values.clamp_min(0).sum())
        info = {
            "pca_components": k,
            "pca_explained_variance": float(values[:k].clamp_min(0).sum()) / total if total > 0 else 1.0,
        }
        return cls(shape, device, mean.float(), axes.float(), info)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(x.shape[0], -1) - self.mean) @ self.axes

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.axes.T + self.mean).reshape(z.shape[0], *self.shape)


# ------------------------------------------------------------------------------------ autoencoder


class ConvAutoencoder(nn.Module):
    """Two stride-2 convolutions down to a ``channels x ceil(H/4) x ceil(W/4)`` latent and back.

    The decoder upsamples (bilinear) to the recorded sizes, so any image size works (28 -> 14 -> 7).
    """

    def __init__(self, in_channels: int, height: int, width: int, channels: int = 4, hidden: int = 32):
        super().__init__()
        mid = ((height + 1) // 2, (width + 1) // 2)
        low = ((mid[0] + 1) // 2, (mid[1] + 1) // 2)
        self.latent_shape = (channels, *low)
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, 2 * hidden, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * hidden, channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(channels, 2 * hidden, 3, padding=1),
            nn.ReLU(),
            nn.Upsample(size=mid, mode="bilinear", align_corners=False),
            nn.Conv2d(2 * hidden, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Upsample(size=(height, width), mode="bilinear", align_corners=False),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, in_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@dataclass(frozen=True)
class AERecipe:
    """Everything that shapes a trained autoencoder (with the data, the cache key)."""

    channels: int = 4
    hidden: int = 32
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 256
    seed: int = 0


def ae_cache_path(cache_dir: Path, data: RealData, recipe: AERecipe) -> tuple[Path, dict[str, Any]]:
    key = {
        "data": data_fingerprint(data, zca=False),
        "recipe": recipe.__dict__,
        "arch": "ConvAutoencoder",
        "format": AE_FORMAT_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir) / "oq" / "autoencoders" / data.name / f"ae-{digest}.pt", key


def _train_autoencoder(
    data: RealData, recipe: AERecipe, device: torch.device, progress: bool = True
) -> tuple[ConvAutoencoder, list[float]]:
    """Adam on the reconstruction MSE of the training split; model init and batch order seeded."""
    c, h, w = data.train_x.shape[1:]
    model = seeded_build(lambda: ConvAutoencoder(c, h, w, recipe.channels, recipe.hidden), recipe.seed, device)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    generator = torch.Generator().manual_seed(recipe.seed)
    x = data.train_x
    n = x.shape[0]
    losses = []
    model.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        started = time.perf_counter()
        for xb in batches(x, order, recipe.batch_size):
            xb = xb.to(device, non_blocking=True)
            loss = F.mse_loss(model(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * xb.shape[0]
        losses.append(total / n)
        if progress:
            print(
                f"oq autoencoder epoch {epoch + 1}/{recipe.epochs}: mse {losses[-1]:.4f} ({time.perf_counter() - started:.1f}s)",
                file=sys.stderr,
            )
    model.eval()
    return model, losses


class AELatent(Latent):
    """The bottleneck of a :class:`ConvAutoencoder`, flattened."""

    def __init__(self, model: ConvAutoencoder, shape, device, info):
        super().__init__(shape=shape, device=device, info=info, name="ae", batch_size=512)
        self.model = model.to(device).eval()

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(x).flatten(1)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decoder(z.view(z.shape[0], *self.model.latent_shape))

    @classmethod
    def load_or_train(
        cls, data: RealData, recipe: AERecipe, cache_dir: Path, device: torch.device, progress: bool = True
    ) -> AELatent:
        """The cached autoencoder for (data, recipe), training and saving it (atomically) if absent."""
        path, key = ae_cache_path(cache_dir, data, recipe)
        c, h, w = data.train_x.shape[1:]
        model = ConvAutoencoder(c, h, w, recipe.channels, recipe.hidden)
        trained = False
        with cache_lock(path):  # concurrent cells train it once; the others wait and load it
            if path.exists():
                try:
                    blob = torch.load(path, map_location="cpu", weights_only=True)
                    model.load_state_dict(blob["state_dict"])
                    losses = list(blob["losses"])
                except Exception as exc:
                    raise DataError(
                        f"cached autoencoder {path} is unreadable ({type(exc).__name__}: {exc}); delete it to retrain"
                    ) from None
            else:
                if progress:
                    print(f"training the oq autoencoder into {path}", file=sys.stderr)
                model, losses = _train_autoencoder(data, recipe, device, progress)
                state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                blob = {
                    "format_version": AE_FORMAT_VERSION,
                    "key": json.dumps(key, sort_keys=True),
                    "state_dict": state,
                    "losses": losses,
                    "device_type": torch.device(device).type,
                }
                atomic_torch_save(blob, path)
                trained = True
        info = {
            "ae_cache": str(path),
            "ae_trained_now": trained,
            "ae_train_mse": losses[-1] if losses else None,
            "ae_device_type": blob.get("device_type", "unknown"),
        }
        return cls(model, (c, h, w), device, info)


# ------------------------------------------------------------------------------------ diffusers VAE


class VAELatent(Latent):
    """A pretrained diffusers ``AutoencoderKL`` (e.g. Stable Diffusion's), used on local files only.

    Images are de-normalised to [0, 1], grey images repeated to RGB, resized to ``size``
    (a multiple of 8), mapped to [-1, 1]; the latent is the posterior mean times the model's
    scaling factor. Decoding inverts each step (RGB is averaged back to grey).
    """

    def __init__(self, vae: Any, shape, device, mean, std, size: tuple[int, int], info):
        super().__init__(shape=shape, device=device, info=info, name="vae", batch_size=32)
        self.vae = vae.to(device).eval()
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.size = size
        self.scale = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        self.latent_shape: tuple[int, ...] | None = None

    @classmethod
    def load(
        cls, name: str | None, subfolder: str | None, size: int | None, data: RealData, device: torch.device
    ) -> VAELatent:
        if not name:
            raise ConfigError(
                "vae=None is not allowed with latent='vae': give a local path or a cached Hugging Face name (e.g. --set vae=/models/sd-vae)"
            )
        try:
            from diffusers import AutoencoderKL
        except ImportError:
            raise ConfigError(
                "latent='vae' needs the optional dependency diffusers, which is not installed"
                " (pip install diffusers); allowed latents without it: pixel, pca, ae"
            ) from None
        try:
            kwargs = {"subfolder": subfolder} if subfolder else {}
            vae = AutoencoderKL.from_pretrained(name, local_files_only=True, **kwargs)
        except Exception as exc:  # OSError, EnvironmentError, ValueError: all mean "not here"
            raise ConfigError(
                f"vae={name!r}{f' (subfolder {subfolder!r})' if subfolder else ''} could not be loaded from local files"
                f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); dd-bench never downloads weights:"
                " give a folder holding an AutoencoderKL or a name already in the Hugging Face cache"
            ) from None
        c, h, w = data.train_x.shape[1:]
        if c not in (1, 3):
            raise ConfigError(f"latent='vae' works on 1- or 3-channel images; {data.name} has {c}")
        side = size or max(8, 8 * -(-max(h, w) // 8))
        if side % 8:
            raise ConfigError(f"vae_size={size} is not allowed: use a multiple of 8 or none")
        return cls(vae, (c, h, w), device, data.mean, data.std, (side, side), {"vae": name, "vae_size": side})

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * self.std + self.mean).clamp(0, 1)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False) * 2 - 1
        z = self.vae.encode(x.to(self.vae.dtype)).latent_dist.mean * self.scale
        self.latent_shape = tuple(z.shape[1:])
        return z.float().flatten(1)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        x = self.vae.decode(self.unflatten(z).to(self.vae.dtype) / self.scale).sample.float()
        return self.from_unit((x + 1) / 2)

    def unflatten(self, z: torch.Tensor) -> torch.Tensor:
        """Flat codes as the VAE's ``[N, C, h, w]`` latents (scaled, as a diffusion model takes them)."""
        if self.latent_shape is None:
            raise RuntimeError("encode before decode: the latent shape is not known yet")
        return z.view(z.shape[0], *self.latent_shape)

    def from_unit(self, x: torch.Tensor) -> torch.Tensor:
        """RGB images in [0, 1] at the VAE's size -> the data's size, channels and normalisation."""
        x = F.interpolate(x.float(), size=self.shape[1:], mode="bilinear", align_corners=False).clamp(0, 1)
        if self.shape[0] == 1:
            x = x.mean(1, keepdim=True)
        return (x - self.mean) / self.std
