"""ZCA whitening as MTT, FTD and DATM use it, in plain torch.

The references call ``kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True)``, ``fit`` it
on the whole (mean/std-normalised) training set and whiten train and test with it. This
module reproduces kornia's semantics exactly:

* each image is flattened in ``C,H,W`` order to a vector of ``D = C*H*W`` features;
* ``mean`` is the per-feature mean over the ``N`` fitting images;
* the covariance is *unbiased*: ``Xc^T Xc / (N - 1)`` (kornia's default ``unbiased=True``);
* with ``cov = U diag(S) U^T``, the regularisation adds ``eps`` to every eigenvalue:
  ``T = U diag(1/sqrt(S + eps)) U^T`` and ``T_inv = U diag(sqrt(S + eps)) U^T``;
* ``transform(x) = (x - mean) @ T`` (so whitened data is centred), and
  ``inverse(y) = y @ T_inv + mean``.

Differences from kornia, none of which changes the maths: the covariance is accumulated
in float64 (one matmul per chunk of images, so the float64 copy of the data is never
materialised) and decomposed with ``torch.linalg.eigh`` in float64, where kornia runs an
SVD in the input's dtype (float32 in the references); eigenvalues are clamped at 0; the
matrices are then rounded to float32 for use. The results agree with kornia (checked
against kornia 0.9.0) to float32 precision, and are deterministic for a given device and thread count.

Memory and time: the covariance is ``D x D`` float64. For 3x32x32 (CIFAR) that is
3072^2 * 8 B = 75 MB; fitting on 50 000 images takes about half a minute on two CPU
cores (float64 matmuls plus a 3072^2 ``eigh``), a second or two on a GPU. For 3x64x64
(Tiny-ImageNet) it is 12288^2 * 8 B = 1.2 GB, and ``eigh`` needs about as much again
plus minutes of CPU; fit once and cache :meth:`ZCA.state_dict`. For 3x128x128 the
covariance alone is 19 GB: do not whiten at that size (the references' ImageNet-subset
runs do not).

The stored state is the eigendecomposition (float32 eigenvectors, float64 eigenvalues),
the mean and ``eps`` (38 MB for CIFAR, 0.6 GB for 3x64x64); ``T`` and ``T_inv`` are rebuilt from it the same way after fitting
and after loading, so a round trip reproduces the transform bit for bit. It contains only
tensors, numbers and strings, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError, DataError
from .runtime import cache_lock
from .specs import RealData, data_fingerprint
from .streaming import materialize
from .synthetic import atomic_torch_save

FORMAT = "dd-bench.zca"
FORMAT_VERSION = 1


class ZCA:
    """A fitted ZCA whitening: ``ZCA.fit(x, eps=0.1)``, then ``transform``/``inverse``."""

    def __init__(
        self,
        mean: torch.Tensor,
        eigenvalues: torch.Tensor,
        eigenvectors: torch.Tensor,
        eps: float,
        image_shape: tuple[int, int, int],
        num_samples: int,
    ):
        """Prefer :meth:`fit` and :meth:`from_state_dict`; this checks and derives ``T``."""
        _check_eps(eps)
        self.image_shape = tuple(int(s) for s in image_shape)
        d = math.prod(self.image_shape)
        shapes_ok = mean.shape == (d,) and eigenvalues.shape == (d,) and eigenvectors.shape == (d, d)
        if len(self.image_shape) != 3 or not shapes_ok:
            raise DataError(
                f"ZCA state does not fit image_shape {list(self.image_shape)} (D={d}): mean {list(mean.shape)}, "
                f"eigenvalues {list(eigenvalues.shape)}, eigenvectors {list(eigenvectors.shape)}"
            )
        self.eps = float(eps)
        self.num_samples = int(num_samples)
        self.mean = mean.to(torch.float64)
        self.eigenvalues = eigenvalues.to(torch.float64).clamp(min=0.0)
        self.eigenvectors = eigenvectors.to(torch.float32)
        if not (self.eigenvalues + self.eps > 0).all():
            raise DataError("ZCA covariance is singular and eps=0: use eps > 0 (the references use 0.1)")
        self._transform = self._matrix(-0.5)
        self._inverse: torch.Tensor | None = None  # built on first use
        self._cache: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}

    # --- fitting -------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        x: torch.Tensor,
        eps: float = 0.1,
        *,
        unbiased: bool = True,
        chunk_size: int = 4096,
        device: torch.device | str | None = None,
    ) -> ZCA:
        """Fit on images ``x`` ``[N,C,H,W]`` (already mean/std-normalised), on ``device``
        (default: ``x``'s; each chunk is moved there).

        ``eps`` is added to the covariance eigenvalues (kornia's ``eps``; MTT/FTD/DATM use
        0.1). ``unbiased`` divides the scatter matrix by ``N - 1`` (kornia's default)
        rather than ``N``. ``chunk_size`` bounds the float64 working copy of the data.
        """
        _check_eps(eps)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            got = f"{x.dtype} {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"ZCA.fit needs a float tensor [N,C,H,W], got {got}")
        n = x.shape[0]
        if n < 2:
            raise DataError(f"ZCA.fit needs at least 2 images, got {n}")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ConfigError(f"chunk_size={chunk_size!r} is not allowed: use an integer >= 1")
        device = torch.device(device) if device is not None else x.device
        flat = x.detach().reshape(n, -1)
        d = flat.shape[1]
        mean = torch.zeros(d, dtype=torch.float64, device=device)
        for chunk in flat.split(chunk_size):
            mean += chunk.to(device).sum(0, dtype=torch.float64)
        mean /= n
        cov = torch.zeros(d, d, dtype=torch.float64, device=device)
        for chunk in flat.split(chunk_size):
            centred = chunk.to(device, torch.float64) - mean
            cov.addmm_(centred.T, centred)
        cov /= n - 1 if unbiased else n
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        del cov
        return cls(mean, eigenvalues, eigenvectors, eps, tuple(x.shape[1:]), n)

    # --- using ---------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """``D = C*H*W``, the number of features per image."""
        return self.mean.numel()

    @property
    def transform_matrix(self) -> torch.Tensor:
        """``T = U diag(1/sqrt(S + eps)) U^T`` (float32, ``[D,D]``, symmetric)."""
        return self._transform

    @property
    def inverse_matrix(self) -> torch.Tensor:
        """``T_inv = U diag(sqrt(S + eps)) U^T`` (float32, ``[D,D]``, symmetric)."""
        if self._inverse is None:
            self._inverse = self._matrix(0.5)
        return self._inverse

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten ``x`` ``[N,C,H,W]``: ``(x - mean) @ T``; differentiable w.r.t. ``x``. A streamed
        split is loaded whole first (whitened images are a new tensor of its size anyway)."""
        x = materialize(x, "ZCA whitening")
        flat = self._flatten(x)
        out = (flat - self._on(x, "mean", self.mean)) @ self._on(x, "T", self._transform)
        return out.view(x.shape)

    __call__ = transform

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`transform`: ``y @ T_inv + mean``; differentiable w.r.t. ``y``."""
        flat = self._flatten(y)
        out = torch.addmm(self._on(y, "mean", self.mean), flat, self._on(y, "T_inv", self.inverse_matrix))
        return out.view(y.shape)

    # --- storing -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this ZCA (CPU tensors, numbers and strings)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "eps": self.eps,
            "image_shape": list(self.image_shape),
            "num_samples": self.num_samples,
            "mean": self.mean.cpu(),
            "eigenvalues": self.eigenvalues.cpu(),
            "eigenvectors": self.eigenvectors.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], device: torch.device | str = "cpu") -> ZCA:
        """Rebuild from :meth:`state_dict`, with its tensors on ``device``."""
        if not isinstance(state, Mapping) or state.get("format") != FORMAT:
            raise DataError(f"not a ZCA state (expected format {FORMAT!r})")
        if state.get("format_version") != FORMAT_VERSION:
            version = state.get("format_version")
            raise DataError(f"ZCA state format_version={version!r} is not supported (supported: {FORMAT_VERSION})")
        try:
            return cls(
                state["mean"].to(device),
                state["eigenvalues"].to(device),
                state["eigenvectors"].to(device),
                state["eps"],
                tuple(state["image_shape"]),
                state["num_samples"],
            )
        except (KeyError, AttributeError, TypeError) as exc:
            raise DataError(f"ZCA state is incomplete or malformed: {exc}") from exc

    def to(self, device: torch.device | str) -> ZCA:
        """A copy whose tensors live on ``device`` (the transform is rebuilt there)."""
        return ZCA.from_state_dict(self.state_dict(), device)

    def __repr__(self) -> str:
        return f"ZCA(image_shape={list(self.image_shape)}, eps={self.eps:g}, num_samples={self.num_samples})"

    # --- internals -----------------------------------------------------------------

    def _matrix(self, power: float) -> torch.Tensor:
        u = self.eigenvectors.to(torch.float64)
        scale = (self.eigenvalues + self.eps).pow(power)
        return ((u * scale) @ u.T).to(torch.float32)

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"ZCA fitted on images {list(self.image_shape)} cannot transform {got}")
        if not x.is_floating_point():
            raise DataError(f"ZCA needs floating-point images, got {x.dtype}")
        return x.reshape(x.shape[0], -1)

    def _on(self, x: torch.Tensor, name: str, value: torch.Tensor) -> torch.Tensor:
        """``value`` on ``x``'s device and dtype, cached so large matrices move once."""
        if value.device == x.device and value.dtype == x.dtype:
            return value
        key = (name, x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = value.to(device=x.device, dtype=x.dtype)
        return self._cache[key]


_FITTED: dict[tuple[str, str], ZCA] = {}
"""This process's fitted ZCAs, by data fingerprint and device (the last few)."""
_KEEP = 2


def fitted_zca(data: RealData, device: torch.device | str = "cpu", cache_dir: Path | None = None) -> ZCA:
    """The ZCA of ``data``'s training split (eps 0.1, as MTT/FTD/DATM), fitted once per
    dataset: kept for this process and, with ``cache_dir``, on disk for other processes
    (Ray workers, later cells). Fitted on ``device``, where the covariance and ``eigh`` are
    fast; results on another device agree to float32 precision, not bit for bit."""
    key = json.dumps(data_fingerprint(data, zca=True), sort_keys=True)
    device = torch.device(device)
    memo_key = (key, str(device))
    if memo_key in _FITTED:
        return _FITTED[memo_key]
    zca = None
    if cache_dir is not None:
        path = Path(cache_dir) / "zca" / f"{data.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with cache_lock(path):
            if path.exists():
                zca = ZCA.from_state_dict(torch.load(path, map_location="cpu", weights_only=True), device)
            else:
                zca = ZCA.fit(data.train_x, device=device)
                atomic_torch_save(zca.state_dict(), path)
    zca = zca or ZCA.fit(data.train_x, device=device)
    while len(_FITTED) >= _KEEP:
        _FITTED.pop(next(iter(_FITTED)))
    _FITTED[memo_key] = zca
    return zca


def _check_eps(eps: object) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ConfigError(f"ZCA eps={eps!r} is not allowed: use a number >= 0 (kornia/MTT use 0.1)")


__all__ = ["ZCA", "fitted_zca"]
