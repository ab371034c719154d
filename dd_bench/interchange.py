"""Sets in and out: read the files distilled sets are published in, write ours for other tools.

Import formats (``dd-bench import FORMAT PATH``), each read the way its source code writes it:

* ``dc``: DatasetCondensation's ``res_<method>_<data>_<model>_<ipc>ipc.pt``, a dict whose
  ``data`` holds one ``[images, labels]`` pair per experiment (pick one; default the last, as
  DC-BENCH does), images normalised with the source's mean/std;
* ``mtt`` / ``datm``: a folder of ``images_<it>.pt`` / ``labels_<it>.pt`` (``best`` preferred,
  else the highest iteration; DATM's sit in ``Normal/``), labels hard or DATM's learned soft
  logits, and the learned lr where saved (``lr_<it>.pt``; MTT logs it only, pass ``--lr``);
  ``--zca`` for a set that lives in ZCA space (its test set is then whitened the same way);
* ``image-folder``: PNG/JPEG class folders as SRe2L, RDED and CDA publish them, folders named by
  index (``00000``, mapped by number, never by string order) or by the dataset's class id/name;
* ``tensors``: a file holding ``images`` and ``labels`` (a dict, or a pair) in a stated
  normalisation (``--normalization``, or the file's own ``normalization`` key as ``export`` writes);
* ``dd-bench``: a set written by dd-bench (``distill``, ``import``), checked against the dataset
  and the IPC and kept as it is, with its source recorded: how suites and ``report`` take such sets.

Every check runs before anything is written; the set records where it came from (format, the
path as given, a content hash of the files read), the normalisation it came in and how it was
converted, and carries what its evaluation needs (ZCA, learned lr, soft labels) as its own fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .errors import ConfigError, DataError
from .specs import RealData
from .synthetic import SyntheticSet, atomic_torch_save

IMPORT_FORMATS = ("dc", "mtt", "datm", "image-folder", "tensors", "dd-bench")
EXPORT_FORMATS = ("image-folder", "tensors", "mtt")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

REFERENCE_NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # DC's, MTT's and DATM's get_dataset: the mean/std their saved images are normalised with
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2861,), (0.3530,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    **{name: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) for name in (
        "tiny_imagenet", "imagenet1k", "imagenet100", "imagenette", "imagewoof", "imagenette_mtt", "imagewoof_mtt",
        "imagefruit", "imageyellow", "imagemeow", "imagesquawk")},
}  # fmt: skip
NORMALIZATIONS = "unit (pixels in [0, 1]), 255 (pixels in [0, 255]), dataset (this dataset's mean/std), reference (DC/MTT's), or MEAN/STD (comma-separated per channel)"

ZCA_CHECK_MAX_VALUES = 4096
"""Images of at most this many values (C*H*W) get the ZCA check (a whitening fit on a sample of
the training split); larger ones are imported unchecked."""


@dataclass
class Read:
    """What a format reader found, before conversion."""

    images: torch.Tensor
    labels: torch.Tensor
    files: list[Path]
    normalization: str | None = None
    """The source's normalisation (see :data:`NORMALIZATIONS`); None: the user must state it."""
    lr: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- reading


def _torch_load(path: Path) -> Any:
    """``torch.load`` that builds tensors, containers and numpy scalars (DC saves its accuracies
    as numpy floats), never arbitrary objects; a truncated or foreign file is one line."""
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    scalar = np._core.multiarray.scalar  # named as numpy 2 pickles it, and as numpy 1 did
    safe = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *(type(np.dtype(t)) for t in ("float64", "float32", "int64"))]
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(safe):
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"{path} holds objects other than tensors, lists, dicts and numbers; refusing to unpickle it") from None
    except Exception as exc:  # zip, truncation and torch errors all mean the same to a user
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise DataError(f"{path} is not a readable torch file ({type(exc).__name__}: {reason})") from None


def read_dc(path: Path, experiment: int | None) -> Read:
    if path.is_dir():
        found = sorted(path.glob("res_*.pt"))
        if len(found) != 1:
            raise DataError(f"{path} holds {len(found)} res_*.pt files: give the file itself")
        path = found[0]
    blob = _torch_load(path)
    runs = blob.get("data") if isinstance(blob, dict) else None
    if not isinstance(runs, (list, tuple)) or not runs or not all(isinstance(r, (list, tuple)) and len(r) == 2 for r in runs):
        raise DataError(f"{path} is not a DC results file: expected a dict whose 'data' is a list of [images, labels] pairs")
    index = len(runs) - 1 if experiment is None else experiment
    if not 0 <= index < len(runs):
        raise ConfigError(f"--experiment {experiment} is not allowed: {path} holds experiments 0-{len(runs) - 1}")
    images, labels = runs[index]
    details: dict[str, Any] = {"experiment": index, "experiments": len(runs)}
    match = re.fullmatch(r"res_([^_]+)_(.+)_([^_]+)_(\d+)ipc\.pt", path.name)
    if match:
        details.update(zip(("method", "source_dataset", "model", "ipc"), (match[1], match[2], match[3], int(match[4]))))
    return Read(images, labels, [path], "reference", details=details)


def read_trajectory_folder(path: Path) -> Read:
    """MTT's and DATM's saved sets: ``images_<it>.pt``, ``labels_<it>.pt`` and ``lr_<it>.pt``."""
    folder, wanted = (path.parent, path.name) if path.is_file() else (path, None)
    if wanted is None and not list(folder.glob("images_*.pt")) and (folder / "Normal").is_dir():
        folder = folder / "Normal"  # DATM writes its sets there
    names = {p.name for p in folder.glob("*.pt")} if folder.is_dir() else set()
    tags = sorted((m[1] for n in names if (m := re.fullmatch(r"images_(best|\d+)\.pt", n))), key=lambda t: (t == "best", int(t) if t.isdigit() else 0))
    if wanted is not None:
        match = re.fullmatch(r"images_(best|\d+)\.pt", wanted)
        if not match:
            raise DataError(f"{path} is not an MTT/DATM images file: expected images_best.pt or images_<iteration>.pt")
        tags = [match[1]]
    if not tags:
        raise DataError(f"{path} holds no images_best.pt or images_<iteration>.pt (MTT/DATM's saved sets)")
    tag = tags[-1]
    images_file, labels_file, lr_file = (folder / f"{kind}_{tag}.pt" for kind in ("images", "labels", "lr"))
    if not labels_file.is_file():
        raise DataError(f"{images_file} has no {labels_file.name} beside it")
    files = [images_file, labels_file]
    lr = None
    if lr_file.is_file():
        files.append(lr_file)
        value = _torch_load(lr_file)
        try:
            lr = float(value.reshape(-1)[0]) if isinstance(value, torch.Tensor) and value.numel() == 1 else float(value)
        except (TypeError, ValueError):
            raise DataError(f"{lr_file} holds {type(value).__name__}, not one learning rate") from None
    return Read(_torch_load(images_file), _torch_load(labels_file), files, "reference", lr, {"iteration": tag})


def _class_index(name: str, data: RealData) -> int:
    """A class folder's label: the dataset's class id or name, or an index (``00007`` is 7)."""
    if name in data.classes:
        return data.classes.index(name)
    if data.names and name in data.names:
        return data.names.index(name)
    if name.isdigit() and int(name) < data.num_classes:
        return int(name)
    shown = ", ".join(data.classes[:5]) + (", ..." if data.num_classes > 5 else "")
    raise DataError(f"class folder {name!r} is not a class of {data.name} (use its class ids {shown}, their names, or indices"
                    f" 0-{data.num_classes - 1} such as {0:05d})")  # fmt: skip


def read_image_folder(path: Path, data: RealData) -> Read:
    from PIL import Image, UnidentifiedImageError

    if not path.is_dir():
        raise DataError(f"{path} is not a folder of class folders")
    channels, height, width = data.shape.channels, data.shape.height, data.shape.width
    images, labels, files = [], [], []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        c = _class_index(folder.name, data)
        for file in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                with Image.open(file) as im:
                    im = im.convert("L" if channels == 1 else "RGB")
                    pixels = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{file} is not a readable image ({exc})") from None
            if pixels.shape[:2] != (height, width):
                raise DataError(f"{file} is {pixels.shape[1]}x{pixels.shape[0]} px; {data.name} images are {width}x{height}"
                                " (pass --resolution when the dataset takes one)")  # fmt: skip
            images.append(torch.from_numpy(pixels.reshape(height, width, -1).copy()).permute(2, 0, 1))
            labels.append(c)
            files.append(file)
    if not images:
        raise DataError(f"{path} holds no PNG or JPEG images in class folders ({path}/<class>/*.png)")
    return Read(torch.stack(images).float(), torch.tensor(labels), files, "255")


def read_tensors(path: Path) -> Read:
    blob = _torch_load(path)
    if isinstance(blob, (list, tuple)) and len(blob) == 2:
        blob = {"images": blob[0], "labels": blob[1]}
    if not isinstance(blob, dict) or "images" not in blob or "labels" not in blob:
        raise DataError(f"{path} is not a tensors file: expected a dict with 'images' and 'labels' (or an (images, labels) pair)")
    normalization = blob.get("normalization")
    if normalization is not None and not isinstance(normalization, str):
        raise DataError(f"{path}: 'normalization' must be text ({NORMALIZATIONS})")
    lr = blob.get("lr")
    return Read(blob["images"], blob["labels"], [path], normalization, None if lr is None else float(lr),
                {k: blob[k] for k in ("zca",) if k in blob})  # fmt: skip


# ---------------------------------------------------------------------------- converting


def source_normalization(text: str, data: RealData) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` with ``pixels = x * std + mean`` for a normalisation named as in :data:`NORMALIZATIONS`."""
    c = data.shape.channels
    if text == "unit":
        mean, std = (0.0,) * c, (1.0,) * c
    elif text == "255":
        mean, std = (0.0,) * c, (1 / 255,) * c
    elif text == "dataset":
        mean, std = data.mean, data.std
    elif text == "reference":
        if data.name not in REFERENCE_NORMALIZATION:
            raise ConfigError(f"--normalization reference is not known for {data.name} (known for {', '.join(sorted(REFERENCE_NORMALIZATION))}):"
                              f" state it, one of {NORMALIZATIONS}")  # fmt: skip
        mean, std = REFERENCE_NORMALIZATION[data.name]
    else:
        try:
            mean, std = (tuple(float(v) for v in part.split(",")) for part in text.split("/"))
        except ValueError:
            raise ConfigError(f"--normalization {text!r} is not allowed: use {NORMALIZATIONS}") from None
        if len(mean) != c or len(std) != c or not all(s > 0 for s in std) or not all(map(np.isfinite, mean + std)):
            raise ConfigError(f"--normalization {text!r} is not allowed: give {c} mean(s) and {c} positive std(s) for {data.name}")
    return torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)


def adjacent_correlation(images: torch.Tensor) -> float:
    """Correlation of horizontally adjacent pixels over a set: whitening lowers it."""
    a, b = images[..., :-1].reshape(-1).double(), images[..., 1:].reshape(-1).double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def zca_reference(data: RealData, sample: int = 5000) -> tuple[float, float] | None:
    """:func:`adjacent_correlation` of real training images as they are and ZCA-whitened as the
    references whiten them (kornia's eps 0.1, fitted on a seeded sample); a set is judged by
    which of the two it is nearer. None for images over :data:`ZCA_CHECK_MAX_VALUES` values."""
    from .zca import ZCA

    c, h, w = data.shape.channels, data.shape.height, data.shape.width
    if c * h * w > ZCA_CHECK_MAX_VALUES or w < 2:
        return None
    n = len(data.train_y)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: min(n, sample)].sort().values
    x = torch.as_tensor(data.train_x[idx]).float()
    return adjacent_correlation(x[:1000]), adjacent_correlation(ZCA.fit(x).transform(x[:1000]))


def import_set(
    fmt: str, path: Path, data: RealData, ipc: int, *, experiment: int | None = None, zca: bool = False,
    normalization: str | None = None, lr: float | None = None, method: str | None = None,
    warn: Callable[[str], None] = lambda text: print(f"warning: {text}", file=sys.stderr),
) -> SyntheticSet:
    """The set in ``path`` (format ``fmt``) as a dd-bench set for ``data``, checked whole."""
    if fmt not in IMPORT_FORMATS:
        raise ConfigError(f"format {fmt!r} is not known: use one of {', '.join(IMPORT_FORMATS)}")
    if experiment is not None and fmt != "dc":
        raise ConfigError("--experiment is only for the dc format (a results file holds one set per experiment)")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if fmt == "dd-bench":
        if zca or normalization is not None or lr is not None:
            raise ConfigError("--zca, --normalization and --lr are not for the dd-bench format: a dd-bench set carries its own")
        return _own_set(path, data, ipc, method)
    if fmt == "dc":
        read = read_dc(path, experiment)
    elif fmt in ("mtt", "datm"):
        read = read_trajectory_folder(path)
    elif fmt == "image-folder":
        read = read_image_folder(path, data)
    else:
        read = read_tensors(path)
    if read.details.get("ipc") not in (None, ipc):
        raise ConfigError(f"--ipc {ipc} does not match {path.name}, which says {read.details['ipc']} images per class")
    stated = normalization or read.normalization
    if stated is None:
        raise ConfigError(f"{path} does not say how its images are normalised: pass --normalization, one of {NORMALIZATIONS}")
    images, labels = read.images, read.labels
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise DataError(f"{path}: images must be a tensor [N,C,H,W], got {type(images).__name__} {list(getattr(images, 'shape', []))}")
    if not isinstance(labels, torch.Tensor):
        raise DataError(f"{path}: labels must be a tensor, got {type(labels).__name__}")
    if list(images.shape[1:]) != [data.shape.channels, data.shape.height, data.shape.width]:
        raise DataError(f"{path}: images are {list(images.shape[1:])} (C,H,W); {data.name} images are"
                        f" {[data.shape.channels, data.shape.height, data.shape.width]}")  # fmt: skip
    if labels.ndim == 1 and not labels.is_floating_point():
        labels = labels.long()
        if len(labels) and (labels.min() < 0 or labels.max() >= data.num_classes):
            raise DataError(f"{path}: labels lie in [{int(labels.min())}, {int(labels.max())}]; {data.name} has classes 0-{data.num_classes - 1}")
    elif labels.shape != (len(images), data.num_classes):
        raise DataError(f"{path}: labels must be {len(images)} class indices or [{len(images)},{data.num_classes}] logits, got"
                        f" {labels.dtype} {list(labels.shape)}")  # fmt: skip
    hard = labels if labels.ndim == 1 else labels.argmax(1)
    if len(hard) != len(images):
        raise DataError(f"{path}: {len(images)} images but {len(hard)} labels")
    counts = torch.bincount(hard, minlength=data.num_classes)
    if (counts != ipc).any():
        c = int((counts != ipc).nonzero()[0])
        raise DataError(f"{path}: class {c} has {int(counts[c])} images; --ipc {ipc} means {ipc} of every class ({len(images)} images in all)")
    zca = zca or bool(read.details.get("zca", False))
    if zca and stated not in ("dataset", "reference"):
        raise ConfigError("--zca is for sets saved in ZCA space (dc, mtt, datm, or tensors with --normalization dataset)")
    src_mean, src_std = source_normalization(stated, data)
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    images = images.float()
    same = torch.equal(src_mean, mean) and torch.equal(src_std, std)
    if not same:
        if zca:
            raise ConfigError(f"a ZCA set's normalisation cannot be converted: its source used mean {src_mean.flatten().tolist()},"
                              f" std {src_std.flatten().tolist()} and {data.name} uses {list(data.mean)}, {list(data.std)}")  # fmt: skip
        images = ((images * src_std.double() + src_mean.double() - mean.double()) / std.double()).float()
    reference = zca_reference(data) if zca or fmt in ("dc", "mtt", "datm") else None
    rho = adjacent_correlation(images) if reference is not None else None
    if reference is not None:
        plain, white = reference
        looks_white = abs(rho - white) < abs(rho - plain)
        if zca and not looks_white:
            warn(f"--zca given, but {path} does not look whitened (adjacent pixels correlate at {rho:.2f}; {data.name}'s"
                 f" images at {plain:.2f}, whitened at {white:.2f})")  # fmt: skip
        elif not zca and looks_white:
            warn(f"{path} looks ZCA-whitened (adjacent pixels correlate at {rho:.2f}; {data.name}'s images at {plain:.2f},"
                 f" whitened at {white:.2f}): pass --zca if its source whitened it")  # fmt: skip
    if lr is None:
        lr = read.lr
    source = {
        "format": fmt,
        "path": str(path),
        "sha256": source_files_hash(path),
        "files": len(read.files),
        "normalization": stated,
        "source_mean": src_mean.flatten().tolist(),
        "source_std": src_std.flatten().tolist(),
        "converted": "unchanged: the source uses this dataset's normalisation" if same
        else f"pixels = x * source_std + source_mean, then normalised with {data.name}'s mean/std",
        **({"adjacent_pixel_correlation": round(rho, 4)} if rho is not None else {}),
        **{k: v for k, v in read.details.items() if k != "zca"},
    }
    name = method or read.details.get("method", fmt if fmt != "image-folder" else "imported")
    syn = SyntheticSet(
        images=images.contiguous(), labels=labels.float() if labels.ndim == 2 else labels, num_classes=data.num_classes,
        dataset=data.name, method=str(name).lower(), ipc=ipc, mean=data.mean, std=data.std, zca=zca, lr=lr,
        metadata={"source": source, "imported": True},
    )  # fmt: skip
    return syn


def _own_set(path: Path, data: RealData, ipc: int, method: str | None) -> SyntheticSet:
    """A dd-bench set file as it is, checked against ``data`` and ``ipc``, its source recorded."""
    if path.is_dir():
        raise DataError(f"{path} is a folder: the dd-bench format is one set file written by dd-bench distill or import")
    syn = SyntheticSet.load(path)
    syn.check_compatible(data)
    if syn.dataset != data.name:
        raise DataError(f"{path} holds a set of {syn.dataset}, not of {data.name}")
    if syn.ipc != ipc:
        raise ConfigError(f"--ipc {ipc} does not match {path.name}, which holds {syn.ipc} images per class")
    if (syn.mean, syn.std) != (data.mean, data.std):
        raise DataError(f"{path} is normalised with mean {list(syn.mean)}, std {list(syn.std)}; {data.name} here uses"
                        f" {list(data.mean)}, {list(data.std)}: export it (dd-bench export --format tensors) and import that")  # fmt: skip
    source = {"format": "dd-bench", "path": str(path), "sha256": source_files_hash(path), "files": 1,
              "normalization": "dataset", "converted": "unchanged: a dd-bench set"}  # fmt: skip
    if "source" in syn.metadata:  # imported before: keep where it first came from
        source["imported_from"] = syn.metadata["source"]
    return dataclasses.replace(syn, method=(method or syn.method).lower(), metadata={**syn.metadata, "source": source})


def source_files_hash(path: Path) -> str:
    """SHA-256 of what ``path`` holds: the file, or every file under the folder with its relative name."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update((f.relative_to(path).as_posix() if path.is_dir() else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- exporting


def export_set(syn: SyntheticSet, fmt: str, out: Path) -> Path:
    """Write ``syn`` for other tools; refuses to replace anything at ``out``. Sets that store
    several images per image (``factor`` > 1) are written decoded, as training reads them."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"format {fmt!r} is not known for export: use one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if out.exists():
        raise DataError(f"{out} exists; export writes a new file or folder and replaces nothing")
    flat = syn.decoded()
    if fmt == "tensors":
        blob = {"images": flat.images.cpu(), "labels": flat.labels.cpu(), "lr": flat.lr,
                "weights": None if flat.weights is None else flat.weights.cpu(), "dataset": flat.dataset, "method": flat.method}  # fmt: skip
        if flat.zca:
            blob.update(normalization="dataset", zca=True, mean=list(flat.mean), std=list(flat.std))
        else:
            blob.update(images=flat.denormalized(), normalization="unit")
        atomic_torch_save(blob, out)
        return out
    if fmt == "image-folder" and flat.zca:
        raise ConfigError("a ZCA set's images are not pixels: export it as tensors or mtt")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None))
    try:
        if fmt == "image-folder":
            from PIL import Image

            pixels = (flat.denormalized().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            hard = flat.hard_labels().tolist()
            for i, (image, c) in enumerate(zip(pixels, hard)):
                folder = staging / f"{c:05d}"
                folder.mkdir(exist_ok=True)
                Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(folder / f"{i:05d}.png")
            if flat.soft_labels:
                torch.save(flat.labels.cpu(), staging / "soft_labels.pt")  # logits, in the images' order
        else:  # mtt: images in the references' normalisation, as their distill.py saves them
            images = flat.images.cpu()
            if flat.dataset in REFERENCE_NORMALIZATION and not flat.zca:
                ref_mean, ref_std = (torch.tensor(v).view(1, -1, 1, 1) for v in REFERENCE_NORMALIZATION[flat.dataset])
                mean, std = torch.tensor(flat.mean).view(1, -1, 1, 1), torch.tensor(flat.std).view(1, -1, 1, 1)
                if not (torch.equal(ref_mean, mean) and torch.equal(ref_std, std)):
                    images = ((images * std + mean - ref_mean) / ref_std).float()
            torch.save(images, staging / "images_best.pt")
            torch.save(flat.labels.cpu(), staging / "labels_best.pt")
            if flat.lr is not None:
                torch.save(torch.tensor(flat.lr), staging / "lr_best.pt")
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
