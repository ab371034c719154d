"""The dataset checks: loading, labels, disjoint and seeded splits, normalisation, balance."""

from __future__ import annotations

import hashlib

import torch

from ..errors import DataError
from ..specs import DataRequest, DatasetSpec, RealData
from ..streaming import Images
from .base import (
    CheckResult,
    Checks,
    NotChecked,
    Skip,
    chunks,
    moments,
    one_line,
    run_checks,
)

SHARED_IMAGES = 0.01
"""Images that appear in two splits, as a share of the smaller split, before they count as a leak
(real datasets hold a few exact duplicates; a leaked split shares nearly all)."""
MEAN_TOLERANCE, STD_FACTOR = 0.05, 1.5
"""The normalised training split must have a per-channel mean within ``MEAN_TOLERANCE`` of 0 and
a std within a factor ``STD_FACTOR`` of 1: the literature's CIFAR-10 and Tiny-ImageNet stds are
means of per-image stds, which leave up to 1.3."""
BALANCE = 1.5
"""A balanced dataset's largest class is at most this many times its smallest (MNIST: 1.24)."""


def _image_keys(x: Images) -> list[bytes]:
    """One fingerprint per image (a hash of its bytes), to compare splits."""
    return [
        hashlib.blake2b(row.tobytes(), digest_size=16).digest()
        for chunk in chunks(x)
        for row in chunk.reshape(len(chunk), -1).contiguous().numpy()
    ]


def _class_counts(y: torch.Tensor, k: int) -> torch.Tensor:
    """Images per class; labels out of range are the labels check's business."""
    return torch.bincount(y[(y >= 0) & (y < k)], minlength=k)


def _same_split(a: RealData, b: RealData, split: str) -> bool:
    xa, xb = getattr(a, f"{split}_x"), getattr(b, f"{split}_x")
    return (
        xa.shape == xb.shape
        and all(torch.equal(p, q) for p, q in zip(chunks(xa), chunks(xb)))
        and torch.equal(getattr(a, f"{split}_y"), getattr(b, f"{split}_y"))
    )


class _DatasetChecks:
    def __init__(self, spec: DatasetSpec):
        self.spec = spec
        self.data: RealData | None = None
        self.missing = False
        self.test_same: tuple[bool, bool] | None = None

    def checks(self) -> Checks:
        return [
            ("loads", self.loads),
            ("labels", self.labels),
            ("disjoint-splits", self.disjoint),
            ("val-seeded", self.val_seeded),
            ("test-fixed", self.test_fixed),
            ("normalisation", self.normalisation),
            ("balanced", self.balanced),
        ]

    def _need(self) -> RealData:
        if self.missing:
            raise Skip("its data is not on this machine (see loads)")
        if self.data is None:
            raise NotChecked("it did not load")
        return self.data

    def loads(self) -> tuple[bool, str]:
        try:
            data = self.spec.load(DataRequest(seed=0))
        except DataError as exc:
            self.missing = True
            raise Skip(f"its data is not on this machine: {one_line(exc)}") from None
        if not isinstance(data, RealData):
            return False, f"load returns {type(data).__name__}, not RealData"
        if data.name != self.spec.name:
            return False, f"RealData.name is {data.name!r}; it must be the registered name {self.spec.name!r}"
        for split in ("train", "val", "test"):
            x = getattr(data, f"{split}_x")
            if not all(chunk.is_floating_point() and torch.isfinite(chunk).all() for chunk in chunks(x)):
                return False, f"{split} images are not finite floats"
        self.data = data
        c, h, w = data.train_x.shape[1:]
        return True, (
            f"{len(data.train_y)} train, {len(data.val_y)} val, {len(data.test_y)} test images of {c}x{h}x{w},"
            f" {data.num_classes} classes"
        )

    def labels(self) -> tuple[bool, str]:
        data = self._need()
        k = data.num_classes
        if len(set(data.classes)) != k:
            return False, f"class names repeat: {list(data.classes)}"
        for split in ("train", "val", "test"):
            y = getattr(data, f"{split}_y")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
                return False, f"{split} labels span {int(y.min())}..{int(y.max())}, but there are {k} classes"
        empty = [data.classes[c] for c, n in enumerate(data.class_counts().tolist()) if n == 0]
        if empty:
            return False, f"no training images for class {', '.join(map(repr, empty))}"
        return True, f"labels of every split in 0..{k - 1}; every class has training images"

    def disjoint(self) -> tuple[bool, str]:
        data = self._need()
        keys = {split: set(_image_keys(getattr(data, f"{split}_x"))) for split in ("train", "val", "test")}
        shared = []
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            n, smaller = len(keys[a] & keys[b]), min(len(keys[a]), len(keys[b]))
            if n > SHARED_IMAGES * smaller:
                return False, f"{n} images appear in both {a} and {b} ({n / smaller:.0%} of the smaller split)"
            if n:
                shared.append(f"{n} in both {a} and {b}")
        if shared:
            return True, f"under {SHARED_IMAGES:.0%} of a split shared (duplicates in the source?): {', '.join(shared)}"
        return True, "no image appears in two of train, val and test"

    def val_seeded(self) -> tuple[bool, str]:
        a = self._need()
        again, other = self.spec.load(DataRequest(seed=0)), self.spec.load(DataRequest(seed=1))
        self.test_same = (_same_split(a, again, "test"), _same_split(a, other, "test"))
        if len(a.val_y) == 0:
            return False, "the validation split is empty (asked for val_fraction=0.1)"
        if not _same_split(a, again, "val"):
            return False, "seed 0 twice gives different validation splits"
        if _same_split(a, other, "val"):
            return False, "seeds 0 and 1 give the same validation split; carve it with the request's seed"
        if sorted(_image_keys(a.train_x) + _image_keys(a.val_x)) != sorted(
            _image_keys(other.train_x) + _image_keys(other.val_x)
        ):
            return False, "seeds 0 and 1 carve validation out of different training images"
        return (
            True,
            f"{len(a.val_y)} validation images, fixed for seed 0, others for seed 1, from the same training pool",
        )

    def test_fixed(self) -> tuple[bool, str]:
        self._need()
        if self.test_same is None:
            raise NotChecked("the seeded loads failed")
        again, other = self.test_same
        if not again:
            return False, "loading twice with seed 0 gives different test splits"
        if not other:
            return False, "the test split changes with the seed (0 vs 1)"
        return True, "the same test images and labels for seeds 0 and 1"

    def normalisation(self) -> tuple[bool, str]:
        data = self._need()
        mean, std = moments(data.train_x, data.val_x)  # the training split, before validation was carved
        figures = f"mean {[round(v, 3) for v in mean.tolist()]}, std {[round(v, 3) for v in std.tolist()]}"
        if (mean.abs() > MEAN_TOLERANCE).any() or (std > STD_FACTOR).any() or (std < 1 / STD_FACTOR).any():
            return False, (
                f"normalised training images have {figures}; mean/std must be the training split's"
                f" (mean within {MEAN_TOLERANCE} of 0, std within x{STD_FACTOR} of 1)"
            )
        return True, f"normalised training images have {figures}"

    def balanced(self) -> tuple[bool, str]:
        data = self._need()
        train, test = (_class_counts(y, data.num_classes) for y in (torch.cat([data.train_y, data.val_y]), data.test_y))
        figures = f"train {int(train.min())}..{int(train.max())}, test {int(test.min())}..{int(test.max())} per class"
        if not self.spec.balanced:
            return True, f"declared balanced=False: {figures}"
        for counts in (train, test):
            if len(counts) and (counts.min() == 0 or counts.max() > BALANCE * counts.min()):
                return False, f"{figures}, more than x{BALANCE} apart (declare balanced=False if that is the data)"
        return True, figures


def dataset_checks(spec: DatasetSpec) -> list[CheckResult]:
    """Check a dataset: labels, disjoint splits, seeded validation, fixed test, normalisation, balance.

    A loader that raises ``DataError`` (its files are missing) is skipped, not failed.
    """
    return run_checks("dataset", spec.name, _DatasetChecks(spec).checks())
