"""Partition and expansion (IDM's "number sign" augmentation, IDC's multi-formation, M3D's
factor and up-sampling): each stored image holds ``factor x factor`` smaller images, and
training reads each of them upsampled to the full size, so ``ipc`` stored images give
``ipc * factor**2`` training images of the class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dd_bench.errors import ConfigError
from dd_bench.fresh import FreshConfig, FreshMatcher


def expand(images: Tensor, factor: int) -> Tensor:
    """``[n,C,H,W]`` -> ``[n*factor**2,C,H,W]``: every image's patches (a ``factor x factor``
    grid, row-major), each upsampled bilinearly to ``H x W``; patch ``k`` of image ``i`` is row
    ``k*n + i``."""
    if factor == 1:
        return images
    size = images.shape[-2:]
    patches = [p for band in images.tensor_split(factor, dim=2) for p in band.tensor_split(factor, dim=3)]
    return torch.cat([F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in patches])


def pack(images: Tensor, factor: int) -> Tensor:
    """The reverse, to start from real images: ``[n*factor**2,C,H,W]`` -> ``[n,C,H,W]``, row
    ``k*n + i`` shrunk into patch ``k`` of image ``i``."""
    if factor == 1:
        return images
    n, (h, w) = len(images) // factor**2, images.shape[-2:]
    out = images.new_empty((n, *images.shape[1:]))
    k = 0
    for rows in torch.arange(h).tensor_split(factor):
        for cols in torch.arange(w).tensor_split(factor):
            part = images[k * n : (k + 1) * n]
            out[:, :, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = F.interpolate(
                part, size=(len(rows), len(cols)), mode="bilinear", align_corners=False)  # fmt: skip
            k += 1
    return out


@dataclass(frozen=True)
class ExpandConfig(FreshConfig):
    factor: int = 2
    """Each stored image holds factor x factor images (1: no partitioning)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.factor < 1:
            raise ConfigError(f"factor={self.factor} is not allowed: use an integer >= 1")


class ExpandedMatcher(FreshMatcher):
    """A fresh-network matcher whose stored images are partitioned and expanded by ``factor``.

    With real initialisation each patch starts as a different real image of the class,
    shrunk. The returned set holds the expanded images (what training reads), so a class has
    ``ipc * factor**2`` of them; its ``ipc`` stays the stored budget and its metadata says both.
    """

    def __init__(self, request: Any):
        super().__init__(request)
        factor, (h, w) = self.config.factor, self.data.train_x.shape[-2:]
        if factor > min(h, w):
            raise ConfigError(f"factor={factor} is not allowed for {h}x{w} images: use 1 <= factor <= {min(h, w)}")

    def init_images(self) -> Tensor:
        factor = self.config.factor
        if self.config.init == "noise" or factor == 1:
            return super().init_images()
        return torch.cat([
            pack(torch.cat([self.real_batch(c, self.ipc).cpu() for _ in range(factor**2)]), factor)  # a draw per patch
            for c in range(self.num_classes)
        ])

    def to_normalised(self, images: Tensor) -> Tensor:
        """The stored images in the data's normalised space (where they are stored, by default)."""
        return images

    def expanded_class(self, c: int) -> Tensor:
        """The training images of class ``c``: its stored images, expanded, normalised."""
        return self.to_normalised(expand(self.class_images(c), self.config.factor))

    def result(self) -> tuple[Tensor, Tensor]:
        images = torch.cat([self.expanded_class(c).detach() for c in range(self.num_classes)])
        per_class = self.ipc * self.config.factor**2
        return images, torch.arange(self.num_classes, device=images.device).repeat_interleave(per_class)

    def result_metadata(self) -> dict[str, Any]:
        return {"factor": self.config.factor, "stored_per_class": self.ipc, "images_per_class": self.ipc * self.config.factor**2}
