"""dd-bench's built-in datasets, registered like any third-party plugin.

Every loader returns normalised float32 ``[N,C,H,W]`` images, int64 labels, the real class
names, and a validation split carved from train with the request's fraction and seed.
Missing or corrupt files raise ``DataError`` saying where we looked and how to get them.
torchvision, scikit-learn and PIL are imported only when a loader runs, so listing
plugins stays fast.
"""

from __future__ import annotations

from dd_bench.plugin import DatasetSpec, hookimpl

from .folder import load_image_folder
from .idx import read_idx
from .imagenet import dataset_specs as imagenet_specs
from .small import load_digits, load_toy
from .vision import (
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    load_mnist,
    load_svhn,
    load_tiny_imagenet,
    reorganise_tiny_imagenet_val,
)

__all__ = [
    "ddb_register_datasets",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mnist",
    "load_svhn",
    "load_tiny_imagenet",
    "load_toy",
    "read_idx",
    "reorganise_tiny_imagenet_val",
]


@hookimpl
def ddb_register_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            "fashion_mnist",
            load_fashion_mnist,
            "Fashion-MNIST 1x28x28, 10 classes (Debian dataset-fashion-mnist, --data-root or --download)",
        ),
        DatasetSpec("mnist", load_mnist, "MNIST 1x28x28, 10 classes (--data-root or --download)"),
        DatasetSpec("cifar10", load_cifar10, "CIFAR-10 3x32x32, 10 classes (--data-root or --download)"),
        DatasetSpec("cifar100", load_cifar100, "CIFAR-100 3x32x32, 100 classes (--data-root or --download)"),
        DatasetSpec(
            "svhn",
            load_svhn,
            "SVHN cropped digits 3x32x32, 10 classes (--data-root or --download)",
            balanced=False,  # digit 1 is about three times as common as 9
        ),
        DatasetSpec(
            "tiny_imagenet",
            load_tiny_imagenet,
            "Tiny-ImageNet-200 3x64x64, 200 classes; val is the test split (--data-root or --download)",
        ),
        DatasetSpec(
            "image_folder",
            load_image_folder,
            "any DIR/train/<class>/, DIR/val/<class>/ of PNG or JPEG files (--data-root DIR, --resolution N)",
        ),
        DatasetSpec("digits", load_digits, "scikit-learn digits upsampled to 1x16x16, 10 classes; no files needed"),
        DatasetSpec("toy", load_toy, "synthetic 1x8x8, 4 classes, 400 train images; for tests"),
        *imagenet_specs(),
    ]
