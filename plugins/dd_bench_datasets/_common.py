"""Shared plumbing: where files live, uint8 pixels -> normalised float32 -> ``RealData``.

Every loader ends in :func:`real_data`, so the validation split, the dtype rules and the
label checks are the same for every dataset, built-in or not.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from dd_bench.plugin import (
    DataError,
    DataRequest,
    RealData,
    StreamedImages,
    default_cache_dir,
    normalise,
    train_val_positions,
)

T = TypeVar("T")

DOWNLOAD_HINT = "pass --download to let torchvision fetch them"
ROOT_HINT = "point --data-root DIR at a folder that holds them"


def default_root() -> Path:
    """Where downloads go without ``--data-root``: ``data/`` in the host's cache (``$DD_BENCH_CACHE``)."""
    return default_cache_dir() / "data"


def data_root(request: DataRequest) -> Path:
    """The user's ``--data-root`` if given, else :func:`default_root`."""
    return Path(request.root).expanduser() if request.root is not None else default_root()


def unique_paths(paths: Iterable[Path]) -> list[Path]:
    """``paths`` without repeats, first occurrence kept (the search order matters)."""
    seen: dict[Path, None] = {}
    for p in paths:
        seen.setdefault(Path(p), None)
    return list(seen)


def missing(name: str, what: str, looked_in: Sequence[Path], *hints: str, reason: str | None = None) -> DataError:
    """One message that says what was missing, where we looked and how to get it."""
    where = ", ".join(str(p) for p in looked_in)
    msg = f"{name}: {what} not found in {where}"
    if reason:
        msg += f" ({reason})"
    return DataError(msg + "; to fix: " + "; or ".join(hints))


# What torchvision raises for missing, corrupt or undownloadable files. Anything else is a
# bug and keeps its traceback.
TORCHVISION_ERRORS = (RuntimeError, OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError)


def open_torchvision(name: str, make: Callable[[], T], where: Path, what: str, download: bool) -> T:
    """Build a torchvision dataset; its 'Dataset not found' and download errors become one ``DataError``."""
    try:
        return make()
    except TORCHVISION_ERRORS as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = reason.split(". You can use download=True")[0]  # torchvision's advice, not ours
        if download:
            raise missing(
                name,
                what,
                [where],
                "check the network, or download the files yourself and " + ROOT_HINT,
                reason=f"download failed: {reason}",
            ) from exc
        raise missing(name, what, [where], ROOT_HINT, DOWNLOAD_HINT, reason=f"torchvision: {reason}") from exc


def nhwc_to_nchw(images: np.ndarray) -> torch.Tensor:
    """``[N,H,W,C]`` uint8 (torchvision's CIFAR layout) as a contiguous ``[N,C,H,W]`` tensor, still uint8."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``[N,C,H,W]``, rounded to 4 places like the literature's constants.

    Rounding keeps the recorded numbers readable and identical across platforms whose
    float summation order differs.
    """
    x = x.to(torch.float64)
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).tolist()
    return tuple(round(v, 4) for v in mean), tuple(round(v, 4) for v in std)


def real_data(
    name: str,
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    classes: Iterable[Any],
    request: DataRequest,
    scale: float = 255.0,
    test_crop_pct: float = 1.0,
    names: Sequence[str] | None = None,
) -> RealData:
    """Un-normalised ``[N,C,H,W]`` images and labels -> ``RealData``.

    Validation is carved from train with the request's fraction and seed *before* the
    float conversion, so each split is converted exactly once. Images are uint8 (divided by
    ``scale``=255) or floats already in [0, 1] (``scale=1``), or both splits are streamed
    (:class:`StreamedImages` on disk): the splits are then row subsets of those, normalised
    when read, and nothing is loaded here. ``test_crop_pct``: how the test images were cropped
    (see ``DataRequest.test_crop_pct``), for loaders that honour it; ``names``: the classes'
    human names where ``classes`` are ids.
    """
    classes = tuple(str(c) for c in classes)
    streamed = isinstance(train_x, StreamedImages)
    if streamed != isinstance(test_x, StreamedImages):
        raise DataError(f"{name}: stream both splits or neither")
    if not streamed:
        train_x, test_x = torch.as_tensor(train_x), torch.as_tensor(test_x)
    train_y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    test_y = torch.as_tensor(np.asarray(test_y), dtype=torch.long)
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.ndim != 4:
            raise DataError(f"{name}: {split} images have shape {list(x.shape)}; expected [N, C, H, W]")
        if len(x) != len(y):
            raise DataError(f"{name}: the {split} split has {len(x)} images but {len(y)} labels")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise DataError(
                f"{name}: {split} labels span {int(y.min())}..{int(y.max())} but there are {len(classes)} classes"
            )
    if len(train_y) == 0:
        raise DataError(f"{name}: the training split is empty")
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    keep, val = train_val_positions(train_y, request.val_fraction, request.seed)
    if streamed:
        train_x, test_x = train_x.normalised(mean, std), test_x.normalised(mean, std)
        splits = train_x.subset(keep), train_x.subset(val), test_x
    else:
        splits = tuple(normalise(x, mean, std, scale) for x in (train_x[keep], train_x[val], test_x))
    return RealData(
        name=name,
        train_x=splits[0],
        train_y=train_y[keep],
        val_x=splits[1],
        val_y=train_y[val],
        test_x=splits[2],
        test_y=test_y,
        mean=mean,
        std=std,
        classes=classes,
        test_crop_pct=test_crop_pct,
        names=tuple(names) if names is not None else None,
    )
