"""A small reader for the IDX format of (Fashion-)MNIST, gzip-compressed or not.

Reading the files ourselves means the Debian package's ``.gz`` files load directly, with no
torchvision download machinery, extraction step or md5 table involved.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dd_bench.plugin import DataError

# IDX type byte -> numpy dtype (multi-byte values are big-endian on disk).
IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file into a new (writable, native byte order) numpy array.

    gzip is recognised from the file's first bytes, not its name. The payload is read
    straight into the result array, so a 47 MB image file costs one buffer, not three.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})")
            ndim = head[3]
            dims = f.read(4 * ndim)
            if len(dims) != 4 * ndim:
                raise DataError(f"{path}: IDX header is truncated")
            shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
            out = np.empty(shape, dtype=np.dtype(IDX_DTYPES[head[2]]))
            want = out.nbytes
            got = _read_into(f, memoryview(out.reshape(-1).view(np.uint8)))
            if got != want or f.read(1):
                raise DataError(
                    f"{path}: IDX header promises shape {list(shape)} ({want} bytes) but the file"
                    f" holds {'fewer' if got != want else 'more'}; it is truncated or corrupt"
                )
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read IDX file ({exc})") from exc
    return out if out.dtype.isnative else out.astype(out.dtype.newbyteorder("="))


def _read_into(f, buf: memoryview) -> int:
    """Fill ``buf`` from ``f`` (gzip may hand back less than asked per call)."""
    done = 0
    while done < len(buf):
        n = f.readinto(buf[done:])
        if not n:
            break
        done += n
    return done


def find_idx_files(dirs: Sequence[Path], stems: Sequence[str]) -> dict[str, Path] | None:
    """The first folder in ``dirs`` that holds every ``stem`` (raw preferred, else ``stem.gz``)."""
    for d in dirs:
        found = {}
        for stem in stems:
            for candidate in (d / stem, d / f"{stem}.gz"):
                if candidate.is_file():
                    found[stem] = candidate
                    break
        if len(found) == len(stems):
            return found
    return None


def read_idx_images(path: Path) -> np.ndarray:
    """An ``[N,H,W]`` uint8 image file (the only kind (Fashion-)MNIST ships)."""
    x = read_idx(path)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{path}: expected [N, H, W] uint8 images, found {x.dtype} of shape {list(x.shape)}")
    return x


def read_idx_labels(path: Path, count: int) -> np.ndarray:
    """A ``[N]`` label file whose length must match its image file."""
    y = read_idx(path)
    if y.ndim != 1 or len(y) != count or y.dtype.kind not in "iu":
        raise DataError(f"{path}: expected {count} integer labels, found {y.dtype} of shape {list(y.shape)}")
    return y
