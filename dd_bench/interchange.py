"""Sets in and out: read the files distilled sets are published in, write ours for other tools.

Formats are plugins' (``ddb_register_formats``, :class:`dd_bench.formats.FormatSpec`): each
method's plugin reads the files its published code writes, and the host does the rest. The
built-in ones (``dd-bench import FORMAT PATH``):

* ``dc`` (dd_bench_dc): DatasetCondensation's ``res_<method>_<data>_<model>_<ipc>ipc.pt``, one
  ``[images, labels]`` pair per experiment (``--experiment``, default the last, as DC-BENCH does);
* ``mtt`` (dd_bench_mtt): a folder of ``images_<it>.pt`` / ``labels_<it>.pt`` (``best`` preferred,
  else the highest iteration); MTT logs its learned lr only, pass ``--lr``;
* ``datm`` (dd_bench_datm): the same in DATM's ``Normal/``, with learned soft labels and ``lr_<it>.pt``;
* ``ftd`` (dd_bench_ftd): FTD's EMA set, ``ema_logged_files/<dataset>/<run>/ema_images_best.pt``;
* ``image-folder`` (the host's): PNG/JPEG class folders as SRe2L, RDED and CDA publish them, folders
  named by index (``00000``, mapped by number, never by string order) or by the dataset's class id/name;
* ``tensors`` (the host's): a file holding ``images`` and ``labels`` (a dict, or a pair) in a stated
  normalisation (``--normalization``, or the file's own ``normalization`` key as ``export`` writes);
* ``dd-bench`` (the host's): a set written by dd-bench (``distill``, ``import``), checked against the
  dataset and the IPC and kept as it is, with its source recorded: how suites and ``report`` take such sets.

``--zca`` marks a set that lives in ZCA space (its test set is then whitened the same way). Every
check runs before anything is written; the set records where it came from (format, the path as
given, a content hash of the files read), the normalisation it came in and how it was converted,
and carries what its evaluation needs (ZCA, learned lr, soft labels) as its own fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, DataError, UnknownNameError
from .formats import (
    REFERENCE_NORMALIZATION,
    FormatRead,
    FormatSpec,
    ReadRequest,
    torch_load,
)
from .specs import RealData
from .synthetic import SyntheticSet, atomic_torch_save

IMPORT_FORMATS = ("dc", "mtt", "datm", "ftd", "image-folder", "tensors", "dd-bench")
"""The import formats of dd-bench and its built-in plugins (:func:`import_formats` lists those of a registry)."""
EXPORT_FORMATS = ("image-folder", "tensors", "mtt")
"""The export formats of dd-bench and its built-in plugins (:func:`export_formats` lists those of a registry)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_EVAL_LR = 0.01
"""The evaluation's lr for a set without a learned one (``dd_bench.evaluate``)."""

__all__ = [
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "NORMALIZATIONS",
    "REFERENCE_NORMALIZATION",
    "export_formats",
    "export_set",
    "format_spec",
    "formats",
    "import_formats",
    "import_set",
    "source_files_hash",
]

NORMALIZATIONS = "unit (pixels in [0, 1]), 255 (pixels in [0, 255]), dataset (this dataset's mean/std), reference (DC/MTT's), or MEAN/STD (comma-separated per channel)"

ZCA_CHECK_MAX_VALUES = 4096
"""Images of at most this many values (C*H*W) get the ZCA check (a whitening fit on a sample of
the training split); larger ones are imported unchecked."""


# ---------------------------------------------------------------------------- the host's formats


def _class_index(name: str, data: RealData) -> int:
    """A class folder's label: the dataset's class id or name, or an index (``00007`` is 7)."""
    if name in data.classes:
        return data.classes.index(name)
    if data.names and name in data.names:
        return data.names.index(name)
    if name.isdigit() and int(name) < data.num_classes:
        return int(name)
    shown = ", ".join(data.classes[:5]) + (", ..." if data.num_classes > 5 else "")
    raise DataError(
        f"class folder {name!r} is not a class of {data.name} (use its class ids {shown}, their names, or indices"
        f" 0-{data.num_classes - 1} such as {0:05d})"
    )


def read_image_folder(path: Path, request: ReadRequest) -> FormatRead:
    from PIL import Image, UnidentifiedImageError

    data = request.data
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
                raise DataError(
                    f"{file} is {pixels.shape[1]}x{pixels.shape[0]} px; {data.name} images are {width}x{height}"
                    " (pass --resolution when the dataset takes one)"
                )
            images.append(torch.from_numpy(pixels.reshape(height, width, -1).copy()).permute(2, 0, 1))
            labels.append(c)
            files.append(file)
    if not images:
        raise DataError(f"{path} holds no PNG or JPEG images in class folders ({path}/<class>/*.png)")
    return FormatRead(torch.stack(images).float(), torch.tensor(labels), files, "255")


def read_tensors(path: Path, request: ReadRequest) -> FormatRead:
    blob = torch_load(path)
    if isinstance(blob, (list, tuple)) and len(blob) == 2:
        blob = {"images": blob[0], "labels": blob[1]}
    if not isinstance(blob, dict) or "images" not in blob or "labels" not in blob:
        raise DataError(
            f"{path} is not a tensors file: expected a dict with 'images' and 'labels' (or an (images, labels) pair)"
        )
    normalization = blob.get("normalization")
    if normalization is not None and not isinstance(normalization, str):
        raise DataError(f"{path}: 'normalization' must be text ({NORMALIZATIONS})")
    lr = blob.get("lr")
    return FormatRead(
        blob["images"],
        blob["labels"],
        [path],
        normalization,
        None if lr is None else float(lr),
        details={k: blob[k] for k in ("zca",) if k in blob},
    )


def write_tensors(syn: SyntheticSet, out: Path) -> None:
    """A .pt of images (in [0, 1], or in ZCA space with the dataset's mean/std) and labels, as ``tensors`` reads it."""
    blob = {
        "images": syn.images.cpu(),
        "labels": syn.labels.cpu(),
        "lr": syn.lr,
        "weights": None if syn.weights is None else syn.weights.cpu(),
        "dataset": syn.dataset,
        "method": syn.method,
    }
    if syn.zca:
        blob.update(normalization="dataset", zca=True, mean=list(syn.mean), std=list(syn.std))
    else:
        blob.update(images=syn.denormalized(), normalization="unit")
    atomic_torch_save(blob, out)


def write_image_folder(syn: SyntheticSet, out: Path) -> None:
    """PNG class folders ``00000/...`` (soft labels beside them as ``soft_labels.pt``, in the images' order)."""
    from PIL import Image

    if syn.zca:
        raise ConfigError("a ZCA set's images are not pixels: export it as tensors or mtt")
    pixels = (syn.denormalized().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out.mkdir()
    for i, (image, c) in enumerate(zip(pixels, syn.hard_labels().tolist())):
        folder = out / f"{c:05d}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(folder / f"{i:05d}.png")
    if syn.soft_labels:
        torch.save(syn.labels.cpu(), out / "soft_labels.pt")  # logits, in the images' order


def _read_own(path: Path, request: ReadRequest) -> FormatRead:
    raise AssertionError("the dd-bench format is read whole by import_set")  # never called: see import_set


HOST_FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            "image-folder",
            "PNG/JPEG class folders (SRe2L, RDED, CDA), named by class index, id or name",
            read_image_folder,
            write_image_folder,
            method="imported",
        ),
        FormatSpec("tensors", "a .pt of images and labels in a stated normalisation", read_tensors, write_tensors),
        FormatSpec("dd-bench", "a set written by dd-bench (distill, import), kept as it is", _read_own),
    )
}
"""The generic formats, the host's own; every method-specific one is a plugin's."""


def formats(registry: Any = None) -> dict[str, FormatSpec]:
    """Every format by name: the host's and those the registry's plugins register (``None``: the
    installed plugins'). A plugin format named like one of the host's is an error naming the plugin."""
    if registry is None:
        from .plugins import Registry

        registry = Registry()
    found = dict(HOST_FORMATS)
    for name, registered in registry.formats.items():
        if name in found:
            raise ConfigError(
                f"format {name!r} is registered twice: by dd-bench itself and by plugin {registered.plugin!r}"
            )
        found[name] = registered.spec
    return found


def import_formats(registry: Any = None) -> list[str]:
    """The names ``dd-bench import FORMAT`` takes (host formats first, then the plugins' in registration order)."""
    return [name for name, spec in formats(registry).items() if spec.read is not None]


def export_formats(registry: Any = None) -> list[str]:
    """The names ``dd-bench export --format`` takes."""
    return [name for name, spec in formats(registry).items() if spec.write is not None]


def format_spec(name: str, registry: Any = None, *, export: bool = False) -> FormatSpec:
    """The format ``name`` (:class:`UnknownNameError` naming the known ones for the direction asked)."""
    known = formats(registry)
    usable = [n for n, s in known.items() if (s.write if export else s.read) is not None]
    if name not in usable:
        raise UnknownNameError("export format" if export else "import format", name, usable)
    return known[name]


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
            raise ConfigError(
                f"--normalization reference is not known for {data.name} (known for {', '.join(sorted(REFERENCE_NORMALIZATION))}):"
                f" state it, one of {NORMALIZATIONS}"
            )
        mean, std = REFERENCE_NORMALIZATION[data.name]
    else:
        try:
            mean, std = (tuple(float(v) for v in part.split(",")) for part in text.split("/"))
        except ValueError:
            raise ConfigError(f"--normalization {text!r} is not allowed: use {NORMALIZATIONS}") from None
        if len(mean) != c or len(std) != c or not all(s > 0 for s in std) or not all(map(np.isfinite, mean + std)):
            raise ConfigError(
                f"--normalization {text!r} is not allowed: give {c} mean(s) and {c} positive std(s) for {data.name}"
            )
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
    fmt: str,
    path: Path,
    data: RealData,
    ipc: int,
    *,
    experiment: int | None = None,
    zca: bool = False,
    normalization: str | None = None,
    lr: float | None = None,
    method: str | None = None,
    warn: Callable[[str], None] = lambda text: print(f"warning: {text}", file=sys.stderr),
    registry: Any = None,
) -> SyntheticSet:
    """The set in ``path`` (format ``fmt``, the host's or a plugin's of ``registry``; ``None``: the
    installed plugins') as a dd-bench set for ``data``, checked whole."""
    spec = format_spec(fmt, registry)
    if experiment is not None and "experiment" not in spec.options:
        takes = [n for n, s in formats(registry).items() if "experiment" in s.options]
        raise ConfigError(
            f"--experiment is only for the {', '.join(takes) or 'no'} format"
            " (a results file holds one set per experiment)"
        )
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if fmt == "dd-bench":
        if zca or normalization is not None or lr is not None:
            raise ConfigError(
                "--zca, --normalization and --lr are not for the dd-bench format: a dd-bench set carries its own"
            )
        return _own_set(path, data, ipc, method)
    read = spec.read(path, ReadRequest(data, ipc, experiment))
    if not isinstance(read, FormatRead):
        raise ConfigError(f"format {fmt!r} returned {type(read).__name__} from read; expected FormatRead")
    if read.details.get("ipc") not in (None, ipc):
        raise ConfigError(f"--ipc {ipc} does not match {path.name}, which says {read.details['ipc']} images per class")
    stated = normalization or read.normalization
    if stated is None:
        raise ConfigError(
            f"{path} does not say how its images are normalised: pass --normalization, one of {NORMALIZATIONS}"
        )
    images, labels = read.images, read.labels
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise DataError(
            f"{path}: images must be a tensor [N,C,H,W], got {type(images).__name__} {list(getattr(images, 'shape', []))}"
        )
    if not isinstance(labels, torch.Tensor):
        raise DataError(f"{path}: labels must be a tensor, got {type(labels).__name__}")
    images, labels = images.detach(), labels.detach()  # sets saved mid-optimisation carry requires_grad (DATM's)
    if list(images.shape[1:]) != [data.shape.channels, data.shape.height, data.shape.width]:
        raise DataError(
            f"{path}: images are {list(images.shape[1:])} (C,H,W); {data.name} images are"
            f" {[data.shape.channels, data.shape.height, data.shape.width]}"
        )
    if labels.ndim == 1 and not labels.is_floating_point():
        labels = labels.long()
        if len(labels) and (labels.min() < 0 or labels.max() >= data.num_classes):
            raise DataError(
                f"{path}: labels lie in [{int(labels.min())}, {int(labels.max())}]; {data.name} has classes 0-{data.num_classes - 1}"
            )
    elif labels.shape != (len(images), data.num_classes):
        raise DataError(
            f"{path}: labels must be {len(images)} class indices or [{len(images)},{data.num_classes}] logits, got"
            f" {labels.dtype} {list(labels.shape)}"
        )
    hard = read.classes if read.classes is not None else labels if labels.ndim == 1 else labels.argmax(1)
    if len(hard) != len(images):
        raise DataError(f"{path}: {len(images)} images but {len(hard)} labels")
    counts = torch.bincount(hard.long(), minlength=data.num_classes)
    if (counts != ipc).any():
        c = int((counts != ipc).nonzero()[0])
        raise DataError(
            f"{path}: class {c} has {int(counts[c])} images; --ipc {ipc} means {ipc} of every class ({len(images)} images in all)"
        )
    zca = zca or bool(read.details.get("zca", False))
    if zca and stated not in ("dataset", "reference"):
        raise ConfigError(
            "--zca is for sets saved in ZCA space (in the reference normalisation, or with --normalization dataset)"
        )
    src_mean, src_std = source_normalization(stated, data)
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    images = images.float()
    same = torch.equal(src_mean, mean) and torch.equal(src_std, std)
    if not same:
        if zca:
            raise ConfigError(
                f"a ZCA set's normalisation cannot be converted: its source used mean {src_mean.flatten().tolist()},"
                f" std {src_std.flatten().tolist()} and {data.name} uses {list(data.mean)}, {list(data.std)}"
            )
        images = ((images * src_std.double() + src_mean.double() - mean.double()) / std.double()).float()
    reference = zca_reference(data) if zca or spec.zca_check else None
    rho = adjacent_correlation(images) if reference is not None else None
    if reference is not None:
        plain, white = reference
        looks_white = abs(rho - white) < abs(rho - plain)
        if zca and not looks_white:
            warn(
                f"--zca given, but {path} does not look whitened (adjacent pixels correlate at {rho:.2f}; {data.name}'s"
                f" images at {plain:.2f}, whitened at {white:.2f})"
            )
        elif not zca and looks_white:
            warn(
                f"{path} looks ZCA-whitened (adjacent pixels correlate at {rho:.2f}; {data.name}'s images at {plain:.2f},"
                f" whitened at {white:.2f}): pass --zca if its source whitened it"
            )
    if lr is None:
        lr = read.lr
    if lr is None and spec.learns_lr:
        warn(
            f"{path} carries no learned lr ({fmt} learns one but does not save it here): the evaluation will use the"
            f" default {DEFAULT_EVAL_LR}; pass --lr with the lr the run learned"
        )
    source = {
        "format": fmt,
        "path": str(path),
        "sha256": source_files_hash(path),
        "files": len(read.files),
        "normalization": stated,
        "source_mean": src_mean.flatten().tolist(),
        "source_std": src_std.flatten().tolist(),
        "converted": "unchanged: the source uses this dataset's normalisation"
        if same
        else f"pixels = x * source_std + source_mean, then normalised with {data.name}'s mean/std",
        **({"adjacent_pixel_correlation": round(rho, 4)} if rho is not None else {}),
        **{k: v for k, v in read.details.items() if k != "zca"},
    }
    name = method or read.details.get("method", spec.method or fmt)
    syn = SyntheticSet(
        images=images.contiguous(),
        labels=labels.float() if labels.ndim == 2 else labels,
        num_classes=data.num_classes,
        dataset=data.name,
        method=str(name).lower(),
        ipc=ipc,
        mean=data.mean,
        std=data.std,
        zca=zca,
        lr=lr,
        metadata={"source": source, "imported": True},
    )
    return syn


def _own_set(path: Path, data: RealData, ipc: int, method: str | None) -> SyntheticSet:
    """A dd-bench set file as it is, checked against ``data`` and ``ipc``, its source recorded."""
    if path.is_dir():
        raise DataError(
            f"{path} is a folder: the dd-bench format is one set file written by dd-bench distill or import"
        )
    syn = SyntheticSet.load(path)
    syn.check_compatible(data)
    if syn.dataset != data.name:
        raise DataError(f"{path} holds a set of {syn.dataset}, not of {data.name}")
    if syn.ipc != ipc:
        raise ConfigError(f"--ipc {ipc} does not match {path.name}, which holds {syn.ipc} images per class")
    if (syn.mean, syn.std) != (data.mean, data.std):
        raise DataError(
            f"{path} is normalised with mean {list(syn.mean)}, std {list(syn.std)}; {data.name} here uses"
            f" {list(data.mean)}, {list(data.std)}: export it (dd-bench export --format tensors) and import that"
        )
    source = {
        "format": "dd-bench",
        "path": str(path),
        "sha256": source_files_hash(path),
        "files": 1,
        "normalization": "dataset",
        "converted": "unchanged: a dd-bench set",
    }
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


def export_set(syn: SyntheticSet, fmt: str, out: Path, *, registry: Any = None) -> Path:
    """Write ``syn`` for other tools in format ``fmt`` (the host's or a plugin's); refuses to replace
    anything at ``out``, and leaves nothing there when the format refuses the set. Sets that store
    several images per image (``factor`` > 1) are written decoded, as training reads them."""
    spec = format_spec(fmt, registry, export=True)
    out = Path(out)
    if out.exists():
        raise DataError(f"{out} exists; export writes a new file or folder and replaces nothing")
    flat = syn.decoded()
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None))
    try:
        made = staging / out.name
        spec.write(flat, made)
        if not made.exists():
            raise ConfigError(f"format {fmt!r} wrote nothing: its write must create the file or folder it is given")
        os.replace(made, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
