"""The prepared GPU check (benchmarks/gpu/): prepare.sh fills the carry, run.sh --dry-run runs every
step on the CPU at tiny sizes, so the script cannot rot between the sessions that have a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
STEPS = ["install", "data", "env", "cuda-tests", "matching-speed", "eval-speed", "suite", "leaderboard"]


def run_sh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu/run.sh"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "args,says",
    [
        (["--bogus"], "unknown option --bogus (allowed: --dry-run"),
        (["--budget", "soon"], "--budget soon is not allowed: use whole seconds"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args, says, tmp_path):
    done = run_sh(*args, env={"GPU_RUN_WORK": str(tmp_path / "work")})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"run.sh: {says}")
    assert not (tmp_path / "work").exists(), "nothing is written before the options are checked"


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs the Debian package dataset-fashion-mnist")
def test_prepare_then_a_dry_run_of_every_step(tmp_path):
    carry, work, out = tmp_path / "carry", tmp_path / "work", tmp_path / "out"
    prepared = subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu/prepare.sh"), str(carry)], cwd=ROOT, capture_output=True, text=True
    )
    assert prepared.returncode == 0, prepared.stderr
    assert "total" in prepared.stdout and "MiB" in prepared.stdout
    size = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    assert size <= 48 * 2**20
    assert any(p.name.startswith("mlflow_skinny-") for p in (carry / "wheels").iterdir())
    assert sorted(p.name for p in (carry / "fashion-mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.xz",
        "t10k-labels-idx1-ubyte.xz",
        "train-images-idx3-ubyte.xz",
        "train-labels-idx1-ubyte.xz",
    ]

    done = run_sh("--dry-run", env={"GPU_CARRY": str(carry), "GPU_RUN_WORK": str(work), "OUT": str(out)})
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True and summary["ok"] is True
    status = {s["name"]: s["status"] for s in summary["steps"]}
    assert list(status) == STEPS
    assert status["install"] == "skipped" and all(status[s] == "ok" for s in STEPS[1:])
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "cuda-tests.txt",
        "eval_speed.md",
        "fmnist-gpu-smoke-dry.tar.gz",
        "matching_speed.md",
        "run.log",
        "summary.json",
    ]
    unpacked = work / "cache" / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    assert unpacked.stat().st_size == 16 + 60000 * 28 * 28, "the carried files unpack to the IDX payload"
    assert "| mode |" in (out / "matching_speed.md").read_text() and "| model |" in (out / "eval_speed.md").read_text()
    assert "skipped" in (out / "cuda-tests.txt").read_text(), "on the CPU the CUDA tests are collected and skipped"
    with tarfile.open(out / "fmnist-gpu-smoke-dry.tar.gz") as tar:
        names = tar.getnames()
    assert "leaderboards/fmnist-gpu-smoke-dry/README.md" in names and "store/mlflow.db" in names
