"""The built-in datasets plugin: shapes, dtypes, normalisation, splits, file formats, errors.

The torchvision-backed loaders are tested on small files written here in the real
on-disk formats (IDX, CIFAR python pickles, SVHN .mat, the Tiny-ImageNet folder tree).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from pathlib import Path
from urllib.error import URLError

import dd_bench_datasets
import numpy as np
import pytest
import torch
from dd_bench_datasets import read_idx, reorganise_tiny_imagenet_val, vision

from dd_bench.errors import DataError
from dd_bench.plugins import Registry
from dd_bench.specs import DataRequest, RealData

ALL = {"fashion_mnist", "mnist", "cifar10", "cifar100", "svhn", "tiny_imagenet", "digits", "toy"}


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Point the default data root at an empty folder so no test sees (or fills) ~/.cache."""
    monkeypatch.setenv("DD_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


def load(registry: Registry, name: str, **request) -> RealData:
    return registry.dataset(name).load(DataRequest(**request))


def unnormalise(data: RealData, x: torch.Tensor) -> torch.Tensor:
    """Back to [0, 1] pixel values."""
    return x * torch.tensor(data.std).view(1, -1, 1, 1) + torch.tensor(data.mean).view(1, -1, 1, 1)


def check_tensors(data: RealData, shape: tuple[int, int, int]) -> None:
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == shape
    assert isinstance(data.classes, tuple) and all(isinstance(c, str) for c in data.classes)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- registration


def test_all_datasets_come_from_the_builtin_plugin(registry):
    assert set(registry.datasets) >= ALL
    for name in ALL:
        entry = registry.datasets[name]
        assert entry.plugin == "datasets" and entry.distribution == "dd-bench"
        assert entry.spec.description


# --------------------------------------------------------------------------- toy and digits


def test_toy_is_deterministic_small_and_normalised(registry):
    a, b = load(registry, "toy"), load(registry, "toy")
    check_tensors(a, (1, 8, 8))
    assert a.classes == ("horizontal", "vertical", "checker", "border")
    assert len(a.train_y) + len(a.val_y) == 400 and len(a.test_y) == 100
    for split in ("train_x", "val_x", "test_x", "train_y", "val_y", "test_y"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert abs(float(a.train_x.mean())) < 0.05 and abs(float(a.train_x.std()) - 1) < 0.05


def test_toy_is_learnable_by_nearest_class_mean(registry):
    data = load(registry, "toy")
    means = torch.stack([data.train_x[data.train_y == c].mean(0) for c in range(4)]).flatten(1)
    pred = torch.cdist(data.test_x.flatten(1), means).argmin(1)
    assert (pred == data.test_y).float().mean() > 0.95


def test_val_split_is_seeded_stratified_and_disjoint_from_train(registry):
    a = load(registry, "toy", val_fraction=0.2, seed=3)
    again = load(registry, "toy", val_fraction=0.2, seed=3)
    other = load(registry, "toy", val_fraction=0.2, seed=4)
    assert torch.equal(a.val_x, again.val_x) and torch.equal(a.val_y, again.val_y)
    assert not torch.equal(a.val_x, other.val_x)
    assert torch.bincount(a.val_y).tolist() == [20, 20, 20, 20]
    train_rows = {row.numpy().tobytes() for row in a.train_x.flatten(1)}
    val_rows = {row.numpy().tobytes() for row in a.val_x.flatten(1)}
    assert len(train_rows) == 320 and len(val_rows) == 80  # toy images are all distinct
    assert not train_rows & val_rows
    assert torch.equal(a.test_x, other.test_x)  # the test split never moves
    assert len(load(registry, "toy", val_fraction=0.0).val_y) == 0


def test_digits_shapes_split_and_normalisation(registry):
    data = load(registry, "digits")
    check_tensors(data, (1, 16, 16))
    assert data.classes == tuple(str(i) for i in range(10))
    assert len(data.train_y) + len(data.val_y) + len(data.test_y) == 1797
    assert 350 <= len(data.test_y) <= 370  # fixed stratified 20%
    assert torch.bincount(data.test_y).min() >= 34
    assert abs(float(data.train_x.mean())) < 0.01
    assert abs(float(data.train_x.std()) - 1) < 0.01
    assert data.mean == pytest.approx((0.3059,), abs=1e-3) and data.std == pytest.approx((0.3194,), abs=1e-3)
    px = unnormalise(data, data.train_x)
    assert float(px.min()) > -1e-5 and float(px.max()) < 1 + 1e-5


def test_digits_test_split_is_fixed_and_loads_are_independent(registry):
    a, b = load(registry, "digits", seed=0), load(registry, "digits", seed=1)
    assert torch.equal(a.test_x, b.test_x) and a.mean == b.mean and a.std == b.std
    assert not torch.equal(a.val_y, b.val_y) or not torch.equal(a.val_x, b.val_x)
    a.train_x.add_(100)  # the in-memory cache must not leak through a returned tensor
    assert abs(float(load(registry, "digits").train_x.mean())) < 0.01


# --------------------------------------------------------------------------- IDX reader


def write_idx(path: Path, array: np.ndarray, type_byte: int = 0x08) -> Path:
    """An IDX file as LeCun's format describes it; gzip-compressed when the name ends in .gz."""
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + big_endian.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


@pytest.mark.parametrize("filename", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_reader_round_trips_raw_and_gzip(tmp_path, filename):
    images = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / filename, images))
    assert out.dtype == np.uint8 and out.flags.writeable
    np.testing.assert_array_equal(out, images)


def test_idx_reader_handles_big_endian_types_and_rejects_bad_files(tmp_path):
    ints = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    out = read_idx(write_idx(tmp_path / "ints.gz", ints, type_byte=0x0C))
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, ints)

    good = write_idx(tmp_path / "labels", np.arange(10, dtype=np.uint8))
    (tmp_path / "short").write_bytes(good.read_bytes()[:-1])
    (tmp_path / "long").write_bytes(good.read_bytes() + b"\0")
    (tmp_path / "magic").write_bytes(b"\x12\x34" + good.read_bytes()[2:])
    (tmp_path / "badgz.gz").write_bytes(gzip.compress(good.read_bytes())[:-8])
    with pytest.raises(DataError, match="short: IDX header promises shape \\[10\\]"):
        read_idx(tmp_path / "short")
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(tmp_path / "long")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "magic")
    with pytest.raises(DataError, match="badgz.gz"):
        read_idx(tmp_path / "badgz.gz")


def write_idx_set(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> np.ndarray:
    """The four (Fashion-)MNIST files, 28x28; returns the training images."""
    rng = np.random.default_rng(1)
    suffix = ".gz" if gz else ""
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    train[0] = 255
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", train)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", (np.arange(n_test) % 10).astype(np.uint8))
    return train


# --------------------------------------------------------------------------- (Fashion-)MNIST


@pytest.fixture(scope="module")
def debian_fashion_mnist(registry) -> RealData:
    """The real Debian files, loaded once for the whole module."""
    if not all((vision.DEBIAN_FASHION_MNIST / f"{s}.gz").is_file() for s in vision.IDX_STEMS):
        pytest.skip(
            f"Fashion-MNIST is not installed in {vision.DEBIAN_FASHION_MNIST} (apt-get install dataset-fashion-mnist)"
        )
    return load(registry, "fashion_mnist")


def test_fashion_mnist_from_the_debian_package(debian_fashion_mnist):
    data = debian_fashion_mnist
    check_tensors(data, (1, 28, 28))
    assert len(data.train_y) + len(data.val_y) == 60_000 and len(data.test_y) == 10_000
    assert len(data.val_y) == 6_000 and data.class_counts().tolist() == [5_400] * 10
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    assert data.mean == (0.2861,) and data.std == (0.3530,)
    assert abs(float(data.train_x.mean())) < 0.01


def test_fashion_mnist_from_data_root_flat_gz_or_torchvision_layout(registry, tmp_path):
    train = write_idx_set(tmp_path / "flat", gz=True)
    data = load(registry, "fashion_mnist", root=tmp_path / "flat", val_fraction=0.0)
    check_tensors(data, (1, 28, 28))
    assert len(data.train_y) == 30 and len(data.test_y) == 10
    assert data.classes == vision.FASHION_MNIST_CLASSES
    expected = (torch.from_numpy(train).float().unsqueeze(1) / 255 - 0.2861) / 0.3530
    torch.testing.assert_close(data.train_x, expected)

    write_idx_set(tmp_path / "tv" / "FashionMNIST" / "raw", gz=False)
    assert len(load(registry, "fashion_mnist", root=tmp_path / "tv").test_y) == 10


def test_fashion_mnist_missing_files_say_where_and_how(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(vision, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DataError) as err:
        load(registry, "fashion_mnist")
    msg = str(err.value)
    for needle in (
        str(tmp_path / "no-debian"),
        "apt-get install dataset-fashion-mnist",
        "--data-root",
        "--download",
        "train-images-idx3-ubyte",
    ):
        assert needle in msg


def test_an_explicit_root_without_the_files_is_an_error_even_when_the_system_has_them(registry, tmp_path, monkeypatch):
    """The fallback search is for users who name no root; a root that was named is the only place looked at."""
    write_idx_set(tmp_path / "debian", gz=True)
    monkeypatch.setattr(vision, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    assert len(load(registry, "fashion_mnist").test_y) == 10
    with pytest.raises(DataError) as err:
        load(registry, "fashion_mnist", root=tmp_path / "mine")
    msg = str(err.value)
    assert str(tmp_path / "mine") in msg and "train-images-idx3-ubyte" in msg and str(tmp_path / "debian") not in msg


def test_fashion_mnist_download_goes_through_torchvision(registry, tmp_path, monkeypatch):
    """--download calls torchvision's FashionMNIST; a stand-in download writes the files offline."""
    from torchvision.datasets import FashionMNIST

    monkeypatch.setattr(vision, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    monkeypatch.setattr(FashionMNIST, "download", lambda self: write_idx_set(Path(self.raw_folder), gz=False))
    data = load(registry, "fashion_mnist", root=tmp_path, download=True)
    assert len(data.test_y) == 10
    assert (tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_mnist_from_torchvision_raw_folder(registry, tmp_path):
    write_idx_set(tmp_path / "MNIST" / "raw", gz=False)
    data = load(registry, "mnist", root=tmp_path, val_fraction=0.0)
    check_tensors(data, (1, 28, 28))
    assert data.classes == tuple(str(i) for i in range(10)) and data.mean == (0.1307,)
    assert float(data.train_x[0].max()) == pytest.approx((1 - 0.1307) / 0.3081)


def test_mnist_failed_download_is_a_data_error(registry, tmp_path, monkeypatch):
    import torchvision.datasets.mnist as tv_mnist

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="download failed"):
        load(registry, "mnist", root=tmp_path, download=True)


# --------------------------------------------------------------------------- CIFAR


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, per_batch: int = 6) -> Path:
    """cifar-10-batches-py as in the official tarball: rows are 1024 R, then G, then B values."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        if name == "data_batch_1":
            data[0] = np.repeat(np.array([10, 20, 30], dtype=np.uint8), 1024)
        labels = [i % 10 for i in range(per_batch)]
        dump(folder / name, {"batch_label": name, "labels": labels, "data": data, "filenames": []})
    dump(folder / "batches.meta", {"label_names": CIFAR_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return folder


def trust_written_files(monkeypatch, cls, folder: Path) -> None:
    """Point the class's md5 table at the files we wrote.

    torchvision checks every file against the md5 of the official release, which no
    small test file can match. We replace the table, not the check: torchvision's own
    ``check_integrity`` still reads and hashes each file.
    """
    monkeypatch.setattr(cls, "train_list", [[n, md5(folder / n)] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5(folder / n)] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})


def test_cifar10_from_python_batches(registry, tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    trust_written_files(monkeypatch, CIFAR10, write_cifar10(tmp_path))
    data = load(registry, "cifar10", root=tmp_path, val_fraction=0.0)
    check_tensors(data, (3, 32, 32))
    assert len(data.train_y) == 30 and len(data.test_y) == 6
    assert data.classes == tuple(CIFAR_NAMES)
    first = unnormalise(data, data.train_x[:1])[0]  # channels stay apart: NHWC -> NCHW is right
    torch.testing.assert_close(first.mean(dim=(1, 2)), torch.tensor([10, 20, 30]) / 255.0)


def test_cifar10_md5_mismatch_and_missing_files_are_data_errors(registry, tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "cifar-10-batches-py")) as err:
        load(registry, "cifar10", root=tmp_path)
    assert "--data-root" in str(err.value) and "--download" in str(err.value)
    write_cifar10(tmp_path)  # real format, but not the official md5s
    with pytest.raises(DataError, match="not found or corrupted"):
        load(registry, "cifar10", root=tmp_path)


def test_cifar10_failed_download_is_a_data_error(registry, tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="cifar10: .*download failed: <urlopen error no network>"):
        load(registry, "cifar10", root=tmp_path, download=True)


def test_cifar100_from_python_files(registry, tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR100

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(3)
    fine = [f"class{i:03d}" for i in range(100)]
    for name, n in (("train", 200), ("test", 100)):
        labels = [i % 100 for i in range(n)]
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        dump(folder / name, {"data": data, "fine_labels": labels, "coarse_labels": [y // 5 for y in labels]})
    dump(folder / "meta", {"fine_label_names": fine, "coarse_label_names": [f"c{i}" for i in range(20)]})
    trust_written_files(monkeypatch, CIFAR100, folder)
    data = load(registry, "cifar100", root=tmp_path, val_fraction=0.5)
    check_tensors(data, (3, 32, 32))
    assert data.classes == tuple(fine) and len(data.val_y) == 100 and len(data.test_y) == 100


# --------------------------------------------------------------------------- SVHN


def test_svhn_from_mat_files(registry, tmp_path, monkeypatch):
    import scipy.io
    from torchvision.datasets import SVHN

    rng = np.random.default_rng(4)
    table = {}
    for split, n in (("train", 20), ("test", 10)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # the official [H, W, C, N]
        x[:, :, :, 0] = np.array([10, 20, 30], dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # digit 0 is stored as 10
        path = tmp_path / f"{split}_32x32.mat"
        scipy.io.savemat(path, {"X": x, "y": y})
        url, filename, _ = SVHN.split_list[split]
        table[split] = [url, filename, md5(path)]  # see trust_written_files: the md5 check still runs
    monkeypatch.setattr(SVHN, "split_list", table)
    data = load(registry, "svhn", root=tmp_path, val_fraction=0.0)
    check_tensors(data, (3, 32, 32))
    assert data.train_y.tolist()[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    first = unnormalise(data, data.train_x[:1])[0]
    torch.testing.assert_close(first.mean(dim=(1, 2)), torch.tensor([10, 20, 30]) / 255.0)


def test_svhn_missing_file_names_the_folder(registry, tmp_path):
    with pytest.raises(DataError, match=f"svhn: an intact train_32x32.mat not found in {tmp_path}"):
        load(registry, "svhn", root=tmp_path)


# --------------------------------------------------------------------------- Tiny-ImageNet


TINY_COLOURS = {"n01443537": (250, 10, 10), "n01629819": (10, 250, 10), "n01641577": (10, 10, 250)}


def write_tiny_imagenet(root: Path, train_per_class: int = 2, val_per_class: int = 2) -> Path:
    """tiny-imagenet-200 as unzipped: train/<wnid>/images/*.JPEG, a flat val/images + annotations."""
    from PIL import Image

    base = root / "tiny-imagenet-200"
    lines, j = [], 0
    for wnid, colour in TINY_COLOURS.items():
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(train_per_class):
            Image.new("RGB", (64, 64), colour).save(folder / f"{wnid}_{i}.JPEG")
        for _ in range(val_per_class):
            (base / "val" / "images").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 64), colour).save(base / "val" / "images" / f"val_{j}.JPEG")
            lines.append(f"val_{j}.JPEG\t{wnid}\t0\t0\t63\t63")
            j += 1
    (base / "val" / "val_annotations.txt").write_text("\n".join(reversed(lines)) + "\n")
    (base / "wnids.txt").write_text("\n".join(TINY_COLOURS) + "\n")
    (base / "words.txt").write_text(
        "n00000001\tentity\nn01443537\tgoldfish, Carassius auratus\n"
        "n01629819\tEuropean fire salamander, Salamandra salamandra\nn01641577\tbullfrog, Rana catesbeiana\n"
    )
    return base


def test_tiny_imagenet_reorganises_val_once_and_uses_it_as_test(registry, tmp_path):
    base = write_tiny_imagenet(tmp_path)
    data = load(registry, "tiny_imagenet", root=tmp_path, val_fraction=0.0)
    check_tensors(data, (3, 64, 64))
    assert data.classes == ("goldfish", "European fire salamander", "bullfrog")
    assert len(data.train_y) == 6 and data.test_y.tolist() == [0, 0, 1, 1, 2, 2]
    colours = torch.tensor(list(TINY_COLOURS.values()), dtype=torch.float32) / 255
    test_colours = unnormalise(data, data.test_x).mean(dim=(2, 3))
    torch.testing.assert_close(test_colours, colours[data.test_y], atol=0.02, rtol=0)
    assert not (base / "val" / "images").exists()
    assert sorted(p.name for p in (base / "val" / "n01641577" / "images").iterdir()) == ["val_4.JPEG", "val_5.JPEG"]

    again = load(registry, "tiny_imagenet", root=base, val_fraction=0.0)  # root may be the folder itself
    assert torch.equal(again.test_x, data.test_x) and torch.equal(again.test_y, data.test_y)


def test_tiny_imagenet_finishes_an_interrupted_reorganisation(tmp_path):
    base = write_tiny_imagenet(tmp_path)
    val = base / "val"
    (val / "n01443537" / "images").mkdir(parents=True)
    os.replace(val / "images" / "val_0.JPEG", val / "n01443537" / "images" / "val_0.JPEG")
    reorganise_tiny_imagenet_val(val)
    assert not (val / "images").exists()
    assert sum(1 for _ in val.glob("*/images/*.JPEG")) == 6
    reorganise_tiny_imagenet_val(val)  # idempotent


def test_tiny_imagenet_bad_val_folder_is_a_data_error(tmp_path):
    base = write_tiny_imagenet(tmp_path)
    (base / "val" / "images" / "stray.JPEG").write_bytes(b"")
    with pytest.raises(DataError, match="stray.JPEG"):
        reorganise_tiny_imagenet_val(base / "val")
    (base / "val" / "images" / "stray.JPEG").unlink()
    (base / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match="val_annotations.txt is missing"):
        reorganise_tiny_imagenet_val(base / "val")


def test_tiny_imagenet_missing_says_where_and_how(registry, tmp_path):
    with pytest.raises(DataError) as err:
        load(registry, "tiny_imagenet", root=tmp_path)
    assert str(tmp_path / "tiny-imagenet-200") in str(err.value)
    assert "tiny-imagenet-200.zip" in str(err.value) and "--download" in str(err.value)


def test_plugin_module_exports_its_loaders():
    for name in dd_bench_datasets.__all__:
        assert callable(getattr(dd_bench_datasets, name))


def test_default_root_is_data_in_the_host_cache(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("DD_BENCH_CACHE", str(tmp_path))
    with pytest.raises(DataError, match=str(tmp_path / "data" / "MNIST" / "raw")):
        load(registry, "mnist")
