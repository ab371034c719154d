"""The GPU path, checked on any machine: device names, Ray placement, the NaN guard's copy,
the memory guard, device-consistent sets, recorded numerics and device-aware caches."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from dd_bench import api, runtime
from dd_bench.cli import main
from dd_bench.errors import ConfigError, DataError
from dd_bench.matching import ExpertRecipe, ensure_buffers
from dd_bench.matching import engine as engine_module
from dd_bench.matching.memory import MemoryEstimate, estimate_memory
from dd_bench.runner import plan, ray_device_type
from dd_bench.suite import parse
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import one_error_line, toy_suite_doc

GIB = 2**30


# ---------------------------------------------------------------------------- 1. device names


@pytest.mark.parametrize("name", ["mps", "meta", "junk", "cuda:x", "cpu:1", "xla"])
def test_unsupported_device_names_are_one_line_before_any_work(capsys, tmp_path, name):
    line = one_error_line(
        capsys,
        [
            "distill",
            "--method",
            "random",
            "--dataset",
            "toy",
            "--ipc",
            "1",
            "--device",
            name,
            "--out",
            str(tmp_path / "x.pt"),
        ],
    )
    assert repr(name) in line and "use auto, cpu, cuda or cuda:N" in line
    assert not (tmp_path / "x.pt").exists()


def test_a_gpu_index_the_machine_lacks_is_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"'cuda:1' is not allowed: this machine has 1 CUDA GPU \(use cuda:0\)"):
        runtime.resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match="has 2 CUDA GPUs .use cuda:0 to cuda:1"):
        runtime.resolve_device("cuda:2")
    assert runtime.resolve_device("cuda:1") == torch.device("cuda", 1)


def test_cuda_without_a_gpu_says_why(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    reason = "this torch build has no CUDA support" if not torch.backends.cuda.is_built() else "no CUDA GPU is visible"
    with pytest.raises(ConfigError, match=reason):
        runtime.resolve_device("cuda")


def test_auto_says_which_device_it_picked_and_why(monkeypatch):
    said = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device("auto", said.append) == torch.device("cpu")
    assert said and said[0].startswith("device auto: using cpu (") and ("no CUDA" in said[0])
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Test GPU")
    assert runtime.resolve_device("auto", said.append) == torch.device("cuda", 0)
    assert said[-1] == "device auto: using cuda:0 (Test GPU)"


# ---------------------------------------------------------------------------- 2. Ray placement


def test_ray_cells_get_the_clusters_device_type_and_the_driver_needs_no_gpu():
    assert ray_device_type("cpu", cluster_gpus=4) == "cpu"
    assert ray_device_type("auto", cluster_gpus=0) == "cpu"
    assert ray_device_type("auto", cluster_gpus=2) == "cuda"
    assert ray_device_type("cuda:3", cluster_gpus=1) == "cuda"  # the worker's one GPU is its cuda
    with pytest.raises(ConfigError, match="the Ray cluster has no GPUs"):
        ray_device_type("cuda", cluster_gpus=0)
    with pytest.raises(ConfigError, match="use auto, cpu, cuda or cuda:N"):
        ray_device_type("mps", cluster_gpus=1)


def test_the_cell_hash_includes_the_device_type(registry):
    suite, errors = parse(toy_suite_doc(name="unit-device"))
    assert not errors
    cpu, cuda = plan(suite, registry, "cpu"), plan(suite, registry, "cuda")
    assert [c.key for c in cpu] == [c.key for c in cuda]
    assert all(a.config_hash != b.config_hash for a, b in zip(cpu, cuda))
    assert cuda[0].resolved()["device_type"] == "cuda"


def test_concurrent_callers_train_each_expert_once(registry, toy, tmp_path):
    spec = registry.model("convnet_w32")
    build = lambda seed: runtime.seeded_build(lambda: spec.build(toy.shape), seed, torch.device("cpu"))  # noqa: E731
    recipe = ExpertRecipe(epochs=2, batch_size=64)
    results = []

    def call():
        results.append(
            ensure_buffers(
                "convnet_w32", build, toy, toy.train_x, recipe, 3, tmp_path, torch.device("cpu"), progress=False
            )
        )

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    assert sorted(results[0].trained + results[1].trained) == [0, 1, 2], "no expert is trained twice"
    for a, b in zip(*(r.trajectories for r in results)):
        assert torch.equal(a, b)
    assert results[0].device_types == ["cpu"] * 3


# ---------------------------------------------------------------------------- 3. the NaN guard

TINY = dict(
    iterations=6,
    syn_steps=3,
    expert_epochs=1,
    max_start_epoch=2,
    num_experts=2,
    expert_train_epochs=2,
    lr_img=10.0,
    lr_lr=1e-5,
    checkpoint_every=2,
)


def mtt(registry, data, tmp_path, **overrides):
    return api.distill(
        registry,
        "mtt",
        data,
        ipc=2,
        seed=0,
        overrides={**TINY, **overrides},
        cache_dir=tmp_path,
        model="convnet_w32",
        progress=False,
    )


def test_a_run_forced_to_explode_returns_exactly_the_last_good_iteration(registry, toy, tmp_path, monkeypatch, capsys):
    clean = mtt(registry, toy, tmp_path, iterations=3)  # three updates: the set of iteration 3
    real_match, calls = engine_module.match, []

    def explode_at_4(*args, **kwargs):
        loss = real_match(*args, **kwargs)
        calls.append(1)
        return torch.tensor(float("nan")) if len(calls) == 5 else loss  # iteration 4: its state came from 4 updates

    monkeypatch.setattr(engine_module, "match", explode_at_4)
    capsys.readouterr()
    stopped = mtt(registry, toy, tmp_path)
    assert "stopped at iteration 4" in capsys.readouterr().err
    assert stopped.metadata["stopped_early"] == {"iteration": 4, "loss": "nan", "kept_iteration": 3}
    assert torch.equal(stopped.images, clean.images) and stopped.lr == clean.lr
    assert not list((tmp_path / "checkpoints").glob("*.pt"))


def test_snapshots_do_not_alias_the_live_state(registry, toy, tmp_path):
    request = api_request(registry, toy, tmp_path)
    matcher = engine_module.TrajectoryMatcher(request)
    matcher.setup()
    matcher.images.grad = torch.ones_like(matcher.images)
    matcher.opt_img.step()  # creates the momentum buffer
    snapshot = matcher._state(0)
    with torch.no_grad():
        matcher.images.add_(1.0)
        for state in matcher.opt_img.state.values():
            state["momentum_buffer"].add_(1.0)  # what the next optimizer step does in place
    assert not torch.equal(snapshot["images"], matcher.images.detach())
    live = next(iter(matcher.opt_img.state_dict()["state"].values()))["momentum_buffer"]
    assert not torch.equal(next(iter(snapshot["opt_img"]["state"].values()))["momentum_buffer"], live)


def api_request(registry, data, tmp_path):
    from dd_bench.specs import DistillRequest

    spec = registry.model("convnet_w32")
    return DistillRequest(
        data=data,
        ipc=2,
        seed=0,
        config=registry.distiller("mtt").resolve_config(None, TINY),
        device=torch.device("cpu"),
        model="convnet_w32",
        build_model=lambda s: runtime.seeded_build(lambda: spec.build(data.shape), s, torch.device("cpu")),
        cache_dir=tmp_path,
        progress=False,
    )


# ---------------------------------------------------------------------------- 4. the memory guard


def test_memory_estimate_grows_with_steps_and_images(registry, toy):
    from dd_bench.augment import DSA
    from dd_bench.matching import FlatModel

    student = FlatModel(registry.model("convnet_w32").build(toy.shape))
    images, labels = toy.train_x[:8], toy.train_y[:8]
    small = estimate_memory(student, images, labels, batch=4, syn_steps=10, augment=DSA())
    assert small.per_image_step > 0 and small.per_step > 0
    assert estimate_memory(student, images, labels, batch=4, syn_steps=20, augment=DSA()).unrolled == pytest.approx(
        2 * small.unrolled, rel=1e-6
    )
    assert estimate_memory(student, images, labels, batch=8, syn_steps=10, augment=DSA()).unrolled > small.unrolled
    assert small.constant < small.unrolled


def test_an_unrolled_run_that_does_not_fit_switches_to_constant_memory(registry, toy, tmp_path, monkeypatch, capsys):
    unrolled = mtt(registry, toy, tmp_path / "a", iterations=2)
    assert unrolled.metadata["constant_memory"] is False
    monkeypatch.setattr(
        engine_module, "estimate_memory", lambda *a: MemoryEstimate(1, 1, unrolled=10 * GIB, constant=GIB)
    )
    monkeypatch.setattr(engine_module, "free_memory", lambda device: 2 * GIB)
    capsys.readouterr()
    switched = mtt(registry, toy, tmp_path / "b", iterations=2)
    err = capsys.readouterr().err
    assert "about 10.0 GiB unrolled, 1.0 GiB with constant_memory" in err and "switching to constant_memory" in err
    assert switched.metadata["constant_memory"] is True
    torch.testing.assert_close(switched.images, unrolled.images, rtol=1e-4, atol=1e-5)


def test_a_run_that_fits_neither_way_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(
        engine_module, "estimate_memory", lambda *a: MemoryEstimate(1, 1, unrolled=10 * GIB, constant=3 * GIB)
    )
    monkeypatch.setattr(engine_module, "free_memory", lambda device: 2 * GIB)
    line = one_error_line(
        capsys,
        [
            "distill",
            "--method",
            "mtt",
            "--preset",
            "smoke",
            "--dataset",
            "toy",
            "--ipc",
            "1",
            "--model",
            "convnet_w32",
            "--cache-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "x.pt"),
        ],
    )
    assert "mtt needs about 10.0 GiB unrolled, 3.0 GiB with constant_memory, but cpu has 2.0 GiB free" in line
    assert "lower batch_syn, syn_steps or ipc" in line and not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------------------- 5. one device per set


def test_a_set_with_tensors_on_two_devices_is_refused():
    with pytest.raises(DataError, match="must be on one device, got cpu, meta"):
        SyntheticSet(
            torch.zeros(2, 1, 4, 4),
            torch.tensor([0, 1]),
            2,
            "toy",
            "x",
            1,
            (0.0,),
            (1.0,),
            weights=torch.ones(2, device="meta"),
        )


# ---------------------------------------------------------------------------- 6-7. what is recorded


def test_deterministic_flag_sets_and_records_the_kernels(capsys, tmp_path):
    try:
        assert (
            main(
                [
                    "distill",
                    "--method",
                    "random",
                    "--dataset",
                    "toy",
                    "--ipc",
                    "1",
                    "--device",
                    "cpu",
                    "--deterministic",
                    "--out",
                    str(tmp_path / "x.pt"),
                ]
            )
            == 0
        )
        assert torch.are_deterministic_algorithms_enabled()
        env = runtime.environment(torch.device("cpu"))
        assert env["deterministic"] is True and env["device_type"] == "cpu" and "float32_matmul_precision" in env
    finally:
        runtime.set_deterministic(False)


def test_caches_record_the_device_type_they_were_built_on(registry, digits, tmp_path):
    from dd_bench_oq.latents import AELatent, AERecipe

    latent = AELatent.load_or_train(digits, AERecipe(epochs=1), tmp_path, torch.device("cpu"), progress=False)
    assert latent.info["ae_device_type"] == "cpu" and latent.info["ae_trained_now"]
    again = AELatent.load_or_train(digits, AERecipe(epochs=1), tmp_path, torch.device("cpu"), progress=False)
    assert again.info["ae_device_type"] == "cpu" and not again.info["ae_trained_now"]


def test_runs_and_the_leaderboard_record_the_numerics_and_keep_devices_apart(registry, tmp_path):
    from dd_bench import tracking
    from dd_bench.results import device_type_of_runs, make
    from dd_bench.runner import run_suite

    suite, _ = parse(toy_suite_doc(name="unit-numerics"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_suite(suite, registry=registry, tracking_uri=uri, device="cpu", quiet=True)
    run = tracking.runs_table(uri, "unit-numerics")[0][0]
    tags = tracking.tags_of(run)
    assert tags["device_type"] == "cpu" and tags["deterministic"] == "False" and tags["float32_matmul_precision"]
    assert tags["compile"] == (os.environ.get("DD_BENCH_COMPILE") or "auto")
    make(suite, registry, uri, tmp_path / "lb")
    readme = (tmp_path / "lb" / "README.md").read_text()
    assert "**numerics**: deterministic=False; float32_matmul_precision=" in readme and "; compile=" in readme

    c = tracking.client(uri)
    c.create_run(
        run.info.experiment_id, tags={"ddb.kind": "cell", "ddb.device_type": "cuda"}
    )  # as a GPU machine would add
    with pytest.raises(ConfigError, match="has runs on cpu and cuda .* choose one with --device-type"):
        device_type_of_runs(tracking.runs_table(uri, "unit-numerics")[0], suite, uri, None)
    assert device_type_of_runs([], suite, uri, "cuda") == "cuda"


def test_importing_dd_bench_backs_large_cpu_tensors_with_huge_pages():
    """THP_MEM_ALLOC_ENABLE must be set before torch's first allocation, so dd_bench sets it on
    import (a user's own setting wins)."""
    import subprocess
    import sys

    code = "import os, dd_bench, torch; print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "1"
    env["THP_MEM_ALLOC_ENABLE"] = "0"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "0"
