"""``--executor ray``: cells as Ray tasks on a local Ray instance, tracked into one store."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'dd-bench[ray]'")

from dd_bench import tracking  # noqa: E402
from dd_bench.runner import run_suite  # noqa: E402
from dd_bench.suite import parse  # noqa: E402
from dd_bench.testing import toy_suite_doc  # noqa: E402

SUITE = toy_suite_doc(name="unit-ray", ipcs=[1, 2])


def test_ray_executor_runs_every_cell_and_a_rerun_skips_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    suite, errors = parse(SUITE)
    assert not errors
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_suite(suite, tracking_uri=uri, executor="ray", quiet=True, device="cpu", ray_cpus_per_task=2)
        assert sorted(r.key for r in result.results if r.status == "done") == [
            "full/toy/ipcall/seed0",
            "random/toy/ipc1/seed0",
            "random/toy/ipc2/seed0",
        ]
        cells, evals = tracking.runs_table(uri, "unit-ray")
        assert len(cells) == 3 and len(evals) == 3
        assert {r.data.tags["ddb.status"] for r in cells} == {"done"}
        assert {r.data.tags["ddb.device_type"] for r in cells} == {"cpu"}
        assert all(r.data.tags["ddb.device"].endswith(", 2 threads)") for r in cells), "Ray's one thread was replaced"
        again = run_suite(suite, tracking_uri=uri, executor="ray", quiet=True, device="cpu")
        assert {r.status for r in again.results} == {"skipped"}
    finally:
        ray.shutdown()


def test_ray_runs_a_cells_shards_as_tasks_and_merges_them(tmp_path, monkeypatch, registry):
    """Two shard tasks write the cache, the cell task merges: the set is the unsharded one."""
    import mlflow
    import torch

    from dd_bench import api
    from dd_bench.synthetic import SyntheticSet

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("DD_BENCH_CACHE", str(tmp_path / "cache"))
    suite, errors = parse(
        toy_suite_doc(name="unit-ray-shards", ipcs=[2], methods={"random": {"shards": 2}}, references={"full": None})
    )
    assert not errors
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_suite(suite, tracking_uri=uri, executor="ray", quiet=True, device="cpu")
    finally:
        ray.shutdown()
    assert [r.status for r in result.results] == ["done"]
    assert len(list((tmp_path / "cache" / "shards").glob("*/units-*.pt"))) == 2
    run_id = result.results[0].run_id
    path = mlflow.MlflowClient(uri).download_artifacts(run_id, "synthetic/synthetic.pt", str(tmp_path))
    merged = SyntheticSet.load(path)
    whole = api.distill(
        registry, "random", api.load_data(registry, "toy"), 2, progress=False, cache_dir=tmp_path / "other"
    )
    assert torch.equal(merged.images, whole.images) and torch.equal(merged.labels, whole.labels)
    assert merged.metadata["shards"]["count"] == 2
