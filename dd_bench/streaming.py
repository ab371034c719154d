"""Images that stay on disk: the streamed form of a dataset split.

A split of ``RealData`` is either a float32 tensor in memory or a :class:`StreamedImages`: rows
of a ``[N,C,H,W]`` uint8 ``.npy`` on disk (the decode-once cache of :mod:`dd_bench.images`),
read with ``pread`` when asked for and normalised on the fly. Both answer the same calls, which
is the whole interface a consumer uses: ``x.shape``, ``len(x)``, ``x[i]``, ``x[a:b]``,
``x[index_tensor]`` (a float32 batch), and :func:`batches` (a split in a given order, in
DataLoader workers for streamed data, with optional per-sample transforms). Reads go through
``pread``, not a memory map, so pages a run has read are the kernel's cache, not this process's
memory: the resident size stays that of the batches in flight, whatever the dataset's size.

A method that needs the whole split as one tensor (trajectory matching) declares
``DistillerSpec(in_memory=True)``; the host then calls :meth:`RealData.in_memory`, which loads
a streamed split whole when it fits and otherwise refuses in one line (:func:`materialize`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runtime
from .errors import DataError

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""A per-sample transform: ``[C,H,W]`` float image and its own seeded generator -> image."""

WORKERS_ENV = "DD_BENCH_DATA_WORKERS"
MEMORY_FRACTION = 0.8
"""Share of the available memory a split loaded whole may take."""


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float], scale: float = 255.0) -> torch.Tensor:
    """A new float32 tensor ``(x / scale - mean) / std``: one copy of ``x``, then in-place arithmetic.
    Every dataset, streamed or in memory, goes through this one function, so both forms of the
    same pixels are the same floats."""
    out = x.to(torch.float32, copy=True)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * scale
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * scale
    return out.sub_(m).div_(s)


def _npy_header(path: Path) -> tuple[tuple[int, ...], int]:
    """Shape and data offset of a C-ordered uint8 ``[N,C,H,W]`` ``.npy``; anything else is refused."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            offset = f.tell()
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc}); delete it to rebuild") from None
    if dtype != np.uint8 or fortran or len(shape) != 4:
        raise DataError(f"{path}: expected a C-ordered [N,C,H,W] uint8 array, got {dtype} {list(shape)}")
    return shape, offset


def npy_offset(path: Path) -> int:
    """Where the pixels of the uint8 ``.npy`` at ``path`` start."""
    return _npy_header(path)[1]


class StreamedImages:
    """Rows of a ``[N,C,H,W]`` uint8 ``.npy`` file, read on demand as normalised float32.

    ``rows`` selects and orders the file's images (a split carved from another shares its file);
    without ``mean``/``std`` the images read as ``x / scale`` in [0, 1].
    Pickles as its path and rows, so DataLoader workers reopen the file themselves.
    """

    dtype = torch.float32
    ndim = 4
    device = torch.device("cpu")

    def __init__(
        self,
        path: str | Path,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        rows: np.ndarray | None = None,
        scale: float = 255.0,
    ):
        self.path = Path(path)
        shape, self._offset = _npy_header(self.path)
        self._file_rows, self.image_shape = shape[0], tuple(shape[1:])
        channels = shape[1]
        self.mean = tuple(mean) if mean is not None else (0.0,) * channels
        self.std = tuple(std) if std is not None else (1.0,) * channels
        self.scale = scale
        self._row_bytes = int(np.prod(self.image_shape))
        self.rows = np.arange(shape[0], dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        self._fd: int | None = None

    # ------------------------------------------------------------------ the tensor-like surface

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.image_shape))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        """Bytes of the split as float32 in memory."""
        return len(self.rows) * self._row_bytes * 4

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.ndim == 0):
            return self[[int(key)]][0]
        return normalise(torch.from_numpy(self.uint8(key)), self.mean, self.std, self.scale)

    def uint8(self, key: Any) -> np.ndarray:
        """The raw pixels of ``key`` (a slice, or positions in this split) as ``[B,C,H,W]`` uint8."""
        if isinstance(key, slice):
            rows = self.rows[key]
        else:
            key = np.asarray(key.cpu() if isinstance(key, torch.Tensor) else key)
            rows = self.rows[np.flatnonzero(key) if key.dtype == bool else key.astype(np.int64)]
        return self._read(rows)

    def subset(self, positions: Any) -> StreamedImages:
        """The images at ``positions`` of this split, as a split of their own (no pixels read)."""
        if isinstance(positions, torch.Tensor):
            positions = positions.cpu().numpy()
        return self._copy(rows=self.rows[np.asarray(positions, dtype=np.int64)])

    def normalised(self, mean: Sequence[float], std: Sequence[float]) -> StreamedImages:
        """The same images, read as ``(x / scale - mean) / std``."""
        return self._copy(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))

    def _copy(self, **changes: Any) -> StreamedImages:
        out = StreamedImages.__new__(StreamedImages)
        out.__dict__.update(self.__getstate__() | changes)
        return out

    # ------------------------------------------------------------------ reading

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` of the file, one ``preadv`` per run of consecutive rows."""
        out = np.empty((len(rows), *self.image_shape), dtype=np.uint8)
        if not len(rows):
            return out
        if rows.min() < 0 or rows.max() >= self._file_rows:
            raise IndexError(f"{self.path}: row out of range 0..{self._file_rows - 1}")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        buf = out if np.all(order == np.arange(len(rows))) else np.empty_like(out)
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            want = (b - a) * self._row_bytes
            got = os.preadv(
                self._fd, [memoryview(buf[a:b]).cast("B")], self._offset + int(ordered[a]) * self._row_bytes
            )
            if got != want:
                raise DataError(
                    f"{self.path}: the file is shorter than its header says (truncated?); delete it to rebuild"
                )
        if buf is not out:
            out[order] = buf
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_fd"} | {"_fd": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __repr__(self) -> str:
        return f"StreamedImages({self.path.name}, {list(self.shape)})"


Images = torch.Tensor | StreamedImages


def is_streamed(x: Images) -> bool:
    return isinstance(x, StreamedImages)


def select(x: Images, positions: torch.Tensor) -> Images:
    """The images at ``positions``: a tensor's rows (a copy), or a streamed split's subset (read when used)."""
    return x.subset(positions) if isinstance(x, StreamedImages) else x[positions.to(x.device)]


def materialize(x: Images, where: str, why: str = "", chunk: int = 4096) -> torch.Tensor:
    """``x`` as one float32 tensor; a streamed split that would take more than ``MEMORY_FRACTION``
    of the available memory is refused in one line, naming ``where`` and saying ``why`` it was wanted."""
    if isinstance(x, torch.Tensor):
        return x
    free = runtime.free_memory(torch.device("cpu"))
    if free is not None and x.nbytes > MEMORY_FRACTION * free:
        raise DataError(
            f"{where}: its {len(x)} images of {'x'.join(map(str, x.image_shape))} need"
            f" {x.nbytes / 2**30:.1f} GiB in memory as float32, but {free / 2**30:.1f} GiB are available"
            + (f"; {why}" if why else "")
        )
    out = torch.empty(x.shape, dtype=torch.float32)
    for s in range(0, len(x), chunk):
        out[s : s + chunk] = x[s : s + chunk]
    return out


def default_workers() -> int:
    """DataLoader workers that read streamed batches (``DD_BENCH_DATA_WORKERS``, default: half the cores, at most 4)."""
    value = os.environ.get(WORKERS_ENV)
    if value is not None:
        if not value.isdigit():
            raise DataError(f"{WORKERS_ENV}={value!r} is not allowed: use an integer >= 0")
        return int(value)
    return min(4, (os.cpu_count() or 2) // 2)


class _Batches(torch.utils.data.Dataset):
    """Batch fetches for a DataLoader: positions in, normalised (and transformed) images out."""

    def __init__(self, x: Images, transform: Transform | None, seed: int):
        self.x, self.transform, self.seed = x, transform, seed

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, positions: list[int]) -> torch.Tensor:
        if isinstance(self.x, StreamedImages) and self.transform is None:
            return torch.from_numpy(self.x.uint8(positions))  # a quarter of the bytes through shared memory
        images = self.x[torch.as_tensor(positions)]
        if self.transform is None:
            return images
        return torch.stack([self.transform(img, sample_generator(self.seed, p)) for img, p in zip(images, positions)])


def sample_generator(seed: int, position: int) -> torch.Generator:
    """The generator of one sample's transform: a function of the batch order's seed and the
    sample's position in the split, never of which worker draws it."""
    return torch.Generator().manual_seed((seed * 1_000_003 + position) % 2**63)


def batches(
    x: Images,
    order: torch.Tensor,
    batch_size: int,
    *,
    transform: Transform | None = None,
    seed: int = 0,
    workers: int | None = None,
) -> Iterator[torch.Tensor]:
    """``x[order[s : s + batch_size]]`` for each batch in turn (the last may be partial).

    In memory without a transform the tensor is indexed directly (on its own device); otherwise
    batches are read in ``workers`` DataLoader processes (default :func:`default_workers`; 0 reads
    in this one) and ``transform`` runs per sample there, each with :func:`sample_generator`
    (``seed``, position), so the result does not depend on the number of workers.
    """
    if isinstance(x, torch.Tensor) and transform is None:
        order = order.to(x.device)
        for s in range(0, len(order), batch_size):
            yield x[order[s : s + batch_size]]
        return
    workers = default_workers() if workers is None else workers
    chunks = [order[s : s + batch_size].tolist() for s in range(0, len(order), batch_size)]
    source = x.cpu() if isinstance(x, torch.Tensor) else x
    loader = torch.utils.data.DataLoader(
        _Batches(source, transform, seed),
        sampler=chunks,
        batch_size=None,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )
    for batch in loader:  # raw pixels of a streamed split are normalised here, as its own indexing would
        yield normalise(batch, x.mean, x.std, x.scale) if batch.dtype == torch.uint8 else batch
