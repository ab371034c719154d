"""File formats: how a plugin tells dd-bench to read (and write) the files its method's published
code saves.

A plugin returns :class:`FormatSpec` objects from ``ddb_register_formats``. ``read(path, request)``
finds the set in ``path`` and returns a :class:`FormatRead`: the images and labels as the source
saved them, the files it read, the normalisation they are in and whatever else the files carry
(a learned lr). It only reads; the host (``dd_bench.interchange``) does every check (shapes,
classes, IPC), converts the normalisation, checks ZCA, hashes the files and records where the set
came from, so each format stays the few lines that know its files. ``write(set, out)`` creates the
file or folder ``out`` for the other tool; the host has already refused an existing ``out`` and
moves what ``write`` made into place only when it finishes.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, DataError
from .specs import NAME_RE, RealData
from .synthetic import SyntheticSet

REFERENCE_NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # DC's, MTT's and DATM's get_dataset: the mean/std their saved images are normalised with
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2861,), (0.3530,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    **{
        name: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        for name in (
            "tiny_imagenet",
            "imagenet1k",
            "imagenet100",
            "imagenette",
            "imagewoof",
            "imagenette_mtt",
            "imagewoof_mtt",
            "imagefruit",
            "imageyellow",
            "imagemeow",
            "imagesquawk",
        )
    },
}
"""The mean/std the reference code bases (DC, MTT, DATM, FTD) normalise saved images with: the
normalisation a reader names ``"reference"``."""

IMPORT_OPTIONS = ("experiment",)
"""Options of ``dd-bench import`` that only some formats take (:attr:`FormatSpec.options`)."""


@dataclass(frozen=True)
class ReadRequest:
    """What a reader is told: the dataset the set is for, the IPC asked, and the format's options."""

    data: RealData
    ipc: int
    experiment: int | None = None
    """``--experiment``: which of several saved sets (DC's results files hold one per experiment)."""


@dataclass
class FormatRead:
    """What a reader found, before the host checks and converts it."""

    images: torch.Tensor
    labels: torch.Tensor
    """Class indices ``[N]``, or ``[N, K]`` logits (soft labels)."""
    files: list[Path]
    """The files read (counted in the set's provenance)."""
    normalization: str | None = None
    """The images' normalisation: ``"unit"``, ``"255"``, ``"dataset"``, ``"reference"`` (the
    reference code's, :data:`REFERENCE_NORMALIZATION`) or ``"MEAN/STD"``; None: the user must say."""
    lr: float | None = None
    """The learned evaluation lr, where the files carry one."""
    classes: torch.Tensor | None = None
    """Each image's class where the source decides it by position (DATM lays out ``ipc`` images
    per class, in class order, and then learns their soft labels): the host counts these, not the
    argmax of the labels. None: the classes are the labels (their argmax for soft labels)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Recorded in the set's provenance (``iteration``, ``experiment``...). ``ipc`` is checked
    against the IPC asked, ``method`` names the set's method, ``zca: True`` marks a ZCA set."""


@dataclass(frozen=True)
class FormatSpec:
    """A file format a plugin reads (``dd-bench import NAME``) and optionally writes (``export``).

    ``learns_lr``: the source method learns an evaluation lr (MTT, FTD, DATM); an import whose
    files carry none, with no ``--lr``, then warns that the evaluation uses the default.
    ``zca_check``: the source may save sets in ZCA space; the host checks the images' statistics
    against the ``--zca`` flag. ``options``: the :data:`IMPORT_OPTIONS` it takes. ``method``: the
    method name its sets get (default: the format's name).
    """

    name: str
    description: str
    read: Callable[[Path, ReadRequest], FormatRead] | None = None
    write: Callable[[SyntheticSet, Path], None] | None = None
    learns_lr: bool = False
    zca_check: bool = False
    options: tuple[str, ...] = ()
    method: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.match(self.name) or ":" in self.name:
            raise ConfigError(
                f"FormatSpec.name={self.name!r} is not allowed: use lower-case letters, digits, '_', '-', '.'"
            )
        if not isinstance(self.description, str) or not self.description.strip() or "\n" in self.description:
            raise ConfigError(f"FormatSpec {self.name!r}: description must be one line of text")
        if self.read is None and self.write is None:
            raise ConfigError(f"FormatSpec {self.name!r} neither reads nor writes: give read, write or both")
        if bad := [o for o in self.options if o not in IMPORT_OPTIONS]:
            known = ", ".join(IMPORT_OPTIONS)
            raise ConfigError(f"FormatSpec {self.name!r}: options {bad} are not allowed (known: {known})")


# ---------------------------------------------------------------------------- helpers for readers


def torch_load(path: Path) -> Any:
    """``torch.load`` that builds tensors, containers and numpy scalars (DC saves its accuracies
    as numpy floats), never arbitrary objects; a missing, truncated or foreign file is one line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    scalar = np._core.multiarray.scalar  # named as numpy 2 pickles it, and as numpy 1 did
    safe = [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        *(type(np.dtype(t)) for t in ("float64", "float32", "int64")),
    ]
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(safe):
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(
            f"{path} holds objects other than tensors, lists, dicts and numbers; refusing to unpickle it"
        ) from None
    except Exception as exc:  # zip, truncation and torch errors all mean the same to a user
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise DataError(f"{path} is not a readable torch file ({type(exc).__name__}: {reason})") from None


def read_lr(path: Path) -> float:
    """One learning rate saved alone (a 0-d or one-element tensor, or a number)."""
    value = torch_load(path)
    try:
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError
            return float(value.detach().reshape(-1)[0])
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path} holds {type(value).__name__}, not one learning rate") from None


def iteration_files(path: Path, prefix: str = "", what: str = "MTT") -> tuple[Path, str]:
    """The set a trajectory-matching run saved by iteration: ``{prefix}images_best.pt``
    (preferred) or the highest ``{prefix}images_<it>.pt`` in the folder ``path``, or the images
    file ``path`` itself. Returns the images file and its tag (``best`` or the iteration)."""
    pattern = re.compile(rf"{re.escape(prefix)}images_(best|\d+)\.pt")
    if path.is_file():
        match = pattern.fullmatch(path.name)
        if not match:
            raise DataError(
                f"{path} is not {what}'s images file: expected {prefix}images_best.pt or {prefix}images_<iteration>.pt"
            )
        return path, match[1]
    tags = sorted(
        (m[1] for p in path.glob(f"{prefix}images_*.pt") if (m := pattern.fullmatch(p.name))),
        key=lambda t: (t == "best", int(t) if t.isdigit() else 0),
    )
    if not tags:
        raise DataError(
            f"{path} holds no {prefix}images_best.pt or {prefix}images_<iteration>.pt ({what}'s saved sets)"
        )
    return path / f"{prefix}images_{tags[-1]}.pt", tags[-1]


def read_iteration_set(path: Path, prefix: str = "", what: str = "MTT") -> FormatRead:
    """A set saved by iteration (:func:`iteration_files`) with its ``{prefix}labels_<tag>.pt`` and,
    where saved, ``{prefix}lr_<tag>.pt``; images in the reference normalisation."""
    images_file, tag = iteration_files(path, prefix, what)
    folder = images_file.parent
    labels_file, lr_file = folder / f"{prefix}labels_{tag}.pt", folder / f"{prefix}lr_{tag}.pt"
    if not labels_file.is_file():
        raise DataError(f"{images_file} has no {labels_file.name} beside it")
    files, lr = [images_file, labels_file], None
    if lr_file.is_file():
        files.append(lr_file)
        lr = read_lr(lr_file)
    images, labels = torch_load(images_file), torch_load(labels_file)
    return FormatRead(images, labels, files, "reference", lr, details={"iteration": tag})


def to_reference_normalization(syn: SyntheticSet) -> torch.Tensor:
    """``syn``'s images in the reference code's normalisation (:data:`REFERENCE_NORMALIZATION`),
    as their scripts save them; unchanged for ZCA sets and datasets the table does not know."""
    images = syn.images.detach().cpu()
    if syn.dataset not in REFERENCE_NORMALIZATION or syn.zca:
        return images
    ref_mean, ref_std = (torch.tensor(v).view(1, -1, 1, 1) for v in REFERENCE_NORMALIZATION[syn.dataset])
    mean, std = torch.tensor(syn.mean).view(1, -1, 1, 1), torch.tensor(syn.std).view(1, -1, 1, 1)
    if torch.equal(ref_mean, mean) and torch.equal(ref_std, std):
        return images
    return ((images * std + mean - ref_mean) / ref_std).float()
