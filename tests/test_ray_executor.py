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
            "full/toy/ipcall/seed0", "random/toy/ipc1/seed0", "random/toy/ipc2/seed0"
        ]  # fmt: skip
        cells, evals = tracking.runs_table(uri, "unit-ray")
        assert len(cells) == 3 and len(evals) == 3
        assert {r.data.tags["ddb.status"] for r in cells} == {"done"}
        assert {r.data.tags["ddb.device_type"] for r in cells} == {"cpu"}
        assert all(r.data.tags["ddb.device"].endswith(", 2 threads)") for r in cells), "Ray's one thread was replaced"
        again = run_suite(suite, tracking_uri=uri, executor="ray", quiet=True, device="cpu")
        assert {r.status for r in again.results} == {"skipped"}
    finally:
        ray.shutdown()
