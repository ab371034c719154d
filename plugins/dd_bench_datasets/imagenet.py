"""ImageNet-1K and its standard subsets, from the usual ImageFolder layout.

``--data-root DIR`` holds ``train/<class>/*.JPEG`` and ``val/``, either in class folders or flat
with Kaggle's ``LOC_val_solution.csv`` (in ``DIR`` or ``DIR/val``). Class folders are named by
wnid (``n01440764``) or by ImageNet class index (``00000`` ... ``00999``), which maps through the
pinned wnid list, never through a string sort of numbers. Classes are the subset's wnids in
sorted order (:mod:`.imagenet_classes` says where each list comes from); ``val`` is the test
split. Images are resized (shorter side) and centre-cropped to the resolution (default: 128 for
the 10-class subsets, MTT's size; 224 for ImageNet-100 and ImageNet-1K) and normalised with
ImageNet's mean and std.

``imagenette``/``imagewoof`` are fastai's: point ``--data-root`` at the extracted imagenette2 or
imagewoof2 archive (its own, smaller train/val split). ``imagenette_mtt``/``imagewoof_mtt`` are
MTT's subsets of the same classes taken from the whole of ImageNet-1K (every training image of
each class, ImageNet's val as test): point ``--data-root`` at ImageNet-1K. The two differ in their
images, not their classes.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from dd_bench.errors import DataError
from dd_bench.images import image_files
from dd_bench.specs import DataRequest, DatasetSpec, RealData

from .folder import class_folders, folder_data, labelled_files
from .imagenet_classes import IMAGENET1K_NAMES, IMAGENET1K_WNIDS, SUBSETS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KAGGLE_VAL = "LOC_val_solution.csv"
NAME_OF = dict(zip(IMAGENET1K_WNIDS, IMAGENET1K_NAMES))


def folder_wnids(name: str, folders: Sequence[str], where: Path) -> dict[str, str]:
    """Folder name -> wnid: wnid folders as they are, index folders (all digits) through the wnid list."""
    if all(f.isdigit() for f in folders):
        bad = [f for f in folders if int(f) >= len(IMAGENET1K_WNIDS)]
        if bad:
            raise DataError(f"{name}: {where} has class folder {bad[0]!r}, beyond ImageNet-1K's 1000 class indices")
        return {f: IMAGENET1K_WNIDS[int(f)] for f in folders}
    unknown = [f for f in folders if f not in NAME_OF]
    if unknown:
        raise DataError(f"{name}: {where} has class folder {unknown[0]!r}, which is not an ImageNet-1K wnid"
                        " (expected folders named n######## or by class index 00000-00999)")
    return {f: f for f in folders}


def _split(name: str, split_dir: Path, wnids: Sequence[str]) -> tuple[list[Path], list[int]]:
    """The images of ``wnids`` in one split given as class folders."""
    folders = class_folders(name, split_dir)
    to_wnid = folder_wnids(name, list(folders), split_dir)
    wanted = set(wnids)
    present = {w for w in to_wnid.values() if w in wanted}
    missing = [w for w in wnids if w not in present]
    if missing:
        raise DataError(f"{name}: {len(missing)} of its {len(wnids)} classes have no folder in {split_dir}"
                        f" (e.g. {missing[0]}, {NAME_OF[missing[0]]}); is --data-root the right folder?")
    kept = {f: p for f, p in folders.items() if to_wnid[f] in wanted}
    return labelled_files(name, kept, wnids, class_of=to_wnid.__getitem__)


def _flat_val(name: str, root: Path, wnids: Sequence[str]) -> tuple[list[Path], list[int]]:
    """ImageNet's val as flat files labelled by Kaggle's ``LOC_val_solution.csv``."""
    sheet = next((p for p in (root / KAGGLE_VAL, root / "val" / KAGGLE_VAL) if p.is_file()), None)
    if sheet is None:
        raise DataError(f"{name}: {root / 'val'} has no class folders and no {KAGGLE_VAL} labels them"
                        f" (put Kaggle's {KAGGLE_VAL} in {root}, or sort val/ into <wnid>/ folders)")
    by_stem = {p.stem: p for p in image_files(root / "val")}
    index = {w: i for i, w in enumerate(wnids)}
    files, labels = [], []
    with open(sheet, newline="") as fh:
        for row in csv.DictReader(fh):
            wnid = (row.get("PredictionString") or "").split(" ")[0]
            if wnid not in NAME_OF:
                raise DataError(f"{name}: {sheet} labels {row.get('ImageId')!r} with {wnid!r}, not an ImageNet-1K wnid")
            if wnid in index:
                if row["ImageId"] not in by_stem:
                    raise DataError(f"{name}: {sheet} names {row['ImageId']!r}, which is not in {root / 'val'}")
                files.append(by_stem[row["ImageId"]])
                labels.append(index[wnid])
    order = sorted(range(len(files)), key=lambda i: files[i])
    return [files[i] for i in order], [labels[i] for i in order]


def load_imagenet(name: str, wnids: Sequence[str], resolution: int, request: DataRequest) -> RealData:
    if request.root is None:
        raise DataError(f"{name}: needs --data-root DIR (or data.root in a suite): a folder holding train/<wnid>/"
                        " and val/ (class folders, or flat with LOC_val_solution.csv)")
    root = Path(request.root).expanduser()
    request = dataclasses.replace(request, resolution=request.resolution or resolution)
    val = root / "val"
    has_folders = val.is_dir() and any(p.is_dir() for p in val.iterdir())
    test = _split(name, val, wnids) if has_folders else _flat_val(name, root, wnids)
    return folder_data(name, root, _split(name, root / "train", wnids), test, tuple(wnids), request,
                       mean=IMAGENET_MEAN, std=IMAGENET_STD)


DATASETS = {
    "imagenet1k": (IMAGENET1K_WNIDS, 224, "ImageNet-1K (ILSVRC-2012), 1000 classes"),
    "imagenet100": (SUBSETS["imagenet100"].wnids, 224, "ImageNet-100 as CMC defines it, from an ImageNet-1K folder"),
    "imagenette": (SUBSETS["imagenette"].wnids, 128, "fastai's Imagenette (--data-root: the imagenette2 archive)"),
    "imagewoof": (SUBSETS["imagewoof"].wnids, 128, "fastai's ImageWoof (--data-root: the imagewoof2 archive)"),
    **{n: (SUBSETS[n].wnids, 128, f"MTT's {n.removesuffix('_mtt')} subset of ImageNet-1K (--data-root: ImageNet-1K)")
       for n in ("imagenette_mtt", "imagewoof_mtt", "imagefruit", "imageyellow", "imagemeow", "imagesquawk")},
}


def dataset_specs() -> list[DatasetSpec]:
    def loader(name: str, wnids: Sequence[str], resolution: int):
        return lambda request: load_imagenet(name, wnids, resolution, request)

    return [DatasetSpec(name, loader(name, wnids, size), f"{text}; {size} px unless --resolution")
            for name, (wnids, size, text) in DATASETS.items()]
