"""image_folder: any class-folder dataset, decoded once into a cache and streamed from it."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from dd_bench_datasets.folder import load_image_folder, uint8_stats

from dd_bench import api, images
from dd_bench.cli import main
from dd_bench.errors import ConfigError
from dd_bench.specs import DataRequest
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import make_registry, one_error_line, write_image_folder


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DD_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_distill_and_evaluate_any_folder_from_the_command_line(tmp_path, capsys):
    root = write_image_folder(tmp_path / "data")
    out = tmp_path / "x.pt"
    assert (
        main(
            [
                "distill",
                "--method",
                "random",
                "--dataset",
                "image_folder",
                "--data-root",
                str(root),
                "--ipc",
                "2",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    syn = SyntheticSet.load(out)
    assert syn.images.shape == (6, 3, 12, 12) and syn.dataset == "image_folder"
    assert (
        main(
            [
                "evaluate",
                str(out),
                "--data-root",
                str(root),
                "--models",
                "mlp",
                "--seeds",
                "1",
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    assert '"mlp"' in capsys.readouterr().out


def test_classes_are_sorted_folder_names_val_is_the_test_split_and_stats_are_the_training_splits(tmp_path):
    root = write_image_folder(tmp_path / "data", classes=("zebra", "ant", "mole"), per_class=10, val_per_class=3)
    data = load_image_folder(DataRequest(root=root, val_fraction=0.2))
    assert data.classes == ("ant", "mole", "zebra")
    assert len(data.test_y) == 9 and len(data.train_y) + len(data.val_y) == 30 and len(data.val_y) == 6
    raw = images.decoded("t", root, images.image_files(root / "train"), None, images_cache())
    assert (data.mean, data.std) == uint8_stats(raw)
    x = torch.from_numpy(raw.uint8(slice(None)).astype(np.float64)) / 255
    torch.testing.assert_close(torch.tensor(data.mean, dtype=torch.float64), x.mean(dim=(0, 2, 3)), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.tensor(data.std, dtype=torch.float64), x.std(dim=(0, 2, 3)), atol=1e-4, rtol=0)
    # the images of class "ant" (written as class 1 of 3) are the mid-grey ones, whatever the order
    ant = data.train_x[data.train_y == 0] * torch.tensor(data.std).view(1, -1, 1, 1) + torch.tensor(data.mean).view(
        1, -1, 1, 1
    )
    assert 0.4 < float(ant.mean()) < 0.6


def images_cache():
    from dd_bench.runtime import default_cache_dir

    return default_cache_dir()


def test_own_size_resolution_and_grey(tmp_path):
    root = write_image_folder(tmp_path / "wide", size=(20, 10))
    assert load_image_folder(DataRequest(root=root)).train_x.shape[1:] == (3, 10, 20)
    assert load_image_folder(DataRequest(root=root, resolution=8)).train_x.shape[1:] == (3, 8, 8)
    grey = write_image_folder(tmp_path / "grey", grey=True)
    assert load_image_folder(DataRequest(root=grey)).shape.channels == 1


def test_images_of_different_sizes_need_a_resolution(tmp_path, capsys):
    root = write_image_folder(tmp_path / "a")
    write_image_folder(tmp_path / "b", size=(16, 16))
    os.replace(tmp_path / "b" / "train" / "cat" / "00000.jpg", root / "train" / "cat" / "big.jpg")
    line = one_error_line(
        capsys,
        [
            "distill",
            "--method",
            "random",
            "--dataset",
            "image_folder",
            "--data-root",
            str(root),
            "--ipc",
            "1",
            "--out",
            str(tmp_path / "x.pt"),
        ],
    )
    assert "different sizes (e.g. 12x12 and 16x16)" in line and "--resolution N" in line
    assert not (tmp_path / "x.pt").exists()
    assert load_image_folder(DataRequest(root=root, resolution=12)).train_x.shape[1:] == (3, 12, 12)


def test_decoded_once_then_read_from_the_cache_and_a_changed_file_decodes_again(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "data")
    first = load_image_folder(DataRequest(root=root))
    monkeypatch.setattr(images, "_build", lambda *a, **k: pytest.fail("decoded again"))
    again = load_image_folder(DataRequest(root=root))
    assert torch.equal(first.train_x[:], again.train_x[:]) and torch.equal(first.test_x[:], again.test_x[:])
    path = root / "train" / "dog" / "00001.png"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(pytest.fail.Exception, match="decoded again"):
        load_image_folder(DataRequest(root=root))


def test_an_interrupted_decode_resumes_where_it_stopped(tmp_path, monkeypatch, cache):
    root = write_image_folder(tmp_path / "data", per_class=8)
    files = images.image_files(root / "train")
    monkeypatch.setattr(images, "CHUNK", 4)
    real, calls, killed = images._Decode.__getitem__, [], []

    def decode(self, i):
        calls.append(i)
        if i == 9 and not killed:
            killed.append(i)
            raise KeyboardInterrupt  # as a kill would, after two chunks were recorded
        return real(self, i)

    monkeypatch.setattr(images._Decode, "__getitem__", decode)
    with pytest.raises(KeyboardInterrupt):
        images.decoded("t", root, files, None, cache, workers=0, progress=False)
    assert not list((cache / "images").glob("*.npy")), "no half-built array is ever in place"
    calls.clear()
    resumed = images.decoded("t", root, files, None, cache, workers=0, progress=False)
    assert calls[0] == 8, "the two recorded chunks are not decoded again"
    monkeypatch.setattr(images._Decode, "__getitem__", real)
    fresh = images.decoded("t", root, files, None, tmp_path / "other", workers=0, progress=False)
    assert np.array_equal(resumed.uint8(slice(None)), fresh.uint8(slice(None)))


@pytest.mark.parametrize(
    "breakage,says",
    [
        ("no_classes", "has no class subfolders"),
        ("empty_class", "holds no PNG or JPEG files"),
        ("truncated", "cannot decode"),
        ("not_an_image", "not a readable image"),
        ("val_class", "has class folder 'wolf' that"),
        ("no_root", "needs --data-root DIR"),
    ],
)
def test_bad_folders_are_one_line_and_write_nothing(tmp_path, capsys, breakage, says):
    root = write_image_folder(tmp_path / "data")
    if breakage == "no_classes":
        for p in sorted((root / "train").rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    elif breakage == "empty_class":
        (root / "train" / "owl").mkdir()
    elif breakage == "truncated":
        jpg = root / "train" / "dog" / "00000.jpg"
        jpg.write_bytes(jpg.read_bytes()[:-10])  # the header parses, the scan data ends early
    elif breakage == "not_an_image":
        (root / "train" / "dog" / "notes.png").write_text("not a picture")
    elif breakage == "val_class":
        (root / "val" / "wolf").mkdir()
        os.replace(root / "val" / "cat" / "00000.jpg", root / "val" / "wolf" / "00000.jpg")
    argv = ["distill", "--method", "random", "--dataset", "image_folder", "--ipc", "1", "--out", str(tmp_path / "x.pt")]
    line = one_error_line(capsys, argv + ([] if breakage == "no_root" else ["--data-root", str(root)]))
    assert says in line
    assert not (tmp_path / "x.pt").exists()


def test_a_fixed_size_dataset_refuses_a_resolution():
    with pytest.raises(ConfigError, match="resolution=4 is not allowed for toy: its images are 8x8"):
        api.load_data(make_registry(), "toy", resolution=4)


def test_a_set_distilled_at_a_resolution_is_evaluated_at_it(tmp_path, capsys):
    root = write_image_folder(tmp_path / "data", size=(20, 10))
    out = tmp_path / "x.pt"
    assert (
        main(
            [
                "distill",
                "--method",
                "random",
                "--dataset",
                "image_folder",
                "--data-root",
                str(root),
                "--ipc",
                "1",
                "--resolution",
                "8",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert SyntheticSet.load(out).metadata["resolution"] == 8
    assert (
        main(
            [
                "evaluate",
                str(out),
                "--data-root",
                str(root),
                "--models",
                "mlp",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    ), "no --resolution needed: the set says 8"
