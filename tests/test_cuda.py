"""What dd-bench claims on a CUDA GPU, checked on one (``pytest -m cuda``; skipped without a GPU).

``benchmarks/gpu/run.sh`` runs these first on a lent GPU. Each test is small: digits or toy,
narrow networks, smoke presets. Figures worth keeping (the memory estimate's ratio) are printed
and land in the run's log (``pytest -rA``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from dd_bench import api, runtime
from dd_bench.evaluate import EvalConfig, eval_splits, evaluate_model
from dd_bench.matching import engine as engine_module
from dd_bench.matching.memory import MemoryEstimate
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import make_registry, toy_suite_doc
from dd_bench.training import TrainRecipe, train_classifiers

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")
GIB = 2**30
BUILTIN_DISTILLERS = sorted(make_registry().distillers)


@pytest.mark.parametrize("method", BUILTIN_DISTILLERS)
def test_every_builtin_distiller_runs_its_smoke_preset_on_cuda(registry, digits, method, tmp_path):
    syn = api.distill(
        registry,
        method,
        digits,
        ipc=2,
        seed=0,
        preset="smoke",
        device=CUDA,
        cache_dir=tmp_path,
        model="convnet_w32",
        progress=False,
    )
    assert syn.images.device.type == "cpu", "a set leaves the distiller on the host, ready to save"
    assert torch.isfinite(syn.images).all()
    if method != "full":
        assert syn.images.shape[0] == 2 * digits.num_classes


@pytest.fixture
def no_tf32():
    """Full float32 convolutions and matmuls, so two kernel paths can be compared closely."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_batched_evaluation_equals_sequential_on_cuda(registry, toy, no_tf32):
    from dd_bench.augment import DSA

    spec, seeds = registry.model("convnet_w32"), (0, 1, 2)
    x, y = toy.train_x[:30].to(CUDA), toy.train_y[:30].to(CUDA)

    def trained(batched: bool) -> list[torch.Tensor]:
        models = [runtime.seeded_build(lambda: spec.build(toy.shape), s, CUDA) for s in seeds]
        train_classifiers(
            models,
            x,
            y,
            TrainRecipe(epochs=4, batch_size=8, decay_at=0.5),
            [torch.Generator().manual_seed(s) for s in seeds],
            augment=DSA(),
            batched=batched,
        )
        return [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in models]

    for a, b in zip(trained(True), trained(False)):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)

    syn = SyntheticSet(
        images=toy.train_x[:20].clone(),
        labels=toy.train_y[:20].clone(),
        num_classes=toy.num_classes,
        dataset=toy.name,
        method="test",
        ipc=2,
        mean=toy.mean,
        std=toy.std,
    )
    config, splits = EvalConfig(epochs=5, batch_size=8), eval_splits(syn, toy)
    batched = evaluate_model(syn, toy, spec, seeds, config, CUDA, splits, batched=True)
    sequential = evaluate_model(syn, toy, spec, seeds, config, CUDA, splits, batched=False)
    one_image = 100.0 / min(len(labels) for _, labels in splits.values())  # percent, on the smallest split
    for a, b in zip(batched, sequential):
        assert a.keys() == b.keys()
        for split in a:
            assert a[split] == pytest.approx(b[split], abs=one_image + 1e-9), split


def test_deterministic_runs_give_bit_identical_sets(tmp_path):
    """MTT without DSA (whose grid_sample backward has no deterministic CUDA kernel), in fresh
    processes: cuBLAS reads its setting when CUDA starts."""
    sets = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.pt"
        cmd = [
            sys.executable,
            "-m",
            "dd_bench.cli",
            "distill",
            "--method",
            "mtt",
            "--preset",
            "smoke",
            "--set",
            "dsa=false",
            "--dataset",
            "digits",
            "--ipc",
            "2",
            "--model",
            "convnet_w32",
            "--device",
            "cuda",
            "--deterministic",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(out),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        sets.append(SyntheticSet.load(out))
    assert torch.equal(sets[0].images, sets[1].images) and sets[0].lr == sets[1].lr


def test_memory_estimate_against_the_measured_peak(registry):
    from dd_bench.augment import DSA
    from dd_bench.matching import FlatModel, match
    from dd_bench.matching.memory import estimate_memory
    from dd_bench.specs import DataShape

    torch.manual_seed(0)
    student = FlatModel(registry.model("convnet").build(DataShape(1, 28, 28, 10)).to(CUDA))
    n, steps = 100, 10
    images = torch.randn(n, 1, 28, 28, device=CUDA, requires_grad=True)
    labels = torch.arange(10, device=CUDA).repeat_interleave(n // 10)
    estimate = estimate_memory(student, images.detach(), labels, n, steps, DSA())
    start = student.flatten()
    lr = torch.tensor(0.01, device=CUDA, requires_grad=True)
    batches = [torch.randperm(n, device=CUDA) for _ in range(steps)]
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    match(student, start, start + 0.01, images, labels, lr, batches, list(range(steps)), DSA(), False)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    ratio = peak / estimate.unrolled
    print(
        f"memory estimate: {estimate.unrolled / 2**20:.1f} MiB, measured peak {peak / 2**20:.1f} MiB (ratio {ratio:.2f})"
    )
    assert 0.5 < ratio <= 1.1, "the guard must not underestimate, nor refuse runs that fit twice over"


TINY = dict(
    iterations=2,
    syn_steps=3,
    expert_epochs=1,
    max_start_epoch=2,
    num_experts=2,
    expert_train_epochs=2,
    lr_img=10.0,
    lr_lr=1e-5,
    checkpoint_every=2,
)


def test_an_unrolled_run_that_does_not_fit_switches_to_constant_memory(registry, toy, tmp_path, monkeypatch, capsys):
    def mtt(cache):
        return api.distill(
            registry,
            "mtt",
            toy,
            ipc=2,
            seed=0,
            overrides=TINY,
            device=CUDA,
            cache_dir=cache,
            model="convnet_w32",
            progress=False,
        )

    unrolled = mtt(tmp_path / "a")
    assert unrolled.metadata["constant_memory"] is False
    monkeypatch.setattr(
        engine_module, "estimate_memory", lambda *a: MemoryEstimate(1, 1, unrolled=10 * GIB, constant=GIB)
    )
    monkeypatch.setattr(engine_module, "free_memory", lambda device: 2 * GIB)
    capsys.readouterr()
    switched = mtt(tmp_path / "b")
    assert "switching to constant_memory" in capsys.readouterr().err
    assert switched.metadata["constant_memory"] is True
    torch.testing.assert_close(switched.images, unrolled.images, rtol=1e-3, atol=1e-4)


def test_expert_trajectories_stay_on_the_host_pinned(registry, toy, tmp_path):
    from dd_bench.specs import DistillRequest

    spec = registry.model("convnet_w32")
    request = DistillRequest(
        data=toy,
        ipc=2,
        seed=0,
        config=registry.distiller("mtt").resolve_config(None, TINY),
        device=CUDA,
        model="convnet_w32",
        build_model=lambda s: runtime.seeded_build(lambda: spec.build(toy.shape), s, CUDA),
        cache_dir=tmp_path,
        progress=False,
    )
    matcher = engine_module.TrajectoryMatcher(request)
    matcher.setup()
    assert matcher.images.device.type == "cuda"
    assert all(t.device.type == "cpu" and t.is_pinned() for t in matcher.buffers.trajectories)


def test_a_suite_runs_on_cuda_into_sqlite_and_its_leaderboard_says_so(registry, tmp_path):
    from dd_bench import tracking
    from dd_bench.results import make
    from dd_bench.runner import run_suite
    from dd_bench.suite import parse

    suite, _ = parse(toy_suite_doc(name="unit-cuda"))  # two cells: random and full
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_suite(suite, registry=registry, tracking_uri=uri, device="cuda", quiet=True)
    assert result.count("failed") == 0
    cells = [r for r in tracking.runs_table(uri, "unit-cuda")[0]]
    assert len(cells) == 2 and all(tracking.tags_of(r)["device_type"] == "cuda" for r in cells)
    make(suite, registry, uri, tmp_path / "lb")
    readme = (tmp_path / "lb" / "README.md").read_text()
    assert torch.cuda.get_device_name() in readme
