"""MLflow tracking: URIs, the default store, and a real `mlflow server` on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dd_bench import tracking
from dd_bench.results import make
from dd_bench.runner import run_suite
from dd_bench.suite import parse
from dd_bench.testing import make_registry, toy_suite_doc

SUITE = toy_suite_doc(name="unit-server")


def test_default_uri_is_the_sqlite_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking.normalise_uri(None) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.normalise_uri("sqlite:///sub/x.db") == f"sqlite:///{tmp_path.resolve()}/sub/x.db"
    assert tracking.normalise_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert (
        tracking.artifact_location(tracking.normalise_uri(None), "s")
        == (tmp_path / "mlartifacts" / "s").resolve().as_uri()
    )
    with pytest.raises(Exception, match="tracking URI"):
        tracking.normalise_uri("mlflow.db")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(mlflow_bin) if mlflow_bin.exists() else "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{tmp_path}/server.db",
        "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"mlflow server did not start (exit {proc.poll()})")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_suite_tracks_into_a_real_mlflow_server_and_the_leaderboard_reads_it_back(
    mlflow_server, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    suite, errors = parse(SUITE)
    assert not errors
    reg = make_registry()
    result = run_suite(suite, registry=reg, tracking_uri=mlflow_server, quiet=True)
    assert [r.status for r in result.results] == ["done", "done"]
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the default store
    cells, evals = tracking.runs_table(mlflow_server, "unit-server")
    assert len(cells) == 2 and len(evals) == 2
    client = tracking.client(mlflow_server)
    run = cells[0]
    assert "synthetic/synthetic.pt" in tracking.list_artifacts(client, run.info.run_id, "synthetic")
    assert list((tmp_path / "server-artifacts").rglob("synthetic.pt"))  # stored by the server
    again = run_suite(suite, registry=reg, tracking_uri=mlflow_server, quiet=True)
    assert [r.status for r in again.results] == ["skipped", "skipped"]
    board, files = make(suite, reg, mlflow_server, tmp_path / "lb", "dd-bench leaderboard unit-server")
    assert board.acc[("toy", "random", "1", "mlp")].complete
    assert mlflow_server in (tmp_path / "lb" / "README.md").read_text()
