"""The image benchmarks of the distillation literature, read from their usual on-disk formats.

(Fashion-)MNIST is read with our own IDX reader (so the Debian ``.gz`` files work as they
are); torchvision is used only to download it. CIFAR-10/100 and SVHN go through
torchvision's dataset classes, whose checks (md5 included) we keep. Tiny-ImageNet goes
through ``ImageFolder``. The normalisation constants are the ones every reference
implementation uses, so results are comparable with published numbers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dd_bench.plugin import DataError, DataRequest, RealData

from ._common import (
    DOWNLOAD_HINT,
    ROOT_HINT,
    data_root,
    default_root,
    missing,
    nhwc_to_nchw,
    open_torchvision,
    real_data,
    unique_paths,
)
from .idx import find_idx_files, read_idx_images, read_idx_labels

IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the four IDX ``.gz`` files."""

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(i) for i in range(10))

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_IMAGENET_DIR = "tiny-imagenet-200"
TINY_IMAGENET_SIZE = 64


# --------------------------------------------------------------------------- (Fashion-)MNIST


def _idx_dirs(request: DataRequest, folder: str, system_dirs: Sequence[Path]) -> list[Path]:
    """Where the IDX files may be: an explicit ``--data-root`` (flat, or torchvision's
    ``<folder>/raw``) and nowhere else, so a wrong root is never papered over by another
    copy; without one, the system dirs, then the cache."""
    if request.root is not None:
        root = Path(request.root).expanduser()
        return [root, root / folder / "raw"]
    return unique_paths([*system_dirs, default_root() / folder / "raw"])


def _load_idx_dataset(
    name: str,
    request: DataRequest,
    *,
    folder: str,
    system_dirs: Sequence[Path] = (),
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[str],
    hints: Sequence[str] = (),
) -> RealData:
    """Find the four IDX files (downloading with torchvision's ``<folder>`` class if allowed) and load them."""
    dirs = _idx_dirs(request, folder, system_dirs)
    files = find_idx_files(dirs, IDX_STEMS)
    if files is None and request.download:
        from torchvision import datasets

        root, cls = data_root(request), getattr(datasets, folder)
        raw = root / folder / "raw"
        open_torchvision(name, lambda: cls(str(root), train=True, download=True), raw, "the IDX files", True)
        files = find_idx_files([raw], IDX_STEMS)
    if files is None:
        what = "the IDX files " + ", ".join(f"{s}[.gz]" for s in IDX_STEMS)
        if request.root is None:
            raise missing(name, what, dirs, *hints, ROOT_HINT, DOWNLOAD_HINT)
        raise missing(
            name, what, dirs, "put them there", DOWNLOAD_HINT, "leave out --data-root to use the default places"
        )
    train_x = read_idx_images(files["train-images-idx3-ubyte"])
    train_y = read_idx_labels(files["train-labels-idx1-ubyte"], len(train_x))
    test_x = read_idx_images(files["t10k-images-idx3-ubyte"])
    test_y = read_idx_labels(files["t10k-labels-idx1-ubyte"], len(test_x))
    return real_data(
        name,
        torch.from_numpy(train_x).unsqueeze(1),
        train_y,
        torch.from_numpy(test_x).unsqueeze(1),
        test_y,
        mean=mean,
        std=std,
        classes=classes,
        request=request,
    )


def load_fashion_mnist(request: DataRequest) -> RealData:
    """Fashion-MNIST, 28x28 grey: the Debian package's files, ``--data-root``, or a download."""
    return _load_idx_dataset(
        "fashion_mnist",
        request,
        folder="FashionMNIST",
        system_dirs=(DEBIAN_FASHION_MNIST,),
        mean=(0.2861,),
        std=(0.3530,),
        classes=FASHION_MNIST_CLASSES,
        hints=("apt-get install dataset-fashion-mnist",),
    )


def load_mnist(request: DataRequest) -> RealData:
    """MNIST, 28x28 grey, from ``--data-root`` (flat or ``MNIST/raw``) or a torchvision download."""
    return _load_idx_dataset("mnist", request, folder="MNIST", mean=(0.1307,), std=(0.3081,), classes=DIGIT_CLASSES)


# --------------------------------------------------------------------------- CIFAR, SVHN


def _load_cifar(
    name: str, class_name: str, request: DataRequest, mean: Sequence[float], std: Sequence[float]
) -> RealData:
    """CIFAR-10/100 python batches through torchvision (its md5 checks stay on)."""
    from torchvision import datasets

    cls = getattr(datasets, class_name)
    root = data_root(request)
    where, what = root / cls.base_folder, f"intact {class_name} python batches"
    train = open_torchvision(
        name, lambda: cls(str(root), train=True, download=request.download), where, what, request.download
    )
    test = open_torchvision(name, lambda: cls(str(root), train=False), where, what, request.download)
    return real_data(
        name,
        nhwc_to_nchw(train.data),
        train.targets,
        nhwc_to_nchw(test.data),
        test.targets,
        mean=mean,
        std=std,
        classes=train.classes,
        request=request,
    )


def load_cifar10(request: DataRequest) -> RealData:
    """CIFAR-10, 32x32 RGB, 10 classes."""
    return _load_cifar("cifar10", "CIFAR10", request, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def load_cifar100(request: DataRequest) -> RealData:
    """CIFAR-100, 32x32 RGB, 100 fine classes."""
    return _load_cifar("cifar100", "CIFAR100", request, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762))


def load_svhn(request: DataRequest) -> RealData:
    """SVHN cropped digits (``train_32x32.mat``, ``test_32x32.mat``); torchvision maps label 10 to 0."""
    from torchvision import datasets

    root = data_root(request)

    def split(name: str) -> datasets.SVHN:
        return open_torchvision(
            "svhn",
            lambda: datasets.SVHN(str(root), split=name, download=request.download),
            root,
            f"an intact {name}_32x32.mat",
            request.download,
        )

    train, test = split("train"), split("test")
    return real_data(
        "svhn",
        torch.from_numpy(np.ascontiguousarray(train.data)),
        train.labels,
        torch.from_numpy(np.ascontiguousarray(test.data)),
        test.labels,
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
        classes=DIGIT_CLASSES,
        request=request,
    )


# --------------------------------------------------------------------------- Tiny-ImageNet


def _tiny_imagenet_base(request: DataRequest) -> Path:
    """The ``tiny-imagenet-200`` folder under ``--data-root`` (or the root itself), downloading if allowed."""
    root = data_root(request)
    candidates = unique_paths([root / TINY_IMAGENET_DIR, root])
    for base in candidates:
        if (base / "train").is_dir() and (base / "val").is_dir():
            return base
    if request.download:
        from torchvision.datasets.utils import download_and_extract_archive

        open_torchvision(
            "tiny_imagenet",
            lambda: download_and_extract_archive(TINY_IMAGENET_URL, str(root), md5=TINY_IMAGENET_MD5),
            root,
            f"{TINY_IMAGENET_DIR}/",
            True,
        )
        return _tiny_imagenet_base(DataRequest(root=root))
    raise missing(
        "tiny_imagenet",
        f"{TINY_IMAGENET_DIR}/train and /val",
        candidates,
        f"unzip {TINY_IMAGENET_URL} into DIR and pass --data-root DIR",
        DOWNLOAD_HINT,
    )


def reorganise_tiny_imagenet_val(val_dir: Path) -> None:
    """Move the official flat val folder (``images/`` + ``val_annotations.txt``) into class folders.

    ``ImageFolder`` needs one folder per class, as in ``train/<wnid>/images``. Each file
    moves with an atomic rename, so a run that was interrupted (or two runs at once) is
    finished by the next call; ``images/`` is removed last and its absence means done.
    """
    flat = val_dir / "images"
    if not flat.is_dir():
        return
    ann = val_dir / "val_annotations.txt"
    if not ann.is_file():
        raise DataError(
            f"tiny_imagenet: {flat} is the official flat val folder but {ann} is missing, so its"
            f" images cannot be labelled; extract {TINY_IMAGENET_URL} again"
        )
    try:
        for lineno, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or not fields[0] or not fields[1]:
                raise DataError(f"tiny_imagenet: {ann} line {lineno} is not 'file<TAB>wnid...': {line!r}")
            src, dest_dir = flat / fields[0], val_dir / fields[1] / "images"
            dest_dir.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(src, dest_dir / fields[0])
            except FileNotFoundError:
                if not (dest_dir / fields[0]).is_file():
                    raise DataError(f"tiny_imagenet: {src} is listed in {ann} but does not exist") from None
        leftover = sorted(p.name for p in flat.iterdir())
        if leftover:
            raise DataError(
                f"tiny_imagenet: {flat} holds {len(leftover)} files that {ann} does not list"
                f" (e.g. {leftover[0]}); remove them and try again"
            )
        try:
            flat.rmdir()
        except FileNotFoundError:  # a concurrent run finished first
            pass
    except PermissionError as exc:
        raise DataError(
            f"tiny_imagenet: {val_dir} must be reorganised into class folders once, but it is not"
            f" writable ({exc}); run once with write access, or copy {TINY_IMAGENET_DIR} somewhere"
            " writable and pass --data-root DIR"
        ) from exc


def _decode_rgb(paths: Sequence[str], size: int) -> torch.Tensor:
    """JPEG files -> one preallocated ``[N,3,size,size]`` uint8 tensor (grey images become RGB)."""
    from PIL import Image

    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                out[i] = torch.from_numpy(np.array(im)).permute(2, 0, 1)
        except OSError as exc:
            raise DataError(f"tiny_imagenet: cannot decode {path} ({exc})") from exc
    return out


def _tiny_imagenet_names(base: Path, wnids: Sequence[str]) -> tuple[str, ...]:
    """Human names from ``words.txt`` (first synonym; the wnid is added where names clash), else wnids."""
    words = base / "words.txt"
    if not words.is_file():
        return tuple(wnids)
    wanted, names = set(wnids), {}
    for line in words.read_text(encoding="utf-8", errors="replace").splitlines():
        wnid, _, text = line.partition("\t")
        if wnid in wanted:
            names[wnid] = text.split(",")[0].strip() or wnid
    firsts = [names.get(w, w) for w in wnids]
    return tuple(n if firsts.count(n) == 1 else f"{n} ({w})" for n, w in zip(firsts, wnids))


def load_tiny_imagenet(request: DataRequest) -> RealData:
    """Tiny-ImageNet-200, 64x64 RGB; the labelled val folder is the test split (test/ has no labels)."""
    from torchvision.datasets import ImageFolder

    base = _tiny_imagenet_base(request)
    reorganise_tiny_imagenet_val(base / "val")
    try:
        train, test = ImageFolder(str(base / "train")), ImageFolder(str(base / "val"))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"tiny_imagenet: no images under {base} ({exc})") from exc
    if test.classes != train.classes:
        extra = sorted(set(test.classes) ^ set(train.classes))
        raise DataError(
            f"tiny_imagenet: {base}/val and {base}/train have different class folders"
            f" (e.g. {extra[0] if extra else 'different order'})"
        )
    return real_data(
        "tiny_imagenet",
        _decode_rgb([p for p, _ in train.samples], TINY_IMAGENET_SIZE),
        train.targets,
        _decode_rgb([p for p, _ in test.samples], TINY_IMAGENET_SIZE),
        test.targets,
        mean=(0.4802, 0.4481, 0.3975),
        std=(0.2302, 0.2265, 0.2262),
        classes=_tiny_imagenet_names(base, train.classes),
        request=request,
    )
