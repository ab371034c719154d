"""Class-folder datasets: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` of PNG or JPEG files.

``image_folder`` takes any such folder (``--data-root DIR``): classes are the train folder
names in sorted order, ``val/`` is the test split (validation is carved from train, as for every
dataset), images keep their own size unless a resolution is asked for, and the normalisation is
the training split's per-channel mean and std. Files are decoded once into the cache
(:mod:`dd_bench.images`) and the splits are streamed from there (never loaded whole; see
:mod:`dd_bench.streaming`). A corrupt or truncated image is refused with its path, not skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dd_bench.plugin import DataError, DataRequest, RealData, StreamedImages, decoded, default_cache_dir, image_files

from ._common import real_data


def class_folders(name: str, split_dir: Path) -> dict[str, Path]:
    """The class subfolders of one split, by folder name; one line when there are none."""
    if not split_dir.is_dir():
        raise DataError(f"{name}: {split_dir} is not a folder (expected {split_dir}/<class>/<image files>)")
    folders = {p.name: p for p in sorted(split_dir.iterdir()) if p.is_dir()}
    if not folders:
        raise DataError(f"{name}: {split_dir} has no class subfolders (expected {split_dir}/<class>/<image files>)")
    return folders


def labelled_files(
    name: str, folders: dict[str, Path], classes: Sequence[str], class_of: Callable[[str], str] = lambda folder: folder
) -> tuple[list[Path], list[int]]:
    """Every image of ``folders`` with its label (the index in ``classes`` of ``class_of(folder)``);
    folders whose class is not in ``classes`` are left out by the caller, empty ones are refused."""
    index = {c: i for i, c in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for folder, path in folders.items():
        found = image_files(path)
        if not found:
            raise DataError(f"{name}: class folder {path} holds no PNG or JPEG files")
        files += found
        labels += [index[class_of(folder)]] * len(found)
    return files, labels


def uint8_stats(x: StreamedImages, chunk_bytes: int = 2**22) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (sample) std of streamed uint8 images in [0, 1] units, rounded to 4
    places, read ``chunk_bytes`` of pixels at a time so the split is never loaded whole."""
    c = x.shape[1]
    total, squares = np.zeros(c), np.zeros(c)
    chunk = max(1, chunk_bytes // int(np.prod(x.image_shape)))
    for s in range(0, len(x), chunk):
        block = x.uint8(slice(s, s + chunk)).astype(np.float64) / 255.0
        total += block.sum(axis=(0, 2, 3))
        squares += (block**2).sum(axis=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / n
    std = np.sqrt(np.maximum(squares - n * mean**2, 0.0) / max(n - 1, 1))
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def folder_data(
    name: str,
    root: Path,
    train: tuple[list[Path], list[int]],
    test: tuple[list[Path], list[int]],
    classes: Sequence[str],
    request: DataRequest,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
) -> RealData:
    """Decode both splits once (cached) and return them streamed from the cache;
    ``mean``/``std`` default to the training split's; ``names``: the classes' human names."""
    cache = default_cache_dir()
    train_x = decoded(f"{name} train", root, train[0], request.resolution, cache)
    if request.test_crop_pct != 1.0 and request.resolution is None:
        raise DataError(
            f"{name}: test_crop_pct={request.test_crop_pct} needs a resolution to crop to: ask for one with --resolution N"
        )
    test_x = decoded(f"{name} val", root, test[0], request.resolution, cache, crop_pct=request.test_crop_pct)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"{name}: train images are {list(train_x.shape[1:])} but val images {list(test_x.shape[1:])}"
            " (channels x height x width); ask for one size with --resolution N"
        )
    if mean is None or std is None:
        mean, std = uint8_stats(train_x)
    return real_data(
        name,
        train_x,
        train[1],
        test_x,
        test[1],
        mean=mean,
        std=std,
        classes=classes,
        request=request,
        test_crop_pct=request.test_crop_pct,
        names=names,
    )


def load_image_folder(request: DataRequest) -> RealData:
    """Any ``DIR/train/<class>/``, ``DIR/val/<class>/`` folder of PNG/JPEG images (``--data-root DIR``)."""
    name = "image_folder"
    if request.root is None:
        raise DataError(
            f"{name}: needs --data-root DIR (or data.root in a suite): a folder holding"
            " train/<class>/ and val/<class>/ of PNG or JPEG files"
        )
    root = Path(request.root).expanduser()
    train_folders, val_folders = class_folders(name, root / "train"), class_folders(name, root / "val")
    classes = tuple(train_folders)
    unknown = sorted(set(val_folders) - set(classes))
    if unknown:
        raise DataError(
            f"{name}: {root / 'val'} has class folder {unknown[0]!r} that {root / 'train'} lacks"
            f" ({len(unknown)} such); every val class must have training images"
        )
    return folder_data(
        name,
        root,
        labelled_files(name, train_folders, classes),
        labelled_files(name, val_folders, classes),
        classes,
        request,
    )
