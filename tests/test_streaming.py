"""Streamed datasets: the same results from a split read on demand as from the same images in memory."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from dd_bench_datasets.folder import load_image_folder

from dd_bench import api
from dd_bench.conformance import dataset_checks
from dd_bench.evaluate import EvalConfig, evaluate
from dd_bench.specs import DataRequest, DatasetSpec, RealData
from dd_bench.streaming import StreamedImages, batches, materialize, normalise
from dd_bench.testing import make_registry, write_image_folder

CLASSES = ("ant", "bee", "cat", "dog")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(
        tmp_path_factory.mktemp("streamed") / "data", classes=CLASSES, per_class=12, val_per_class=4, size=(10, 10)
    )


@pytest.fixture
def both(folder):
    """The folder's data as the dataset returns it (streamed) and the same loaded whole."""
    streamed = load_image_folder(DataRequest(root=folder))
    return streamed, streamed.in_memory("the test")


def test_a_streamed_split_reads_the_same_floats_as_the_array_in_memory(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (40, 3, 5, 5), dtype=np.uint8)
    np.save(tmp_path / "x.npy", pixels)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    x, ref = StreamedImages(tmp_path / "x.npy", mean, std), normalise(torch.from_numpy(pixels), mean, std)
    idx = torch.tensor([7, 3, 4, 39, 0, 1, 2, 3])
    assert torch.equal(x[idx], ref[idx]) and torch.equal(x[5:17], ref[5:17]) and torch.equal(x[::7], ref[::7])
    assert torch.equal(x[4], ref[4]) and torch.equal(x[ref[:, 0, 0, 0] > 0], ref[ref[:, 0, 0, 0] > 0])
    sub = x.subset(torch.tensor([30, 10, 11]))
    assert sub.shape == (3, 3, 5, 5) and torch.equal(sub[torch.tensor([2, 0])], ref[[11, 30]])
    assert torch.equal(pickle.loads(pickle.dumps(sub))[:], ref[[30, 10, 11]]), "workers rebuild it from path and rows"
    assert torch.equal(materialize(x, "x"), ref)


def test_batches_are_the_same_with_any_number_of_workers_and_per_sample_transforms_are_seeded_by_position(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (37, 1, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "x.npy", pixels)
    x = StreamedImages(tmp_path / "x.npy", (0.5,), (0.25,))
    order = torch.randperm(37, generator=torch.Generator().manual_seed(0))

    def jitter(img, g):
        return img + torch.randn(img.shape, generator=g)

    in_memory = [b for b in batches(x[:], order, 8)]
    assert torch.equal(torch.cat(in_memory), x[:][order]) and [len(b) for b in in_memory] == [8, 8, 8, 8, 5]
    for workers in (0, 2):
        assert torch.equal(torch.cat(list(batches(x, order, 8, workers=workers))), x[:][order])
    a, b, c = (
        torch.cat(list(batches(x, order, 8, transform=jitter, seed=s, workers=w))) for s, w in ((3, 0), (3, 2), (4, 0))
    )
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.cat(list(batches(x[:], order, 8, transform=jitter, seed=3))), a), "the same for a tensor"


def test_image_folders_stream_and_a_plugin_written_with_tensors_is_unchanged(both):
    streamed, in_memory = both
    assert streamed.streamed and isinstance(streamed.train_x, StreamedImages)
    assert not in_memory.streamed and in_memory.in_memory("again") is in_memory
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(streamed, f"{split}_x")[:], getattr(in_memory, f"{split}_x"))
    for c in range(len(CLASSES)):
        g1, g2 = torch.Generator().manual_seed(c), torch.Generator().manual_seed(c)
        assert torch.equal(streamed.class_batch(c, 3, g1), in_memory.class_batch(c, 3, g2))


@pytest.mark.parametrize("method,preset", [("random", None), ("oq", "smoke"), ("dm", "smoke"), ("rded", "smoke")])
def test_a_streaming_method_distils_the_same_set_from_either_form(both, method, preset):
    registry = make_registry()
    a, b = (api.distill(registry, method, data, ipc=2, seed=3, preset=preset, progress=False) for data in both)
    torch.testing.assert_close(a.images, b.images, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.labels, b.labels)
    if a.weights is not None:
        torch.testing.assert_close(a.weights, b.weights)


def test_evaluation_and_teacher_training_give_the_same_accuracy_from_either_form(both):
    from dd_bench.teachers import TeacherRecipe, train_teacher
    from dd_bench.training import accuracy

    streamed, in_memory = both
    registry = make_registry()
    syn = api.distill(registry, "random", in_memory, ipc=3, seed=0, progress=False)
    config = EvalConfig(epochs=3, dsa=False)
    reports = [evaluate(syn, data, [("mlp", registry.model("mlp"))], [0, 1], config).results["mlp"] for data in both]
    assert reports[0].accs == reports[1].accs and reports[0].val_accs == reports[1].val_accs

    recipe = TeacherRecipe(model="mlp", epochs=2, batch_size=16, dsa=False)
    spec = registry.model("mlp")

    def build(seed):
        torch.manual_seed(seed)
        return spec.build(streamed.shape)

    nets = [train_teacher(build, data, data.train_x, recipe, torch.device("cpu")) for data in both]
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(p, q)
    assert accuracy(nets[0], streamed.test_x, streamed.test_y) == accuracy(nets[1], in_memory.test_x, in_memory.test_y)


def test_check_plugin_checks_a_streamed_dataset(folder):
    spec = DatasetSpec(
        name="streamed_folder",
        load=lambda request: _renamed(
            load_image_folder(DataRequest(root=folder, seed=request.seed, val_fraction=request.val_fraction)),
            "streamed_folder",
        ),
    )
    results = dataset_checks(spec)
    failed = {r.check: r.reason for r in results if r.status != "pass"}
    assert not failed, failed


def _renamed(data: RealData, name: str) -> RealData:
    import dataclasses

    return dataclasses.replace(data, name=name)
