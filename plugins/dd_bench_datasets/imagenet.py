"""ImageNet-1K and its standard subsets, from the usual ImageFolder layout.

``--data-root DIR`` holds ``train/<class>/*.JPEG`` and ``val/``, either in class folders or flat
with Kaggle's ``LOC_val_solution.csv`` or the ILSVRC-2012 devkit's ``ILSVRC2012_devkit_t12/``
(in ``DIR`` or ``DIR/val``). Class folders are named by
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

from dd_bench.plugin import DataError, DataRequest, DatasetSpec, RealData, image_files

from .folder import class_folders, folder_data, labelled_files
from .imagenet_classes import IMAGENET1K_NAMES, IMAGENET1K_WNIDS, SUBSETS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KAGGLE_VAL = "LOC_val_solution.csv"
DEVKIT, DEVKIT_TRUTH = "ILSVRC2012_devkit_t12", "ILSVRC2012_validation_ground_truth.txt"
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
        raise DataError(
            f"{name}: {where} has class folder {unknown[0]!r}, which is not an ImageNet-1K wnid"
            " (expected folders named n######## or by class index 00000-00999)"
        )
    return {f: f for f in folders}


def _split(name: str, split_dir: Path, wnids: Sequence[str]) -> tuple[list[Path], list[int]]:
    """The images of ``wnids`` in one split given as class folders."""
    folders = class_folders(name, split_dir)
    to_wnid = folder_wnids(name, list(folders), split_dir)
    wanted = set(wnids)
    present = {w for w in to_wnid.values() if w in wanted}
    missing = [w for w in wnids if w not in present]
    if missing:
        raise DataError(
            f"{name}: {len(missing)} of its {len(wnids)} classes have no folder in {split_dir}"
            f" (e.g. {missing[0]}, {NAME_OF[missing[0]]}); is --data-root the right folder?"
        )
    kept = {f: p for f, p in folders.items() if to_wnid[f] in wanted}
    return labelled_files(name, kept, wnids, class_of=to_wnid.__getitem__)


def _flat_val(name: str, root: Path, wnids: Sequence[str]) -> tuple[list[Path], list[int]]:
    """ImageNet's val as flat files, labelled by Kaggle's ``LOC_val_solution.csv`` or by the
    ILSVRC-2012 devkit (``ILSVRC2012_devkit_t12/data/``: ``meta.mat`` and
    ``ILSVRC2012_validation_ground_truth.txt``, whose line i labels ``ILSVRC2012_val_<i>``)."""
    places = (root, root / "val")
    sheet = next((p / KAGGLE_VAL for p in places if (p / KAGGLE_VAL).is_file()), None)
    devkit = next((p / DEVKIT for p in places if (p / DEVKIT / "data" / DEVKIT_TRUTH).is_file()), None)
    if sheet is not None:
        wnid_of, source = _kaggle_labels(name, sheet), sheet
    elif devkit is not None:
        wnid_of, source = _devkit_labels(name, devkit / "data"), devkit
    else:
        raise DataError(
            f"{name}: {root / 'val'} has no class folders and no ground truth labels them (put Kaggle's"
            f" {KAGGLE_VAL} or the devkit's {DEVKIT}/ folder in {root}, or sort val/ into <wnid>/ folders)"
        )
    by_stem = {p.stem: p for p in image_files(root / "val")}
    index = {w: i for i, w in enumerate(wnids)}
    files, labels = [], []
    for stem, wnid in wnid_of.items():
        if wnid not in NAME_OF:
            raise DataError(f"{name}: {source} labels {stem!r} with {wnid!r}, not an ImageNet-1K wnid")
        if wnid in index:
            if stem not in by_stem:
                raise DataError(f"{name}: {source} names {stem!r}, which is not in {root / 'val'}")
            files.append(by_stem[stem])
            labels.append(index[wnid])
    order = sorted(range(len(files)), key=lambda i: files[i])
    return [files[i] for i in order], [labels[i] for i in order]


def _kaggle_labels(name: str, sheet: Path) -> dict[str, str]:
    with open(sheet, newline="") as fh:
        return {row["ImageId"]: (row.get("PredictionString") or "").split(" ")[0] for row in csv.DictReader(fh)}


def _devkit_labels(name: str, data: Path) -> dict[str, str]:
    """The devkit's labels: ILSVRC2012_IDs of the leaf synsets in ``meta.mat`` -> wnids."""
    import scipy.io

    try:
        synsets = scipy.io.loadmat(data / "meta.mat", squeeze_me=True)["synsets"]
        wnid_of_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"{name}: {data / 'meta.mat'} is not the devkit's synset table ({type(exc).__name__}: {exc})"
        ) from None
    labels = {}
    for i, line in enumerate((data / DEVKIT_TRUTH).read_text().split(), start=1):
        if not line.isdigit() or int(line) not in wnid_of_id:
            raise DataError(
                f"{name}: line {i} of {data / DEVKIT_TRUTH} is {line!r}, not a class ID of {data / 'meta.mat'}"
            )
        labels[f"ILSVRC2012_val_{i:08d}"] = wnid_of_id[int(line)]
    return labels


def load_imagenet(name: str, wnids: Sequence[str], resolution: int, request: DataRequest) -> RealData:
    if request.root is None:
        raise DataError(
            f"{name}: needs --data-root DIR (or data.root in a suite): a folder holding train/<wnid>/"
            " and val/ (class folders, or flat with LOC_val_solution.csv or the devkit)"
        )
    root = Path(request.root).expanduser()
    request = dataclasses.replace(request, resolution=request.resolution or resolution)
    val = root / "val"
    has_folders = val.is_dir() and any(p.is_dir() for p in val.iterdir())
    test = _split(name, val, wnids) if has_folders else _flat_val(name, root, wnids)
    return folder_data(
        name,
        root,
        _split(name, root / "train", wnids),
        test,
        tuple(wnids),
        request,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        names=[NAME_OF[w] for w in wnids],
    )


DATASETS = {
    "imagenet1k": (IMAGENET1K_WNIDS, 224, "ImageNet-1K (ILSVRC-2012), 1000 classes"),
    "imagenet100": (SUBSETS["imagenet100"].wnids, 224, "ImageNet-100 as CMC defines it, from an ImageNet-1K folder"),
    "imagenette": (SUBSETS["imagenette"].wnids, 128, "fastai's Imagenette (--data-root: the imagenette2 archive)"),
    "imagewoof": (SUBSETS["imagewoof"].wnids, 128, "fastai's ImageWoof (--data-root: the imagewoof2 archive)"),
    **{
        n: (SUBSETS[n].wnids, 128, f"MTT's {n.removesuffix('_mtt')} subset of ImageNet-1K (--data-root: ImageNet-1K)")
        for n in ("imagenette_mtt", "imagewoof_mtt", "imagefruit", "imageyellow", "imagemeow", "imagesquawk")
    },
}


def dataset_specs() -> list[DatasetSpec]:
    def loader(name: str, wnids: Sequence[str], resolution: int):
        return lambda request: load_imagenet(name, wnids, resolution, request)

    return [
        DatasetSpec(name, loader(name, wnids, size), f"{text}; {size} px unless --resolution")
        for name, (wnids, size, text) in DATASETS.items()
    ]
