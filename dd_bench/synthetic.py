"""The distilled set: what every distiller returns and every evaluation consumes."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import pickle
import sys
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .errors import DataError
from .limits import INT64_MAX
from .specs import RealData

FORMAT = "dd-bench.synthetic-set"
FORMAT_VERSION = 1
CACHE_BUILD_SECONDS = "cache_build_seconds"
"""Metadata key: seconds of the distillation spent building caches that later runs reuse."""


@dataclass(eq=False)
class SyntheticSet:
    """Images ``[N,C,H,W]`` in the normalised space of ``mean``/``std`` (and ZCA if ``zca``).

    ``labels`` are hard class indices ``[N]`` or soft targets ``[N,K]`` given as logits (the
    loss is cross-entropy against their softmax). ``lr`` is a learned learning rate for the
    evaluation, ``weights`` per-sample loss weights (e.g. optimal quantization). With
    ``factor`` > 1 each stored image holds ``factor x factor`` smaller images (partition and
    expansion: IDC, IDM, M3D); training reads ``decoded()``, storage counts what is stored.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    dataset: str
    method: str
    ipc: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    zca: bool = False
    lr: float | None = None
    weights: torch.Tensor | None = None
    factor: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
    """Free-form, JSON-able. ``CACHE_BUILD_SECONDS`` in it: the part of the distillation spent
    building cached artifacts that later runs reuse (expert buffers, a trained latent), so costs
    can be compared across seeds."""

    def __post_init__(self) -> None:
        self.mean, self.std = tuple(map(float, self.mean)), tuple(map(float, self.std))
        n = self.images.shape[0] if self.images.ndim == 4 else None
        if n is None or self.images.shape[1] != len(self.mean) or not self.images.is_floating_point():
            raise DataError(
                f"synthetic images must be a float tensor [N,{len(self.mean)},H,W], got {self.images.dtype} {list(self.images.shape)}"
            )
        if n == 0:  # it would be evaluated at chance and reported as a result
            raise DataError("a synthetic set must hold at least one image: this one holds none")
        if not all(math.isfinite(v) for v in self.mean + self.std) or min(self.std) <= 0:
            raise DataError(f"mean={list(self.mean)}, std={list(self.std)}: use finite values and a std > 0")
        if self.labels.shape == (n,):
            if self.labels.dtype != torch.long:
                raise DataError(f"hard labels must be int64, got {self.labels.dtype}")
            if n and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
                raise DataError(f"hard labels must lie in [0, {self.num_classes - 1}]")
        elif self.labels.shape != (n, self.num_classes) or not self.labels.is_floating_point():
            raise DataError(
                f"labels must be [N]={n} class indices or [N,K]=[{n},{self.num_classes}] floats, got {list(self.labels.shape)}"
            )
        devices = {t.device for t in (self.images, self.labels, self.weights) if t is not None}
        if len(devices) > 1:
            raise DataError(
                f"images, labels and weights must be on one device, got {', '.join(sorted(map(str, devices)))}"
            )
        if self.weights is not None and (self.weights.shape != (n,) or (self.weights < 0).any()):
            raise DataError(f"weights must be a non-negative tensor of shape [{n}]")
        if self.lr is not None and not self.lr > 0:
            raise DataError(f"learned lr must be positive, got {self.lr}")
        if self.ipc < 1:
            raise DataError(f"ipc must be >= 1, got {self.ipc}")
        if not 1 <= self.factor <= min(self.images.shape[-2:]):
            raise DataError(
                f"factor={self.factor} is not allowed for {list(self.images.shape[-2:])} images: use 1 <= factor <= the image side"
            )
        self.check_finite()

    def check_finite(self) -> None:
        """Raise DataError if images, soft labels, weights or the learned lr hold NaN or Inf.

        Such a set trains a network to chance and reports it as a result; it is refused when
        made, loaded and saved (its tensors may have been changed in place since it was made).
        """
        if self.lr is not None and not math.isfinite(self.lr):
            raise DataError(f"learned lr={self.lr} is not allowed: a set's lr must be finite")
        parts = {
            "images": self.images,
            "soft labels": self.labels if self.soft_labels else None,
            "weights": self.weights,
        }
        for name, t in parts.items():
            if t is not None and t.is_floating_point():
                bad = int((~torch.isfinite(t)).sum())
                if bad:
                    raise DataError(
                        f"synthetic {name} hold {bad} NaN/Inf value{'s' if bad > 1 else ''} (of {t.numel()}): a set must be finite"
                    )

    @property
    def soft_labels(self) -> bool:
        return self.labels.ndim == 2

    def hard_labels(self) -> torch.Tensor:
        """Class indices (argmax of soft labels)."""
        return self.labels.argmax(1) if self.soft_labels else self.labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def decoded(self) -> SyntheticSet:
        """The set that training reads: every stored image's ``factor**2`` patches upsampled
        (``expand``), labels and weights repeated to match; the set itself when ``factor`` is 1."""
        if self.factor == 1:
            return self
        k = self.factor**2
        return replace(
            self,
            images=expand(self.images, self.factor),
            labels=self.labels.repeat(k, *[1] * (self.labels.ndim - 1)),
            weights=None if self.weights is None else self.weights.repeat(k),
            factor=1,
            metadata=dict(self.metadata),
        )

    def nbytes(self) -> int:
        """Storage of images, labels, weights and lr, as the cost columns count it."""
        total = self.images.numel() * self.images.element_size() + self.labels.numel() * self.labels.element_size()
        if self.weights is not None:
            total += self.weights.numel() * self.weights.element_size()
        return total + (4 if self.lr is not None else 0)

    def check_compatible(self, data: RealData) -> None:
        """Raise DataError if this set cannot be evaluated on ``data``."""
        expected = list(data.train_x.shape[1:])
        if list(self.images.shape[1:]) != expected or self.num_classes != data.num_classes:
            raise DataError(
                f"synthetic set ({self.dataset}: images {list(self.images.shape[1:])}, {self.num_classes} classes) does not fit"
                f" dataset {data.name} (images {expected}, {data.num_classes} classes)"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "images": self.images.detach().cpu().contiguous(),
            "labels": self.labels.detach().cpu().contiguous(),
            "weights": None if self.weights is None else self.weights.detach().cpu().contiguous(),
            "num_classes": self.num_classes,
            "dataset": self.dataset,
            "method": self.method,
            "ipc": self.ipc,
            "mean": list(self.mean),
            "std": list(self.std),
            "zca": self.zca,
            "lr": self.lr,
            "factor": self.factor,
            "metadata": self.metadata,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically: a killed process never leaves a half-written file behind."""
        path = Path(path)
        self.check_finite()
        try:
            atomic_torch_save(self.to_dict(), path)
        except OSError as exc:
            raise DataError(f"cannot write the synthetic set to {path} ({exc.strerror or exc})") from None
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SyntheticSet:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"synthetic set {path} does not exist")
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
                warnings.simplefilter("ignore")
                blob = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # torch's weights-only unpickler met an object it will not build
            raise DataError(f"{path} is not a dd-bench synthetic set; refusing to unpickle arbitrary objects") from None
        except Exception as exc:  # zip, truncation and torch errors all mean the same to a user
            reason = (str(exc).strip().splitlines() or [""])[0]
            raise DataError(f"{path} is not a readable synthetic set ({type(exc).__name__}: {reason})") from None
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise DataError(f"{path} is not a dd-bench synthetic set")
        if blob.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{path} has format version {blob.get('format_version')!r}; this dd-bench reads {FORMAT_VERSION}"
            )
        blob = {k: v for k, v in blob.items() if k not in ("format", "format_version")}
        problem = _field_problem(blob)
        if problem:
            raise DataError(f"{path} is a corrupt synthetic set ({problem})")
        try:
            return cls(**blob)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        except (TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:  # fields of the wrong kind
            raise DataError(f"{path} is a corrupt synthetic set ({type(exc).__name__}: {exc})") from None

    def denormalized(self) -> torch.Tensor:
        """Images in [0, 1] pixel space (ZCA sets are shown min-max scaled per image)."""
        x = self.images.detach().cpu()
        if self.zca:
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            return (x - lo) / (hi - lo).clamp_min(1e-8)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x * std + mean).clamp(0, 1)

    def save_grid(self, path: str | os.PathLike, max_per_class: int = 10) -> Path:
        """A PNG grid, one row per class, at most ``max_per_class`` images a row."""
        from torchvision.utils import make_grid, save_image

        images, labels = self.denormalized(), self.hard_labels()
        rows = []
        for c in range(self.num_classes):
            row = images[labels == c][:max_per_class]
            pad = torch.ones(max_per_class - len(row), *images.shape[1:])
            rows.append(torch.cat([row, pad]))
        grid = make_grid(torch.cat(rows), nrow=max_per_class, padding=1, pad_value=1.0)
        path = Path(path)
        _atomic_write(path, lambda fh: save_image(grid, fh, format="png"))
        return path


def _field_problem(blob: dict[str, Any]) -> str | None:
    """What is wrong with the types of a loaded set's fields (a file edited or written by other
    code), or None; the values themselves are checked by ``SyntheticSet``."""

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= INT64_MAX

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    checks = {
        "images": (lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.float32, "a float32 tensor"),
        "labels": (lambda v: isinstance(v, torch.Tensor), "a tensor"),
        "weights": (lambda v: v is None or isinstance(v, torch.Tensor) and v.is_floating_point(), "a float tensor"),
        "num_classes": (count, "an integer from 1 to 2**63-1"),
        "ipc": (count, "an integer from 1 to 2**63-1"),
        "factor": (count, "an integer from 1 to 2**63-1"),
        "dataset": (lambda v: isinstance(v, str), "a name"),
        "method": (lambda v: isinstance(v, str), "a name"),
        "zca": (lambda v: isinstance(v, bool), "true or false"),
        "lr": (lambda v: v is None or number(v) or isinstance(v, torch.Tensor) and v.numel() == 1, "a number or none"),
        "mean": (lambda v: isinstance(v, (list, tuple)) and all(map(number, v)), "a list of numbers"),
        "std": (lambda v: isinstance(v, (list, tuple)) and all(map(number, v)), "a list of numbers"),
        "metadata": (lambda v: isinstance(v, dict), "a mapping"),
    }
    for key, (ok, allowed) in checks.items():
        if key in blob and not ok(blob[key]):
            value = blob[key]
            shown = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else repr(value)[:40]
            return f"{key} is {shown}: it must be {allowed}"
    return None


def expand(images: torch.Tensor, factor: int) -> torch.Tensor:
    """``[n,C,H,W]`` -> ``[n*factor**2,C,H,W]``: every image's patches (a ``factor x factor``
    grid, row-major), each upsampled bilinearly to ``H x W``; patch ``k`` of image ``i`` is row
    ``k*n + i``."""
    if factor == 1:
        return images
    size = images.shape[-2:]
    patches = [p for band in images.tensor_split(factor, dim=2) for p in band.tensor_split(factor, dim=3)]
    return torch.cat([F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in patches])


def pack(images: torch.Tensor, factor: int) -> torch.Tensor:
    """The reverse of ``expand``, to start from real images: ``[n*factor**2,C,H,W]`` ->
    ``[n,C,H,W]``, row ``k*n + i`` shrunk into patch ``k`` of image ``i``."""
    if factor == 1:
        return images
    n, (h, w) = len(images) // factor**2, images.shape[-2:]
    out = images.new_empty((n, *images.shape[1:]))
    k = 0
    for rows in torch.arange(h).tensor_split(factor):
        for cols in torch.arange(w).tensor_split(factor):
            part = images[k * n : (k + 1) * n]
            out[:, :, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = F.interpolate(
                part, size=(len(rows), len(cols)), mode="bilinear", align_corners=False
            )
            k += 1
    return out


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    _atomic_write(path, lambda fh: torch.save(obj, fh))


def read_checkpoint(path: Path, version: int) -> dict[str, Any] | None:
    """The resumable state saved at ``path``, or None when there is none to resume from.

    A checkpoint is a cache: one that cannot be read, or that an older or newer dd-bench
    wrote (another ``version``), is reported in one line and removed, and the run starts over.
    """
    if not path.exists():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
        problem = (
            None
            if isinstance(state, dict) and state.get("version") == version
            else (
                f"version {state.get('version') if isinstance(state, dict) else None!r}, this dd-bench writes {version}"
            )
        )
    except Exception as exc:  # pickle, zip, truncation and torch errors all mean the same here
        problem = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
    if problem is None:
        return state
    print(f"warning: ignoring checkpoint {path} ({problem}); starting over", file=sys.stderr)
    path.unlink(missing_ok=True)
    return None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) so that a reader never sees half of it."""
    _atomic_write(path, lambda fh: fh.write(text.encode()))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` so that a reader never sees half of it (a unique temporary name, then a rename)."""
    _atomic_write(path, lambda fh: fh.write(data))


def _atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(fh)`` to a temporary file beside ``path``, then rename it over ``path``.

    On any failure the temporary file is removed and ``path`` keeps what it held. An ``OSError``
    (a full disk among them, which torch's zip writer hides behind a RuntimeError) is raised again
    naming ``path``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a part of the path is a file
        raise NotADirectoryError(errno.ENOTDIR, "a part of the path is a file, not a folder", str(path)) from None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 would make pages and sets private
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        failed = disk_full(exc) or (exc if isinstance(exc, OSError) and exc.errno else None)
        if failed is not None:  # named by the file the caller asked for, not the temporary one
            raise OSError(failed.errno, failed.strerror or os.strerror(failed.errno), str(path)) from exc
        raise


DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def disk_full(exc: BaseException) -> OSError | None:
    """The full-disk ``OSError`` (ENOSPC, EDQUOT) behind ``exc``, following its chain; None if there is none."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
