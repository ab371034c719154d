"""Datasets that need no files: ``digits`` for smoke runs, ``toy`` for tests.

Both are built in memory from fixed seeds, so every machine sees the same pixels and the
same test split; only the validation slice follows the request's seed.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from dd_bench.plugin import DataRequest, RealData, split_train_val

from ._common import channel_stats, real_data

DIGITS_SIZE = 16
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0

TOY_CLASSES = ("horizontal", "vertical", "checker", "border")
TOY_SIZE = 8
TOY_TRAIN_PER_CLASS = 100
TOY_TEST_PER_CLASS = 25
TOY_SEED = 0


@lru_cache(maxsize=1)
def _digits_splits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's digits in [0, 1], upsampled to 16x16, with the fixed stratified test split.

    Cached in memory (sklearn's import and the resize are the slow part); callers only
    index into these tensors, which copies.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # 16 grey levels
    x = F.interpolate(x, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    return split_train_val(x, y, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)


def load_digits(request: DataRequest) -> RealData:
    """8x8 digits upsampled to 16x16: a real (if easy) dataset that distils in seconds on a CPU.

    mean/std come from the fixed 80% train split, so they do not move with the val seed.
    """
    train_x, train_y, test_x, test_y = _digits_splits()
    mean, std = channel_stats(train_x)
    return real_data(
        "digits",
        train_x,
        train_y,
        test_x,
        test_y,
        mean=mean,
        std=std,
        classes=[str(i) for i in range(10)],
        request=request,
        scale=1.0,
    )


def _toy_patterns() -> torch.Tensor:
    """One 0/1 template per class; they overlap little, so a linear model separates them."""
    r = torch.arange(TOY_SIZE).view(-1, 1).expand(TOY_SIZE, TOY_SIZE)
    c = r.t()
    edge = TOY_SIZE - 1
    return torch.stack(
        [
            r % 2 == 0,
            c % 2 == 0,
            (r + c) % 2 == 0,
            (r == 0) | (c == 0) | (r == edge) | (c == edge),
        ]
    ).float()


def _toy_split(per_class: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` noisy copies of every template, pixels clamped to [0, 1]."""
    y = torch.arange(len(TOY_CLASSES)).repeat(per_class)
    x = 0.2 + 0.6 * _toy_patterns()[y] + 0.15 * torch.randn(len(y), TOY_SIZE, TOY_SIZE, generator=g)
    return x.clamp_(0.0, 1.0).unsqueeze(1), y


def load_toy(request: DataRequest) -> RealData:
    """4 classes of 1x8x8 noisy stripes/checks/borders: deterministic, learnable, built in milliseconds."""
    g = torch.Generator().manual_seed(TOY_SEED)
    train_x, train_y = _toy_split(TOY_TRAIN_PER_CLASS, g)
    test_x, test_y = _toy_split(TOY_TEST_PER_CLASS, g)
    mean, std = channel_stats(train_x)
    return real_data(
        "toy",
        train_x,
        train_y,
        test_x,
        test_y,
        mean=mean,
        std=std,
        classes=TOY_CLASSES,
        request=request,
        scale=1.0,
    )
