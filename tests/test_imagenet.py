"""ImageNet-1K and its subsets from generated folders: pinned class lists, index folders, flat val."""

from __future__ import annotations

import csv
import os

import pytest
import torch
from dd_bench_datasets.imagenet_classes import IMAGENET1K_WNIDS, SUBSETS

from dd_bench.errors import DataError
from dd_bench.specs import DataRequest
from dd_bench.testing import make_registry, write_image_folder


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DD_BENCH_CACHE", str(tmp_path / "cache"))


def load(name, root, **request):
    return make_registry().dataset(name).load(DataRequest(root=root, val_fraction=0.25, **request))


def test_class_lists_are_pinned_sorted_and_inside_imagenet1k():
    assert len(IMAGENET1K_WNIDS) == 1000 == len(set(IMAGENET1K_WNIDS)) and list(IMAGENET1K_WNIDS) == sorted(
        IMAGENET1K_WNIDS
    )
    for subset in SUBSETS.values():
        assert list(subset.wnids) == sorted(set(subset.wnids)) and set(subset.wnids) <= set(IMAGENET1K_WNIDS)
        assert subset.source
    assert len(SUBSETS["imagenet100"].wnids) == 100
    assert set(SUBSETS["imagenette"].wnids) == set(SUBSETS["imagenette_mtt"].wnids)


def test_a_subset_takes_its_classes_in_sorted_wnid_order_from_a_bigger_folder(tmp_path):
    wnids = SUBSETS["imagewoof"].wnids
    root = write_image_folder(
        tmp_path / "in1k", classes=(*reversed(wnids), IMAGENET1K_WNIDS[0]), per_class=4, size=(20, 16)
    )
    data = load("imagewoof_mtt", root, resolution=8)
    assert data.classes == wnids and data.train_x.shape[1:] == (3, 8, 8)
    assert len(data.test_y) == 20 and len(data.train_y) + len(data.val_y) == 40
    assert data.mean == (0.485, 0.456, 0.406)
    assert load("imagewoof_mtt", root).train_x.shape[1:] == (3, 128, 128), "MTT's 128 px by default"


def test_index_folders_map_through_the_wnid_list_not_a_string_sort(tmp_path):
    wnids = SUBSETS["imagenette"].wnids
    indices = [IMAGENET1K_WNIDS.index(w) for w in wnids]  # 0, 217, 482, ...: a string sort would put 217 after 1000s
    by_index = write_image_folder(tmp_path / "idx", classes=[f"{i:05d}" for i in indices], per_class=2)
    by_wnid = write_image_folder(tmp_path / "wnid", classes=wnids, per_class=2)
    a, b = load("imagenette", by_index, resolution=8), load("imagenette", by_wnid, resolution=8)
    assert a.classes == b.classes == wnids
    assert (a.train_y == b.train_y).all() and torch.equal(a.train_x[:], b.train_x[:])


def test_a_flat_val_folder_is_labelled_by_kaggles_solution_file(tmp_path):
    wnids = SUBSETS["imagenette"].wnids
    root = write_image_folder(tmp_path / "in1k", classes=wnids, per_class=2, val_per_class=1)
    rows = []
    for c, wnid in enumerate(wnids):
        old = root / "val" / wnid / "00000.jpg"
        os.replace(old, root / "val" / f"ILSVRC2012_val_{c:08d}.jpg")
        (root / "val" / wnid).rmdir()
        rows.append({"ImageId": f"ILSVRC2012_val_{c:08d}", "PredictionString": f"{wnid} 1 2 3 4"})
    with open(root / "LOC_val_solution.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["ImageId", "PredictionString"])
        writer.writeheader()
        writer.writerows(reversed(rows))
    data = load("imagenette", root, resolution=8)
    assert data.test_y.tolist() == list(range(10))
    rows[3]["PredictionString"] = "n99999999 1 2 3 4"
    with open(root / "LOC_val_solution.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["ImageId", "PredictionString"])
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DataError, match="labels 'ILSVRC2012_val_00000003' with 'n99999999', not an ImageNet-1K wnid"):
        load("imagenette", root, resolution=8)


def test_a_flat_val_folder_is_labelled_by_the_devkits_ground_truth(tmp_path):
    import numpy as np
    import scipy.io

    wnids = SUBSETS["imagenette"].wnids
    root = write_image_folder(tmp_path / "in1k", classes=wnids, per_class=2, val_per_class=1)
    for c, wnid in enumerate(wnids):  # val image i+1 is of class c = 9 - i
        os.replace(root / "val" / wnid / "00000.jpg", root / "val" / f"ILSVRC2012_val_{10 - c:08d}.JPEG")
        (root / "val" / wnid).rmdir()
    data_dir = root / "ILSVRC2012_devkit_t12" / "data"
    data_dir.mkdir(parents=True)
    ids = {wnid: 500 + k for k, wnid in enumerate(reversed(wnids))}  # the devkit's IDs are not the sorted order
    table = [(i, w, "words", "gloss", 0) for w, i in ids.items()] + [(1001, "n00000001", "inner node", "gloss", 3)]
    fields = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children")
    scipy.io.savemat(data_dir / "meta.mat", {"synsets": np.array(table, dtype=[(f, "O") for f in fields])})
    truth = data_dir / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text("".join(f"{ids[wnids[9 - i]]}\n" for i in range(10)))
    data = load("imagenette", root, resolution=8)
    assert data.test_y.tolist() == list(range(9, -1, -1)), "val_00000001 is class 9, ..., val_00000010 class 0"
    truth.write_text("".join(f"{ids[wnids[9 - i]]}\n" for i in range(9)) + "1001\n")
    with pytest.raises(DataError, match="line 10 of .* is '1001', not a class ID of .*meta.mat"):
        load("imagenette", root, resolution=8)


def test_bad_imagenet_folders_are_one_line(tmp_path):
    wnids = SUBSETS["imagenette"].wnids
    partial = write_image_folder(tmp_path / "partial", classes=wnids[:9], per_class=1)
    with pytest.raises(DataError, match=f"1 of its 10 classes have no folder in .* .e.g. {wnids[9]}, parachute"):
        load("imagenette", partial, resolution=8)
    odd = write_image_folder(tmp_path / "odd", classes=(*wnids, "cats"), per_class=1)
    with pytest.raises(DataError, match="class folder 'cats', which is not an ImageNet-1K wnid"):
        load("imagenette", odd, resolution=8)
    with pytest.raises(DataError, match="imagenet1k: needs --data-root DIR"):
        make_registry().dataset("imagenet1k").load(DataRequest())


def test_a_dataset_too_large_for_memory_streams_and_an_in_memory_method_is_refused_in_one_line(tmp_path, monkeypatch):
    from dd_bench import api, runtime

    root = write_image_folder(tmp_path / "in1k", classes=SUBSETS["imagenette"].wnids, per_class=2)
    data = load("imagenette", root, resolution=32)
    assert data.streamed
    monkeypatch.setattr(runtime, "free_memory", lambda device: 2**10)
    registry = make_registry()
    syn = api.distill(registry, "random", data, ipc=1, progress=False)  # streams: reads 10 images
    assert syn.images.shape == (10, 3, 32, 32)
    with pytest.raises(
        DataError,
        match=r"^imagenette train split: its 20 images of 3x32x32 need 0.0 GiB in memory as"
        r" float32, but 0.0 GiB are available; mtt holds the whole training split in memory; distil it"
        r" with a method that streams \(.*random.*\), or ask for a smaller --resolution$",
    ):
        api.distill(registry, "mtt", data, ipc=1, preset="smoke", progress=False)
