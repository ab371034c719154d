"""Long training runs its network compiled (torch.compile): same results as eager to float
tolerance, chosen by the size of the work and the architecture, recorded with the experts and
teachers and, as the setting that decides it, with every run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from dd_bench import runtime, training
from dd_bench.augment import DSA
from dd_bench.errors import ConfigError
from dd_bench.evaluate import EvalConfig, eval_splits, evaluate_model
from dd_bench.matching import ExpertRecipe, ensure_buffers
from dd_bench.runtime import COMPILE_ENV, seeded_build
from dd_bench.specs import ModelSpec, RealData
from dd_bench.synthetic import SyntheticSet
from dd_bench.teachers import TeacherRecipe, ensure_teacher
from dd_bench.training import COMPILE_MIN_STEPS, TrainRecipe, compile_wanted, train_classifier


def tiny_convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.GroupNorm(4, 4),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    )


def toy_data() -> RealData:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 1, 8, 8, generator=g), torch.randint(0, 3, (40,), generator=g)
    return RealData("tiny", x, y, x[:6], y[:6], x[:6], y[:6], (0.0,), (1.0,), ("a", "b", "c"))


@pytest.fixture
def compile_calls(monkeypatch) -> list[nn.Module]:
    """The networks that went through ``training.compiled`` (a flag recorded beside a file is no proof)."""
    calls = []
    real = training.compiled
    monkeypatch.setattr(training, "compiled", lambda model: calls.append(model) or real(model))
    return calls


def trained(compile: bool) -> tuple[nn.Module, torch.Tensor]:
    data = toy_data()
    model = seeded_build(tiny_convnet, 0, torch.device("cpu"))
    recipe = TrainRecipe(
        epochs=3, batch_size=16, momentum=0.9, decay_at=None
    )  # 40 images: two full batches and a partial one
    train_classifier(
        model, data.train_x, data.train_y, recipe, torch.Generator().manual_seed(1), augment=DSA(), compile=compile
    )
    return model, torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_compiled_training_equals_eager_and_really_compiles(one_thread):
    _, eager = trained(compile=False)
    counters.clear()
    model, compiled = trained(compile=True)
    assert counters["stats"]["unique_graphs"] == 2, "one graph for the full batches, one for the partial last batch"
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(
        compiled, torch.cat([p.reshape(-1) for p in seeded_build(tiny_convnet, 0, torch.device("cpu")).parameters()])
    )


def test_compile_is_chosen_by_the_size_of_the_work_and_the_environment(monkeypatch):
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compile_wanted(cpu, COMPILE_MIN_STEPS) and not compile_wanted(cpu, COMPILE_MIN_STEPS - 1)
    assert not compile_wanted(cuda, 10**6), "CUDA stays eager until measured there"
    assert TrainRecipe(epochs=5, batch_size=256).steps(54000) == 5 * 211  # the partial last batch is a step
    assert not compile_wanted(cpu, 10**6, pays=False), "an architecture that compiling slows stays eager"
    monkeypatch.setenv(COMPILE_ENV, "0")
    assert not compile_wanted(cpu, 10**6)
    monkeypatch.setenv(COMPILE_ENV, "1")
    assert compile_wanted(cpu, 1) and compile_wanted(cuda, 1) and compile_wanted(cpu, 1, pays=False)
    monkeypatch.setenv(COMPILE_ENV, "yes")
    with pytest.raises(ConfigError, match="DD_BENCH_COMPILE='yes' is not allowed: use 1"):
        compile_wanted(cpu, 1)


def test_experts_record_whether_they_ran_compiled(tmp_path, monkeypatch, one_thread, capsys, compile_calls):
    data, recipe = toy_data(), ExpertRecipe(epochs=2, batch_size=16)
    build = lambda seed: seeded_build(tiny_convnet, seed, torch.device("cpu"))  # noqa: E731
    runs = {}
    for setting in ("0", "1"):
        monkeypatch.setenv(COMPILE_ENV, setting)
        runs[setting] = ensure_buffers(
            "tiny", build, data, data.train_x, recipe, 1, tmp_path / setting, torch.device("cpu"), progress=False
        )
    assert runs["0"].compiled == [False] and runs["1"].compiled == [True]
    assert len(compile_calls) == 1, "the expert trained under DD_BENCH_COMPILE=1 (only) ran compiled"
    assert "(compiling the network first)" in capsys.readouterr().err
    torch.testing.assert_close(runs["1"].trajectories[0], runs["0"].trajectories[0], rtol=1e-4, atol=1e-5)


def test_teachers_record_whether_they_ran_compiled(tmp_path, monkeypatch, one_thread, capsys, compile_calls):
    data, recipe = toy_data(), TeacherRecipe(model="tiny", epochs=2, batch_size=16)
    build = lambda seed: seeded_build(tiny_convnet, seed, torch.device("cpu"))  # noqa: E731
    teachers = {}
    for setting in ("0", "1"):
        monkeypatch.setenv(COMPILE_ENV, setting)
        teachers[setting] = ensure_teacher(build, data, recipe, tmp_path / setting, torch.device("cpu"), progress=False)
    assert [json.loads(t.path.with_suffix(".json").read_text())["compiled"] for t in teachers.values()] == [False, True]
    assert "compiling the network first" in capsys.readouterr().err
    assert len(compile_calls) == 1, "the teacher trained under DD_BENCH_COMPILE=1 (only) ran compiled"
    for a, b in zip(teachers["1"].model.parameters(), teachers["0"].model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_long_evaluations_compile_the_architectures_that_gain(monkeypatch, one_thread, compile_calls):
    data = toy_data()
    syn = SyntheticSet(
        images=data.train_x[:9].clone(),
        labels=data.train_y[:9].clone(),
        num_classes=3,
        dataset=data.name,
        method="test",
        ipc=3,
        mean=data.mean,
        std=data.std,
    )
    config, splits, seeds = EvalConfig(epochs=4, batch_size=16), eval_splits(syn, data), [0, 1]
    gains = ModelSpec("tiny", lambda shape: tiny_convnet(), compile_on_cpu=True)
    loses = ModelSpec("tiny_lenet_like", lambda shape: tiny_convnet())
    run = lambda spec: evaluate_model(syn, data, spec, seeds, config, torch.device("cpu"), splits)  # noqa: E731
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    eager = run(gains)
    assert compile_calls == [], "8 SGD steps are too few to pay for compiling"
    monkeypatch.setattr(training, "COMPILE_MIN_STEPS", 8)  # 2 networks x 4 epochs x 1 batch
    compiled = run(gains)
    assert len(compile_calls) == 2, "both networks trained compiled"
    assert compiled == eager, "the same accuracies as eager training"
    run(loses)
    assert len(compile_calls) == 2, "an architecture without compile_on_cpu stays eager"
    monkeypatch.setenv(COMPILE_ENV, "1")
    run(loses)
    assert len(compile_calls) == 4, "DD_BENCH_COMPILE=1 compiles every architecture"


def test_shipped_convnets_declare_that_compiling_pays(registry):
    assert registry.model("convnet_w32").compile_on_cpu and registry.model("convnet").compile_on_cpu
    assert not registry.model("lenet").compile_on_cpu and not registry.model("mlp").compile_on_cpu


def test_runs_record_the_compile_setting(monkeypatch):
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    assert runtime.numeric_settings(torch.device("cpu"))["compile"] == "auto"
    monkeypatch.setenv(COMPILE_ENV, "0")
    assert runtime.numeric_settings(torch.device("cpu"))["compile"] == "0"
