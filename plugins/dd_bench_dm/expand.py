"""Partition and expansion (IDM's "number sign" augmentation, IDC's multi-formation, M3D's
factor and up-sampling): each stored image holds ``factor x factor`` smaller images, and
training reads each of them upsampled to the full size, so ``ipc`` stored images give
``ipc * factor**2`` training images of the class. The host decodes such sets
(``SyntheticSet.factor``, ``dd_bench.synthetic.expand``); this is the matching side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dd_bench.plugin import ConfigError, FreshConfig, FreshMatcher, expand, pack


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
    shrunk. The returned set holds the stored images (``ipc`` per class) with its ``factor``;
    evaluation trains on their ``ipc * factor**2`` expanded images per class.
    """

    def __init__(self, request: Any):
        super().__init__(request)
        self.factor = self.config.factor
        factor, (h, w) = self.config.factor, self.data.train_x.shape[-2:]
        if factor > min(h, w):
            raise ConfigError(f"factor={factor} is not allowed for {h}x{w} images: use 1 <= factor <= {min(h, w)}")

    def init_images(self) -> Tensor:
        factor = self.config.factor
        if self.config.init == "noise" or factor == 1:
            return super().init_images()
        return torch.cat(
            [
                pack(
                    torch.cat([self.real_batch(c, self.ipc).cpu() for _ in range(factor**2)]), factor
                )  # a draw per patch
                for c in range(self.num_classes)
            ]
        )

    def to_normalised(self, images: Tensor) -> Tensor:
        """The stored images in the data's normalised space (where they are stored, by default)."""
        return images

    def expanded_class(self, c: int) -> Tensor:
        """The training images of class ``c``: its stored images, expanded, normalised."""
        return self.to_normalised(expand(self.class_images(c), self.config.factor))

    def result(self) -> tuple[Tensor, Tensor]:
        return self.to_normalised(self.images).detach(), self.labels
