"""Data-parallel training with 2 gloo processes: the same networks and figures as one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dd_bench import api, distributed
from dd_bench.augment import DSA
from dd_bench.errors import ConfigError
from dd_bench.runtime import seeded_build
from dd_bench.teachers import TeacherRecipe, resolve_teacher
from dd_bench.testing import make_registry
from dd_bench.training import TrainRecipe, accuracy, train_classifier

RECIPE = TrainRecipe(epochs=2, lr=0.05, batch_size=27)  # 27: shards of 14 and 13, and a partial last batch


def _train(out: Path, cache: Path) -> None:
    """What each process runs: train a ConvNet (instance norm) with DSA and per-sample weights,
    test it, and train a teacher into ``cache``; the first process writes what it got."""
    registry = make_registry()
    data = api.load_data(registry, "digits")
    x, y = data.train_x[:200], data.train_y[:200]
    weights = torch.linspace(0.5, 1.5, 200)
    model = seeded_build(lambda: registry.model("convnet").build(data.shape), 0, torch.device("cpu"))
    train_classifier(model, x, y, RECIPE, torch.Generator().manual_seed(1), weights=weights, augment=DSA())
    acc = accuracy(model, data.test_x, data.test_y)
    teacher = resolve_teacher(
        registry, data, TeacherRecipe(model="mlp", epochs=2, dsa=False), cache, torch.device("cpu"), progress=False
    )
    if distributed.is_main():
        torch.save(
            {
                "state": model.state_dict(),
                "acc": acc,
                "teacher": teacher.model.state_dict(),
                "world": distributed.world_size(),
            },
            out,
        )


def test_two_gloo_processes_train_the_same_network_teacher_and_accuracy_as_one(tmp_path):
    _train(tmp_path / "one.pt", tmp_path / "cache-one")
    distributed.launch(_train, 2, "cpu", tmp_path / "two.pt", tmp_path / "cache-two")
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert (one["world"], two["world"]) == (1, 2)
    for key in one["state"]:
        torch.testing.assert_close(two["state"][key], one["state"][key], rtol=1e-4, atol=1e-5)
    for key in one["teacher"]:
        torch.testing.assert_close(two["teacher"][key], one["teacher"][key], rtol=1e-4, atol=1e-5)
    one_image = 100 / len(api.load_data(make_registry(), "digits").test_y)
    assert abs(one["acc"] - two["acc"]) <= one_image + 1e-9, "at most one test image apart (float tolerance)"
    assert list((tmp_path / "cache-two").rglob("*.pt")), "the first process saved the teacher they trained together"


def _bn_on_cpu() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(), torch.nn.LazyLinear(2)
    )
    model(torch.zeros(1, 1, 5, 5))
    distributed.prepare(model)


def test_batch_norm_on_the_cpu_is_refused_in_one_line():
    with pytest.raises(Exception, match="cannot synchronise batch norm: use a network without it"):
        distributed.launch(_bn_on_cpu, 2, "cpu")
    assert distributed.prepare(torch.nn.BatchNorm2d(2)) is not None, "one process: nothing to synchronise"
    with pytest.raises(ConfigError, match="nproc=0 is not allowed"):
        distributed.launch(_bn_on_cpu, 0, "cpu")


def test_evaluate_with_nproc_2_reports_what_one_process_does(tmp_path, capfd):
    from dd_bench.cli import main

    out = tmp_path / "x.pt"
    assert (
        main(
            ["distill", "--method", "random", "--dataset", "digits", "--ipc", "3", "--device", "cpu", "--out", str(out)]
        )
        == 0
    )
    capfd.readouterr()
    args = ["evaluate", str(out), "--models", "convnet", "--seeds", "1", "--epochs", "3", "--device", "cpu", "--json"]
    reports = []
    for nproc in ("1", "2"):
        assert main([*args, "--nproc", nproc]) == 0
        reports.append(json.loads(capfd.readouterr().out))
    single = reports[0]["results"]["convnet"]["accs"][0]
    one_image = 100 / len(api.load_data(make_registry(), "digits").test_y)
    assert abs(reports[1]["results"]["convnet"]["accs"][0] - single) <= one_image + 1e-9
