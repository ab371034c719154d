"""Image files decoded once into a uint8 array on disk, read back on demand.

A folder of PNG/JPEG files is decoded (in DataLoader workers) into ``[N,C,H,W]`` uint8 ``.npy``
in the cache, keyed by the files (relative path, size, modification time) and the resolution,
so a second run, or a second split of the same run, reads pixels at page-cache speed instead of
decoding again (:class:`dd_bench.streaming.StreamedImages`). The array is written in chunks
with ``pwrite`` (no memory map, so the build's memory does not grow with the dataset) and its
progress recorded after each: a build that is killed resumes where it stopped, and a reader
never sees a half-built array (it is renamed into place when complete).

Resizing: with a ``resolution`` R the shorter side is scaled to R (PIL bilinear, antialiased;
JPEGs are first reduced by their decoder's DCT scaling where that stays above R) and the centre
R x R is cropped, the usual ImageNet preprocessing (with ``crop_pct`` < 1 the shorter side goes
to R / crop_pct first: 256 for a 224 crop at 0.875, the ImageNet evaluation's). Without one,
every image must already have the same size. Channels: 1 when every image is greyscale, else 3 (RGB).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .runtime import cache_lock
from .streaming import StreamedImages, npy_offset
from .synthetic import atomic_write_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
CHUNK = 1024
"""Images decoded between two progress records."""
FORMAT = 1


def image_files(folder: Path) -> list[Path]:
    """The PNG/JPEG files under ``folder`` (any depth), sorted by relative path."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def files_key(root: Path, files: Sequence[Path], resolution: int | None, crop_pct: float = 1.0) -> str:
    """A cache key for ``files`` at ``resolution``: what changes when any file is added, removed,
    renamed, rewritten or touched (size and modification time stand in for the content, whose
    hash would cost a read of every file before the cache could answer)."""
    extra = "" if crop_pct == 1.0 else f";crop_pct={crop_pct!r}"  # keys made before crop_pct existed stay valid
    digest = hashlib.sha256(f"format={FORMAT};resolution={resolution}{extra}\n".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: not a readable image ({exc}); remove or replace it") from None


class _Decode(torch.utils.data.Dataset):
    """One image file -> ``[C,H,W]`` uint8, or the reason it could not be decoded."""

    def __init__(
        self, files: Sequence[Path], channels: int, size: tuple[int, int], resolution: int | None, crop_pct: float = 1.0
    ):
        self.files, self.channels, self.size, self.resolution, self.crop_pct = (
            files,
            channels,
            size,
            resolution,
            crop_pct,
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        from PIL import Image

        h, w = self.size
        try:
            with Image.open(self.files[i]) as im:
                if self.resolution is not None:
                    side = round(self.resolution / self.crop_pct)
                    im.draft("RGB" if self.channels == 3 else "L", (side, side))
                im = im.convert("RGB" if self.channels == 3 else "L")
                if self.resolution is not None:
                    im = _resize_centre_crop(im, self.resolution, self.crop_pct)
                pixels = np.asarray(im, dtype=np.uint8).reshape(h, w, self.channels)
        except (OSError, ValueError) as exc:  # PIL: truncated or corrupt data
            return torch.zeros(self.channels, h, w, dtype=torch.uint8), f"{self.files[i]}: cannot decode ({exc})"
        return torch.from_numpy(pixels.transpose(2, 0, 1).copy()), ""


def _as_list(batch: list) -> list:
    """DataLoader collation that keeps each image with its error (a function, so spawned workers can pickle it)."""
    return batch


def _resize_centre_crop(im, size: int, crop_pct: float = 1.0):
    """Shorter side to ``size / crop_pct``, then the centre ``size`` x ``size``."""
    from PIL import Image

    w, h = im.size
    scale = round(size / crop_pct) / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def decoded(
    name: str,
    root: Path,
    files: Sequence[Path],
    resolution: int | None,
    cache_dir: Path,
    workers: int | None = None,
    progress: bool = True,
    crop_pct: float = 1.0,
) -> StreamedImages:
    """``files`` (under ``root``) as streamed ``[N,C,H,W]`` images in [0, 1] (not yet normalised),
    decoded once into ``cache_dir/images/<key>.npy``. ``name`` prefixes every error."""
    if not files:
        raise DataError(f"{name}: no images to decode")
    key = files_key(root, files, resolution, crop_pct)
    final = cache_dir / "images" / f"{key}.npy"
    if not final.exists():
        with cache_lock(final):
            if not final.exists():  # another process may have built it while we waited
                _build(name, root, files, resolution, final, workers, progress, crop_pct)
    return StreamedImages(final)


def _shape(name: str, files: Sequence[Path], resolution: int | None) -> tuple[int, tuple[int, int]]:
    headers = [_header(p) for p in files]
    channels = 1 if all(mode in GREY_MODES for mode, _ in headers) else 3
    if resolution is not None:
        return channels, (resolution, resolution)
    sizes = {size for _, size in headers}
    if len(sizes) > 1:
        (a, b) = sorted(sizes)[:2]
        raise DataError(
            f"{name}: the images have different sizes (e.g. {a[0]}x{a[1]} and {b[0]}x{b[1]});"
            " ask for one with --resolution N (or data.resolution in a suite)"
        )
    w, h = sizes.pop()
    return channels, (h, w)


def _build(
    name: str,
    root: Path,
    files: Sequence[Path],
    resolution: int | None,
    final: Path,
    workers: int | None,
    progress: bool,
    crop_pct: float = 1.0,
) -> None:
    import sys

    from tqdm import tqdm

    partial, record = final.with_suffix(".npy.partial"), final.with_suffix(".progress.json")
    channels, (h, w) = _shape(name, files, resolution)
    shape = (len(files), channels, h, w)
    done = 0
    if partial.exists() and record.exists():
        state = json.loads(record.read_text())
        if state.get("shape") == list(shape):
            done = int(state["done"])
    if not done:
        final.parent.mkdir(parents=True, exist_ok=True)
        np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape).flush()  # header, sparse body
        atomic_write_text(record, json.dumps({"shape": list(shape), "done": 0}))
    offset, row_bytes = npy_offset(partial), channels * h * w
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(_Decode(files, channels, (h, w), resolution, crop_pct), range(done, len(files))),
        batch_size=CHUNK,
        num_workers=workers,
        collate_fn=_as_list,
    )
    fd = os.open(partial, os.O_WRONLY)
    try:
        with tqdm(
            total=len(files),
            initial=done,
            desc=f"{name}: decoding",
            unit="img",
            disable=not progress or None,
            leave=False,
            file=sys.stderr,
        ) as bar:
            for batch in loader:
                errors = [error for _, error in batch if error]
                if errors:
                    raise DataError(
                        f"{name}: {errors[0]}"
                        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
                        + "; remove or replace the file"
                    )
                os.pwrite(fd, torch.stack([pixels for pixels, _ in batch]).numpy().tobytes(), offset + done * row_bytes)
                os.fsync(fd)
                done += len(batch)
                atomic_write_text(record, json.dumps({"shape": list(shape), "done": done}))
                bar.update(len(batch))
    finally:
        os.close(fd)
    os.replace(partial, final)
    record.unlink()
