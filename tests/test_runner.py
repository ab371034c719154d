"""The runner: cells tracked in MLflow, skip finished cells, resume interrupted ones, isolate failures."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from dd_bench import hookimpl, tracking
from dd_bench.runner import run_suite
from dd_bench.specs import DistillerSpec, ModelSpec
from dd_bench.suite import parse
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import make_registry, toy_suite_doc

BASE = toy_suite_doc(
    name="unit-runner", methods={"random": {}, "full": {"seeds": [0]}}, seeds=[0, 1], eval={"epochs": 2, "dsa": False}
)


def suite_of(**changes):
    suite, errors = parse({**BASE, **changes})
    assert not errors, errors
    return suite


@dataclass(frozen=True)
class NoConfig:
    pass


class Counting:
    """A distiller that counts its calls and raises for seed 1, and a model that fails once."""

    def __init__(self):
        self.distills = 0
        self.builds = 0
        self.fail_build = 0

    def distill(self, request):
        self.distills += 1
        if request.seed == 1:
            raise RuntimeError("boom: seed 1 diverged")
        data = request.data
        idx = torch.cat([data.indices_of_class(c)[: request.ipc] for c in range(data.num_classes)])
        return SyntheticSet(
            data.train_x[idx].clone(),
            data.train_y[idx].clone(),
            data.num_classes,
            data.name,
            "counting",
            request.ipc,
            data.mean,
            data.std,
        )

    def build(self, shape):
        self.builds += 1
        if self.builds == self.fail_build:
            raise RuntimeError("interrupted while evaluating")
        return torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(shape.channels * shape.height * shape.width, shape.num_classes)
        )

    @hookimpl
    def ddb_register_distillers(self):
        return [DistillerSpec(name="counting", config_cls=NoConfig, distill=self.distill, presets={"smoke": {}})]

    @hookimpl
    def ddb_register_models(self):
        return [ModelSpec(name="flaky", build=self.build)]


def cell_runs(uri, name):
    cells, evals = tracking.runs_table(uri, name)
    return {r.data.tags["ddb.hash"]: r for r in cells}, evals


def test_run_records_everything_and_a_rerun_skips_finished_cells(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = run_suite(suite_of(), registry=make_registry(), tracking_uri=uri, quiet=True)
    assert [r.status for r in first.results] == ["done"] * 3
    cells, evals = cell_runs(uri, "unit-runner")
    assert len(cells) == 3 and len(evals) == 3
    run = next(r for r in cells.values() if r.data.tags["ddb.method"] == "random")
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    for key in (
        "method",
        "dataset",
        "ipc",
        "seed",
        "plugin",
        "plugin_version",
        "git_sha",
        "device",
        "torch",
        "memory_kind",
    ):
        assert tags.get(f"ddb.{key}"), key
    assert tags["ddb.status"] == "done" and run.info.status == "FINISHED"
    assert params["dataset"] == "toy" and params["eval.epochs"] == "2" and "config_hash" in params
    for key in ("distill_seconds", "peak_memory_mb", "synthetic_bytes", "acc.mlp.mean"):
        assert key in metrics, key
    client = tracking.client(uri)
    names = {f.path for f in client.list_artifacts(run.info.run_id)} | tracking.list_artifacts(
        client, run.info.run_id, "synthetic"
    )
    assert {"config.yaml", "synthetic/synthetic.pt", "synthetic/grid.png"} <= names
    child = next(e for e in evals if e.data.tags["mlflow.parentRunId"] == run.info.run_id)
    assert child.data.tags["ddb.eval_model"] == "mlp" and "test_acc_s0" in child.data.metrics

    again = run_suite(suite_of(), registry=make_registry(), tracking_uri=uri, quiet=True)
    assert [r.status for r in again.results] == ["skipped"] * 3
    assert len(cell_runs(uri, "unit-runner")[0]) == 3

    # a new eval architecture evaluates only that architecture, in the same cell runs
    more = run_suite(
        suite_of(eval_models=["mlp", "convnet_w64"]), registry=make_registry(), tracking_uri=uri, quiet=True
    )
    assert [r.status for r in more.results] == ["done"] * 3
    cells2, evals2 = cell_runs(uri, "unit-runner")
    assert set(cells2) == set(cells) and len(evals2) == 6


def test_a_failing_cell_is_recorded_and_the_suite_goes_on_then_resume_reuses_finished_work(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    plugin = Counting()
    reg = make_registry(plugin)
    suite = suite_of(methods={"counting": {}, "random": {}}, eval_models=["mlp", "flaky"], references={"full": None})
    plugin.fail_build = 2  # build 1 is the up-front check; build 2, the first evaluation on "flaky", dies
    result = run_suite(suite, registry=reg, tracking_uri=uri, quiet=True)
    status = {r.key: r.status for r in result.results}
    assert status == {
        "counting/toy/ipc1/seed0": "failed",  # flaky failed after mlp finished
        "counting/toy/ipc1/seed1": "failed",  # the distiller raised
        "random/toy/ipc1/seed0": "done",
        "random/toy/ipc1/seed1": "done",
    }
    errors = {r.key: r.error for r in result.results}
    assert "boom: seed 1 diverged" in errors["counting/toy/ipc1/seed1"]
    cells, evals = cell_runs(uri, suite.name)
    failed = [r for r in cells.values() if r.data.tags["ddb.status"] == "failed"]
    assert len(failed) == 2 and all(r.info.status == "FAILED" and r.data.tags["ddb.error"] for r in failed)
    assert plugin.distills == 2

    # re-run: seed 0 resumes (no new distillation, mlp kept), seed 1 is retried and fails again
    result = run_suite(suite, registry=reg, tracking_uri=uri, quiet=True)
    status = {r.key: r.status for r in result.results}
    assert status["counting/toy/ipc1/seed0"] == "done" and status["counting/toy/ipc1/seed1"] == "failed"
    assert status["random/toy/ipc1/seed0"] == "skipped"
    assert plugin.distills == 3  # only seed 1 distilled again
    cells2, evals2 = cell_runs(uri, suite.name)
    assert set(cells2) == set(cells)  # same runs, resumed
    seed0 = next(
        r for r in cells2.values() if r.data.tags["ddb.seed"] == "0" and r.data.tags["ddb.method"] == "counting"
    )
    assert seed0.data.tags["ddb.resumed_from"] == "failed" and seed0.data.tags["ddb.status"] == "done"
    done_mlp = [
        e
        for e in evals2
        if e.data.tags["mlflow.parentRunId"] == seed0.info.run_id and e.data.tags["ddb.eval_model"] == "mlp"
    ]
    assert len(done_mlp) == 1  # mlp was not evaluated twice

    # the leaderboard shows the failed seed as missing and never averages the finished one
    from dd_bench.results import make

    board, files = make(suite, reg, uri, tmp_path / "lb", "dd-bench leaderboard test")
    entry = board.acc[("toy", "counting", "1", "mlp")]
    assert not entry.complete and entry.n == 1 and "missing (1/2)" in (tmp_path / "lb" / "README.md").read_text()
    assert board.acc[("toy", "random", "1", "mlp")].complete


def test_bad_executor_and_device_fail_before_work(tmp_path):
    with pytest.raises(Exception, match="executor"):
        run_suite(
            suite_of(),
            registry=make_registry(),
            tracking_uri=f"sqlite:///{tmp_path}/m.db",
            executor="spark",
            quiet=True,
        )
    assert not (tmp_path / "m.db").exists()


def test_teacher_protocol_is_recorded_with_its_hard_row_and_storage(tmp_path):
    """eval.labels=teacher: the protocol is a param and a tag, the teacher is named, and the
    cell also reports the hard-label accuracy and what each protocol must store."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ev = {"epochs": 2, "dsa": False, "labels": "teacher", "teacher_model": "mlp", "teacher_epochs": 2}
    run = run_suite(
        suite_of(seeds=[0], eval=ev),
        registry=make_registry(),
        tracking_uri=uri,
        only=["method=random"],
        quiet=True,
        cache_dir=str(tmp_path / "cache"),
    )
    assert [r.status for r in run.results] == ["done"]
    cells, evals = cell_runs(uri, "unit-runner")
    (cell,) = cells.values()
    assert cell.data.params["eval.labels"] == "teacher" and len(cell.data.tags["ddb.teacher"]) == 16
    assert 0 <= cell.data.metrics["teacher_val_acc"] <= 100 and cell.data.metrics["teacher_bytes"] > 0
    (child,) = evals
    m = child.data.metrics
    assert child.data.tags["ddb.labels"] == "teacher"
    assert "hard_test_acc_mean" in m and "test_acc_mean" in m
    assert (
        m["storage_bytes"] - m["hard_storage_bytes"] == cell.data.metrics["teacher_bytes"] - 4 * 8
    )  # 4 classes x 1 image: int64 labels
