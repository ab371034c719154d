"""SIGKILL, not an exception: a real ``dd-bench`` process is killed mid-work, then rerun.

The rerun must resume (finished experts, iterations and cells are not redone), end where
an uninterrupted run ends (every method here is deterministic on the CPU), and never read
a half-written file: every file a kill can leave behind is either whole or a temporary
file no reader looks at, and MLflow runs left RUNNING are resumed or marked KILLED.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from dd_bench import tracking
from dd_bench.cli import main
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import toy_suite_doc

CPU = ["--device", "cpu"]


def dd_bench(capsys, *argv: object) -> str:
    """Run ``dd-bench ARGV`` to the end in this process; its stderr."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 0, err
    return err


def kill_midway(
    tmp_path: Path, argv: list[object], ready: Callable[[str], bool], cache: Path, timeout: float = 300
) -> None:
    """Start ``dd-bench ARGV`` in a process of its own and SIGKILL it once ``ready(its stderr so far)``."""
    env = {**os.environ, "DD_BENCH_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "killed.stderr"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dd_bench.cli", *map(str, argv)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.monotonic() + timeout
        try:
            while not ready(log.read_text()):
                assert proc.poll() is None, (
                    f"dd-bench ended (exit {proc.returncode}) before the kill:\n{log.read_text()}"
                )
                assert time.monotonic() < deadline, f"no sign of progress in {timeout} s:\n{log.read_text()}"
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()


def whole_files(folder: Path, pattern: str) -> list[Path]:
    """Files a reader would open (temporary files of an atomic write start with a dot)."""
    return sorted(p for p in folder.rglob(pattern) if not p.name.startswith("."))


def test_killed_expert_training_resumes_with_the_finished_experts(capsys, tmp_path):
    argv = ["buffer", "--dataset", "toy", "--model", "mlp", "--experts", 4, "--epochs", 3, *CPU]
    dd_bench(capsys, *argv, "--cache-dir", tmp_path / "reference")
    cache = tmp_path / "cache"
    kill_midway(tmp_path, [*argv, "--cache-dir", cache], lambda _: bool(whole_files(cache, "expert_*.pt")), cache)

    finished = whole_files(cache, "expert_*.pt")
    assert 1 <= len(finished) < 4
    for path in finished:  # whole: each holds init + 3 epochs
        assert torch.load(path, weights_only=True)["trajectory"].shape[0] == 4
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    err = dd_bench(capsys, *argv, "--cache-dir", cache)
    assert f"training {4 - len(finished)} expert(s)" in err
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps  # not trained again

    resumed, reference = whole_files(cache, "expert_*.pt"), whole_files(tmp_path / "reference", "expert_*.pt")
    assert [p.name for p in resumed] == [p.name for p in reference] == [f"expert_{k:04d}.pt" for k in range(4)]
    for a, b in zip(resumed, reference):
        assert torch.equal(
            torch.load(a, weights_only=True)["trajectory"], torch.load(b, weights_only=True)["trajectory"]
        )


def test_killed_matching_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(capsys, tmp_path):
    cache = tmp_path / "cache"
    argv = [
        "distill",
        "--method",
        "mtt",
        "--preset",
        "smoke",
        "--dataset",
        "toy",
        "--ipc",
        1,
        "--model",
        "mlp",
        "--set",
        "iterations=24",
        "--set",
        "checkpoint_every=1",
        "--cache-dir",
        cache,
        *CPU,
    ]
    dd_bench(capsys, *argv, "--out", tmp_path / "reference.pt")  # also trains the experts the others reuse
    assert not whole_files(cache / "checkpoints", "*.pt")  # a finished run leaves no checkpoint

    kill_midway(
        tmp_path,
        [*argv, "--out", tmp_path / "resumed.pt"],
        lambda _: bool(whole_files(cache / "checkpoints", "*.pt")),
        cache,
    )
    (checkpoint,) = whole_files(cache / "checkpoints", "*.pt")
    done = torch.load(checkpoint, weights_only=True)["iteration"]  # whole, whatever the moment of the kill
    assert 1 <= done < 24 and not (tmp_path / "resumed.pt").exists()

    err = dd_bench(capsys, *argv, "--out", tmp_path / "resumed.pt")
    assert f"resuming mtt from iteration {done}" in err and "training" not in err
    resumed, reference = SyntheticSet.load(tmp_path / "resumed.pt"), SyntheticSet.load(tmp_path / "reference.pt")
    assert torch.equal(resumed.images, reference.images) and torch.equal(resumed.labels, reference.labels)
    assert resumed.lr == reference.lr
    assert not whole_files(cache / "checkpoints", "*.pt")


def test_killed_oq_autoencoder_training_leaves_no_cache_and_the_rerun_ends_as_an_uninterrupted_run(capsys, tmp_path):
    cache = tmp_path / "cache"
    argv = [
        "distill",
        "--method",
        "oq",
        "--preset",
        "smoke",
        "--dataset",
        "toy",
        "--ipc",
        2,
        "--set",
        "latent=ae",
        "--set",
        "ae_epochs=25",
        "--set",
        "ae_batch=32",
        "--set",
        "ae_hidden=8",
        "--cache-dir",
        cache,
        *CPU,
    ]
    dd_bench(capsys, *argv, "--cache-dir", tmp_path / "reference", "--out", tmp_path / "reference.pt")

    kill_midway(tmp_path, [*argv, "--out", tmp_path / "oq.pt"], lambda err: "oq autoencoder epoch 1/25" in err, cache)
    assert not whole_files(cache, "ae-*.pt")  # the autoencoder is saved whole at the end, or not at all

    err = dd_bench(capsys, *argv, "--out", tmp_path / "oq.pt")
    assert "training the oq autoencoder" in err and len(whole_files(cache, "ae-*.pt")) == 1
    again = dd_bench(capsys, *argv, "--out", tmp_path / "again.pt")
    assert "training" not in again  # a finished autoencoder is not trained again
    reference = SyntheticSet.load(tmp_path / "reference.pt")
    for path in ("oq.pt", "again.pt"):
        syn = SyntheticSet.load(tmp_path / path)
        assert torch.equal(syn.images, reference.images) and torch.equal(syn.weights, reference.weights)


def test_a_killed_suite_resumes_its_cells_and_leaves_no_run_running(capsys, tmp_path):
    suite = tmp_path / "suite.yaml"
    doc = toy_suite_doc(
        name="killed",
        methods={"random": {}, "full": {"seeds": [0, 1]}},
        eval_seeds=2,
        eval={"epochs": 100, "dsa": False},
    )
    suite.write_text(yaml.safe_dump(doc))
    reference_uri, uri = f"sqlite:///{tmp_path}/reference.db", f"sqlite:///{tmp_path}/mlflow.db"
    dd_bench(capsys, "run", suite, "--quiet", *CPU, "--tracking-uri", reference_uri)

    killed = "full/toy/ipcall/seed1"  # the second of three cells (full, full, random), the slowest to evaluate
    kill_midway(
        tmp_path,
        ["run", suite, *CPU, "--tracking-uri", uri],
        lambda err: f"{killed}: evaluating" in err,
        tmp_path / "cache",
    )
    cells, evals = tracking.runs_table(uri, "killed")
    by_key = {r.info.run_name: r for r in cells}
    assert len(cells) == 2 and by_key[killed].info.status == "RUNNING"  # what SIGKILL leaves behind
    assert tracking.tags_of(by_key[killed])["synthetic"] == tracking.SAVED
    assert [e.info.status for e in evals if e.data.tags["mlflow.parentRunId"] == by_key[killed].info.run_id] == [
        "RUNNING"
    ]

    err = dd_bench(capsys, "run", suite, *CPU, "--tracking-uri", uri)
    first = "full/toy/ipcall/seed0"  # finished before the kill: not redone
    assert f"{first}: distilling" not in err and f"{first}: evaluating" not in err
    assert f"{killed}: reusing the synthetic set of run {by_key[killed].info.run_id[:8]}" in err

    cells, evals = tracking.runs_table(uri, "killed")
    assert len(cells) == 3 and all(
        r.info.status == "FINISHED" and tracking.tags_of(r)["status"] == "done" for r in cells
    )
    resumed = next(r for r in cells if r.info.run_name == killed)
    assert (
        resumed.info.run_id == by_key[killed].info.run_id and tracking.tags_of(resumed)["resumed_from"] == "distilled"
    )
    stale = [e for e in evals if e.info.status != "FINISHED"]
    assert [(e.info.status, tracking.tags_of(e)["status"]) for e in stale] == [("KILLED", "interrupted")]

    def accuracies(store: str) -> dict[str, float]:
        c, e = tracking.runs_table(store, "killed")
        names = {r.info.run_id: r.info.run_name for r in c}
        return {
            names[r.data.tags["mlflow.parentRunId"]]: r.data.metrics["test_acc_mean"]
            for r in e
            if r.info.status == "FINISHED"
        }

    assert accuracies(uri) == accuracies(reference_uri) and len(accuracies(uri)) == 3


def test_a_set_cut_short_on_its_way_into_the_artifact_store_is_distilled_again(capsys, tmp_path):
    """A kill during the upload leaves a partial copy and no ``ddb.synthetic`` tag: the rerun never reads it."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(toy_suite_doc(name="cut", methods={"random": {}}, references={"full": None})))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    dd_bench(capsys, "run", suite, "--quiet", *CPU, "--tracking-uri", uri)
    (cell,), (child,) = tracking.runs_table(uri, "cut")
    accuracy = child.data.metrics["test_acc_mean"]

    c = tracking.client(uri)  # the state a kill between the upload and its tag leaves
    c.delete_run(child.info.run_id)
    c.delete_tag(cell.info.run_id, f"{tracking.TAG}synthetic")
    c.set_tag(cell.info.run_id, f"{tracking.TAG}status", tracking.RUNNING)
    c.update_run(cell.info.run_id, status="RUNNING")
    (stored,) = (tmp_path / "mlartifacts").rglob("synthetic.pt")
    stored.write_bytes(stored.read_bytes()[:100])

    err = dd_bench(capsys, "run", suite, *CPU, "--tracking-uri", uri)
    assert "random/toy/ipc1/seed0: distilling" in err and "reusing" not in err
    (cell,), evals = tracking.runs_table(uri, "cut")
    assert cell.info.status == "FINISHED" and [e.data.metrics["test_acc_mean"] for e in evals] == [accuracy]
    assert SyntheticSet.load(stored).method == "random"  # the partial copy was replaced by a whole one
