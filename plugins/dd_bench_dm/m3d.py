"""M3D: dataset condensation by minimising the maximum mean discrepancy (Zhang, Li, Wang, Zeng &
Ge, AAAI 2024).

Per class, the squared MMD between the penultimate features of a real batch and of the
class's expanded synthetic images (at most ``batch_syn_max`` of them, a seeded subset), with
a sum of Gaussian kernels (:func:`mmd`). A fresh network serves ``models_every`` iterations
(the paper's "iteration per random model"); the images take one optimiser step per class.
As in the reference (built on IDC), the images are stored in pixel space, clamped to [0, 1]
at the start of every iteration, and normalised on the way into the network; ``lr_img`` is
therefore a pixel-space rate. Partitioning and expansion (``factor``): see ``expand``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from dd_bench.plugin import ConfigError, Embedder, penultimate

from .expand import ExpandConfig, ExpandedMatcher


@dataclass(frozen=True)
class M3DConfig(ExpandConfig):
    """M3D's hyper-parameters; defaults: the official code's configuration defaults."""

    iterations: int = 5000
    lr_img: float = 5e-3
    """Step size of the images in pixel space ([0, 1])."""
    batch_real: int = 128
    dsa_strategy: str = "color_crop_cutout"
    dsa_mode: Literal["single", "all"] = "all"
    models_every: int = 5
    """Iterations served by one fresh network (the paper's ipm)."""
    batch_syn_max: int = 200
    """Most expanded synthetic images of a class per comparison."""
    kernels: int = 5
    """Gaussian kernels summed, with bandwidths bandwidth * kernel_ratio**(k - kernels//2)."""
    kernel_ratio: float = 2.0
    bandwidth: float | None = None
    """Base bandwidth (squared-distance scale); none: the mean squared distance between the features compared."""
    clamp: bool = True
    """Clamp the images to the pixel range [0, 1] every iteration."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("models_every", "batch_syn_max", "kernels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} is not allowed: use an integer >= 1")
        if not self.kernel_ratio > 0:
            raise ConfigError(f"kernel_ratio={self.kernel_ratio} is not allowed: use a number > 0")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ConfigError(f"bandwidth={self.bandwidth} is not allowed: use a number > 0 or none")


def mmd(x: Tensor, y: Tensor, kernels: int = 5, ratio: float = 2.0, bandwidth: float | None = None) -> Tensor:
    """Squared MMD (biased: diagonals included) between samples ``x`` ``[n,D]`` and ``y`` ``[m,D]``.

    The kernel is ``sum_k exp(-|a - b|^2 / (bandwidth * ratio**(k - kernels//2)))``; without a
    bandwidth, it is the mean squared distance between distinct points of ``x`` and ``y``
    together (a constant for the gradient), as in the reference.
    """
    z = torch.cat([x, y])
    squares = z.square().sum(1)
    dist = (squares[:, None] + squares[None, :] - 2 * z @ z.T).clamp_min(0)
    n = len(z)
    base = dist.detach().sum() / max(n * n - n, 1) if bandwidth is None else torch.as_tensor(bandwidth, dtype=z.dtype)
    scales = base * ratio ** (torch.arange(kernels, device=z.device, dtype=z.dtype) - kernels // 2)
    k = torch.exp(-dist[None] / scales[:, None, None]).sum(0)
    nx = len(x)
    return k[:nx, :nx].mean() - 2 * k[:nx, nx:].mean() + k[nx:, nx:].mean()


class M3D(ExpandedMatcher):
    method = "m3d"

    def __init__(self, request: Any):
        super().__init__(request)
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(self.data.mean, device=self.device).view(shape)
        self.std = torch.tensor(self.data.std, device=self.device).view(shape)
        self.embed: Embedder | None = None

    def init_images(self) -> Tensor:
        return super().init_images() * self.std.cpu() + self.mean.cpu()  # stored in pixel space

    def to_normalised(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std

    def syn_batch(self, c: int) -> Tensor:
        images = self.expanded_class(c)
        if len(images) > self.config.batch_syn_max:
            images = images[
                torch.randperm(len(images), generator=self.rng)[: self.config.batch_syn_max].to(self.device)
            ]
        return images

    def step(self, iteration: int) -> float:
        cfg: M3DConfig = self.config
        if self.embed is None or iteration % cfg.models_every == 0:
            self.embed = penultimate(self.fresh_network().requires_grad_(False))
        if cfg.clamp:
            with torch.no_grad():
                self.images.clamp_(0, 1)
        total = 0.0
        for _, real, syn in self.class_batches(self.syn_batch):
            with torch.no_grad():
                real_features = self.embed(real)
            loss = mmd(self.embed(syn), real_features, cfg.kernels, cfg.kernel_ratio, cfg.bandwidth)
            self.update_images(loss)
            total += loss.item()
        return total / self.num_classes

    def policy_state(self) -> dict[str, Any]:
        return {"net": self.embed.model.state_dict() if self.embed is not None else None}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        if state["net"] is not None:
            net = self.request.build_model(0).train().requires_grad_(False)
            net.load_state_dict(state["net"])
            self.embed = penultimate(net)
