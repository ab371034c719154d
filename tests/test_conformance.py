"""The conformance kit: each check catches a plugin broken in its way, and the built-ins pass."""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from dd_bench import conformance, hookimpl
from dd_bench.cli import main
from dd_bench.conformance import dataset_checks, distiller_checks, model_checks
from dd_bench.errors import ConfigError, DataError
from dd_bench.runtime import default_cache_dir
from dd_bench.specs import DatasetSpec, DistillerSpec, ModelSpec, RealData, split_train_val
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import check_dataset, check_distiller, check_model, make_registry

DISTILLER_CHECKS = [
    "presets",
    "smoke",
    "valid-set",
    "normalised",
    "round-trip",
    "same-seed",
    "global-rng",
    "seeds-differ",
    "data-untouched",
    "no-stray-files",
]
MODEL_CHECKS = ["shapes", "logits", "seeded-init", "trains", "functional-call"]
DATASET_CHECKS = ["loads", "labels", "disjoint-splits", "val-seeded", "test-fixed", "normalisation", "balanced"]


pytestmark = pytest.mark.usefixtures("one_thread")


def failures(results: list[conformance.CheckResult]) -> dict[str, str]:
    return {r.check: r.reason for r in results if not r.passed}


def assert_caught(results: list[conformance.CheckResult], checks: list[str], expected: set[str], reason: str) -> None:
    """Every check ran, in order; exactly ``expected`` failed, one of them saying ``reason``."""
    assert [r.check for r in results] == checks
    found = failures(results)
    assert set(found) == expected, found
    assert any(reason in text for text in found.values()), found


# ---------------------------------------------------------------------------- distillers


@dataclass(frozen=True)
class Steps:
    steps: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be >= 1")


def subset(request, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` real images per class, as the random baseline draws them."""
    data, g = request.data, generator or request.generator()
    idx = torch.cat(
        [
            data.indices_of_class(c)[torch.randperm(int(data.class_counts()[c]), generator=g)[: request.ipc]]
            for c in range(data.num_classes)
        ]
    )
    return data.train_x[idx].clone(), data.train_y[idx].clone()


def as_set(request, images, labels, **changes) -> SyntheticSet:
    data = request.data
    fields = dict(
        images=images,
        labels=labels,
        num_classes=data.num_classes,
        dataset=data.name,
        method="broken",
        ipc=request.ipc,
        mean=data.mean,
        std=data.std,
    )
    return SyntheticSet(**{**fields, **changes})


def good(request):
    return as_set(request, *subset(request))


def fails(request):
    raise RuntimeError("boom")


def one_class(request):
    images, labels = subset(request)
    return as_set(request, images, torch.zeros_like(labels))


def pixel_space(request):
    images, labels = subset(request)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (request.data.mean, request.data.std))
    return as_set(request, images * std + mean, labels)


def unloadable_metadata(request):
    return as_set(request, *subset(request), metadata={"source": Path("somewhere")})


_calls = itertools.count()


def unseeded(request):
    return as_set(request, *subset(request, torch.Generator().manual_seed(next(_calls))))


def global_rng(request):
    images, labels = subset(request)
    return as_set(request, images + 0.01 * torch.randn(images.shape), labels)


def ignores_seed(request):
    return as_set(request, *subset(request, torch.Generator().manual_seed(0)))


def mutates_data(request):
    images, labels = subset(request)
    request.data.val_x.add_(1.0)
    return as_set(request, images, labels)


def ignores_cache_dir(request):
    (default_cache_dir() / "scratch.txt").parent.mkdir(parents=True, exist_ok=True)
    (default_cache_dir() / "scratch.txt").write_text("cache")
    return good(request)


def distiller(fn, presets=None, **changes) -> DistillerSpec:
    return DistillerSpec("broken", Steps, fn, presets or {"smoke": {}}, **changes)


@pytest.mark.parametrize(
    ("spec", "expected", "reason"),
    [
        (distiller(good, {"smoke": {}, "long": {"steps": 0}}), {"presets"}, "'long': broken: steps=0 must be >= 1"),
        (
            distiller(fails),
            set(DISTILLER_CHECKS) - {"presets", "data-untouched", "no-stray-files"},
            "digits IPC 1: RuntimeError: boom",
        ),
        (distiller(one_class), {"valid-set"}, "ipc is 1 with [10, 0, 0, 0, 0, 0, 0, 0, 0, 0] images per class"),
        (distiller(pixel_space), {"normalised"}, "the images look like pixel values"),
        (distiller(unloadable_metadata), {"round-trip"}, "refusing to unpickle arbitrary objects"),
        (distiller(unseeded), {"same-seed", "global-rng"}, "images differ"),
        (distiller(global_rng), {"global-rng"}, "when only the global torch/random/numpy seeds change"),
        (distiller(ignores_seed), {"seeds-differ"}, "seeds 0 and 1 give the same set"),
        (distiller(good, deterministic=True), {"seeds-differ"}, "declared deterministic, but"),
        (distiller(good, ignores_ipc=True), {"valid-set"}, "declared ignores_ipc, but"),
        (distiller(mutates_data), {"data-untouched"}, "digits val_x changed during distillation"),
        (
            distiller(ignores_cache_dir),
            {"no-stray-files"},
            "wrote outside request.cache_dir: $DD_BENCH_CACHE/scratch.txt",
        ),
    ],
    ids=[
        "preset",
        "raises",
        "one-class",
        "pixel-space",
        "metadata",
        "unseeded",
        "global-rng",
        "ignores-seed",
        "false-deterministic",
        "false-ignores-ipc",
        "mutates-data",
        "ignores-cache-dir",
    ],
)
def test_each_broken_distiller_is_caught_by_its_check(registry, spec, expected, reason):
    assert_caught(distiller_checks(spec, registry), DISTILLER_CHECKS, expected, reason)


def test_a_slow_smoke_run_fails_the_time_limit(registry):
    found = failures(distiller_checks(distiller(good), registry, time_limit=1e-9))
    assert set(found) == {"smoke"} and "over the 1e-09 s limit" in found["smoke"]


def test_the_time_limit_grows_with_the_load_a_reference_workload_measures(registry, monkeypatch):
    from dd_bench.conformance import base, distillers

    assert base.load_factor(base.REFERENCE_QUIET_SECONDS / 2) == 1.0, "a fast machine keeps the stated limit"
    assert base.load_factor(3 * base.REFERENCE_QUIET_SECONDS) == pytest.approx(3.0)
    monkeypatch.setattr(
        distillers, "reference_seconds", lambda: 1e12 * base.REFERENCE_QUIET_SECONDS
    )  # a machine 1e12x loaded
    results = {r.check: r for r in distiller_checks(distiller(good), registry, time_limit=1e-9)}
    assert results["smoke"].status == "pass" and "for the load now" in results["smoke"].reason


def test_checks_leave_the_caller_as_they_found_it(registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(5)
    random.seed(5)
    expected = (torch.rand(1), random.random())
    torch.manual_seed(5)
    random.seed(5)
    distiller_checks(distiller(global_rng), registry)
    assert (torch.rand(1), random.random()) == expected
    assert Path.cwd() == tmp_path and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- models


class Linear(nn.Module):
    def __init__(self, shape, classes=None):
        super().__init__()
        self.fc = nn.Linear(shape.channels * shape.height * shape.width, classes or shape.num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def grey_only(shape):
    if shape.channels != 1:
        raise ConfigError(f"grey_only: {shape.channels} channels are not allowed (allowed: 1)")
    return Linear(shape)


def crashes_on_rgb(shape):
    if shape.channels != 1:
        raise ValueError("only grey")
    return Linear(shape)


class IgnoresInput(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(shape.num_classes))

    def forward(self, x):
        return self.bias.expand(len(x), -1)


def python_random_init(shape):
    net = Linear(shape)
    with torch.no_grad():
        net.fc.weight.fill_(random.random())
    return net


class Timid(Linear):
    def forward(self, x):
        return 1e-4 * super().forward(x)


class StaleWeight(Linear):
    """Keeps its weight in a plain list, which functional_call cannot swap."""

    def __init__(self, shape):
        super().__init__(shape)
        self.held = [self.fc.weight]

    def forward(self, x):
        return nn.functional.linear(x.flatten(1), self.held[0], self.fc.bias)


@pytest.mark.parametrize(
    ("spec", "expected", "reason"),
    [
        (ModelSpec("broken", crashes_on_rgb), {"shapes"}, "build for 3x16x16 raises ValueError: only grey"),
        (
            ModelSpec("broken", lambda shape: Linear(shape, shape.num_classes + 1)),
            {"logits"},
            "logits have shape [4, 11], expected [4, 10]",
        ),
        (ModelSpec("broken", IgnoresInput), {"logits", "trains"}, "they ignore the input"),
        (ModelSpec("broken", python_random_init), {"seeded-init"}, "seed 0 twice gives different initial 'fc.weight'"),
        (ModelSpec("broken", Timid), {"trains"}, "in 20 Adam steps"),
        (ModelSpec("broken", StaleWeight), {"functional-call"}, "no gradient reaches 'fc.weight'"),
    ],
    ids=["crashes", "wrong-logits", "ignores-input", "unseeded-init", "does-not-train", "not-functional"],
)
def test_each_broken_model_is_caught_by_its_check(registry, spec, expected, reason):
    assert_caught(model_checks(spec, registry), MODEL_CHECKS, expected, reason)


def test_refusals_and_declarations_pass_with_their_reason(registry):
    results = {r.check: r for r in check_model(ModelSpec("grey", grey_only), registry)}
    assert "refuses 3x16x16, 3x28x28, 3x32x32: grey_only: 3 channels are not allowed" in results["shapes"].reason
    results = {r.check: r for r in check_model(ModelSpec("stale", StaleWeight, functional=False), registry)}
    assert results["functional-call"].reason.startswith("declared functional=False")


# ---------------------------------------------------------------------------- datasets


def blobs(
    request,
    *,
    name="blobs",
    val_seed=None,
    test_follows_seed=False,
    test_in_pool=False,
    stats="train",
    bad_label=False,
    per_class=(60, 60, 60),
) -> RealData:
    """Three classes of 4x4 Gaussian blobs around class means; knobs break one rule each."""

    def draw(counts, g, shift=0.0):
        y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
        return torch.randn(len(y), 1, 4, 4, generator=g) + y.view(-1, 1, 1, 1) + shift, y

    train_x, train_y = draw(per_class, torch.Generator().manual_seed(0))
    test_g = torch.Generator().manual_seed(1000 + (request.seed if test_follows_seed else 0))
    test_x, test_y = draw((20, 20, 20), test_g, 3.0 if stats == "test" else 0.0)
    if test_in_pool:
        train_x, train_y = torch.cat([train_x, test_x]), torch.cat([train_y, test_y])
    source = test_x if stats == "test" else train_x
    mean, std = source.mean().item(), source.std().item()
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    if bad_label:
        train_y[0] = 3
    tx, ty, vx, vy = split_train_val(
        train_x, train_y, request.val_fraction, request.seed if val_seed is None else val_seed
    )
    return RealData(name, tx, ty, vx, vy, test_x, test_y, (mean,), (std,), ("a", "b", "c"))


def dataset(balanced: bool = True, **knobs) -> DatasetSpec:
    return DatasetSpec("blobs", lambda request: blobs(request, **knobs), balanced=balanced)


@pytest.mark.parametrize(
    ("spec", "expected", "reason"),
    [
        (
            dataset(name="other"),
            set(DATASET_CHECKS),
            "RealData.name is 'other'; it must be the registered name 'blobs'",
        ),
        (dataset(bad_label=True), {"labels"}, "train labels span 0..3, but there are 3 classes"),
        (dataset(test_in_pool=True), {"disjoint-splits"}, "images appear in both train and test"),
        (dataset(val_seed=0), {"val-seeded"}, "seeds 0 and 1 give the same validation split"),
        (dataset(test_follows_seed=True), {"test-fixed"}, "the test split changes with the seed"),
        (dataset(stats="test"), {"normalisation"}, "mean/std must be the training split's"),
        (dataset(per_class=(60, 60, 180)), {"balanced"}, "train 60..180, test 20..20 per class, more than x1.5 apart"),
    ],
    ids=["wrong-name", "label-range", "test-in-train", "val-unseeded", "test-moves", "test-statistics", "unbalanced"],
)
def test_each_broken_dataset_is_caught_by_its_check(spec, expected, reason):
    assert_caught(dataset_checks(spec), DATASET_CHECKS, expected, reason)


def test_declared_unbalanced_and_missing_data():
    assert "declared balanced=False" in check_dataset(dataset(per_class=(60, 60, 180), balanced=False))[-1].reason

    def missing(request):
        raise DataError("blobs: blobs.bin not found in /nowhere")

    results = dataset_checks(DatasetSpec("blobs", missing))
    assert {r.status for r in results} == {"skip"} and "blobs.bin not found" in results[0].reason
    with pytest.raises(pytest.skip.Exception):
        check_dataset(DatasetSpec("blobs", missing))


# ---------------------------------------------------------------------------- helpers, CLI, built-ins


def test_helpers_fail_the_test_naming_the_check(registry):
    with pytest.raises(pytest.fail.Exception, match="distiller broken: global-rng: digits IPC 1"):
        check_distiller(distiller(global_rng), registry)
    with pytest.raises(pytest.fail.Exception, match="model broken: seeded-init"):
        check_model(ModelSpec("broken", python_random_init), registry)
    with pytest.raises(pytest.fail.Exception, match="dataset blobs: val-seeded"):
        check_dataset(dataset(val_seed=0))


class BrokenPlugin:
    @hookimpl
    def ddb_register_models(self):
        return [ModelSpec("broken_net", python_random_init)]


def test_cli_exit_status_and_json(capsys, monkeypatch):
    monkeypatch.setattr("dd_bench.plugins.Registry", lambda: make_registry(BrokenPlugin()))
    assert main(["check-plugin", "BrokenPlugin", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == 1 and {r["name"] for r in report["results"]} == {"broken_net"}
    row = next(r for r in report["results"] if r["status"] == "fail")
    assert row["check"] == "seeded-init" and row["plugin"] == "BrokenPlugin" and row["distribution"] is None
    assert main(["check-plugin", "baselines"]) == 0
    out = capsys.readouterr().out
    assert "distiller random (plugin baselines, dd-bench" in out
    assert re.search(r"^20 passed, 0 failed, 0 skipped in [0-9.]+ s$", out, re.M), out
    assert main(["check-plugin", "baseline"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown plugin or distribution 'baseline'; did you mean 'baselines'?" in err[0]
    assert err[0].endswith(
        "(known: BrokenPlugin, baselines, datasets, datm, dc, dd-bench, dm, ftd, models, mtt, oq, rded, sre2l)"
    )
    with pytest.raises(SystemExit) as exit_:
        main(["check-plugin", "--time-limit", "0"])
    assert exit_.value.code == 2 and "--time-limit: '0': use a positive number of seconds" in capsys.readouterr().err


def test_cheap_builtins_pass(registry):
    for name in ("random", "full"):
        check_distiller(registry.distiller(name), registry)
    for name in ("digits", "toy"):
        check_dataset(registry.dataset(name))
    for name in ("mlp", "convnet_w32", "vgg11"):
        check_model(registry.model(name), registry)
