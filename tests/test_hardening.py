"""Bad input, dead services and closed pipes, as a new user meets them.

Each case must end in one line on stderr that names the bad value and what is allowed, exit
status 2, and nothing written: no set, no store, no leaderboard.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from dd_bench import tracking
from dd_bench.cli import main
from dd_bench.errors import ConfigError, DataError, ServiceError
from dd_bench.evaluate import EvalConfig
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import toy_suite_doc

SUITE = toy_suite_doc(name="hardening", methods={"random": {}, "full": {}}, seeds=[0])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``dd-bench ARGV`` in this process; argparse's own exits count like any other."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code: int, out: str, err: str) -> str:
    """The one line of a refused command."""
    assert code == 2 and out == "", (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def digits_set(**changes) -> SyntheticSet:
    """A set that fits ``digits`` (1x16x16, 10 classes), so nothing but its values can be wrong."""
    values = dict(
        images=torch.randn(10, 1, 16, 16, generator=torch.Generator().manual_seed(0)),
        labels=torch.arange(10),
        num_classes=10,
        dataset="digits",
        method="random",
        ipc=1,
        mean=(0.0,),
        std=(1.0,),
    )
    return SyntheticSet(**{**values, **changes})


def write_suite(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({**SUITE, **changes}))
    return path


# ---------------------------------------------------------------------------- 1. NaN and Inf in a set


@pytest.mark.parametrize(
    "field, poison",
    [
        ("images", float("nan")),
        ("images", float("inf")),
        ("labels", float("nan")),
        ("weights", float("inf")),
        ("lr", float("inf")),
    ],
)
def test_a_set_holding_nan_or_inf_is_refused_on_load(capsys, tmp_path, field, poison):
    blob = digits_set(
        labels=torch.randn(10, 10) if field == "labels" else torch.arange(10), weights=torch.ones(10), lr=0.01
    ).to_dict()
    if field == "lr":
        blob["lr"] = poison
    else:
        blob[field].view(-1)[3] = poison
    path = tmp_path / "poisoned.pt"
    torch.save(blob, path)  # what another tool (or an older dd-bench) may have written
    line = error_line(
        *run(capsys, "evaluate", path, "--models", "mlp", "--seeds", "1", "--epochs", "1", "--device", "cpu")
    )
    assert str(path) in line and ("NaN/Inf" in line or "lr=inf" in line), line


def test_a_set_holding_nan_is_refused_when_made_and_when_saved(tmp_path):
    images = torch.zeros(10, 1, 16, 16)
    images[2, 0, 5, 5] = float("nan")
    with pytest.raises(DataError, match=r"synthetic images hold 1 NaN/Inf value \(of 2560\)"):
        digits_set(images=images)
    syn = digits_set()
    syn.images[0, 0, 0, 0] = float("inf")  # changed in place after it was made
    with pytest.raises(DataError, match="NaN/Inf"):
        syn.save(tmp_path / "syn.pt")
    assert not list(tmp_path.iterdir())


def test_a_set_that_cannot_be_written_is_one_line(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    argv = [
        "distill",
        "--method",
        "random",
        "--dataset",
        "toy",
        "--ipc",
        "1",
        "--out",
        tmp_path / "afile" / "syn.pt",
        "--device",
        "cpu",
    ]
    code, out, err = run(capsys, *argv)
    line = error_line(code, out, err)  # refused before the work, not after it
    assert f"--out {tmp_path / 'afile' / 'syn.pt'}: {tmp_path / 'afile'} is a file, not a folder" in line, line


# ---------------------------------------------------------------------------- 2. counts that must be positive


@pytest.mark.parametrize(
    "argv, words",
    [
        (["evaluate", "{set}", "--epochs", "0"], ["--epochs", "'0'", ">= 1"]),
        (["evaluate", "{set}", "--epochs", "-3"], ["--epochs", "'-3'"]),
        (["evaluate", "{set}", "--batch-size", "0"], ["--batch-size", "'0'"]),
        (["evaluate", "{set}", "--seeds", "0"], ["--seeds", "'0'", "count from 1"]),
        (["evaluate", "{set}", "--seeds", "0,0"], ["--seeds", "distinct"]),
        (["evaluate", "{set}", "--seeds", "1,-2"], ["--seeds", "'1,-2'"]),
        (["evaluate", "{set}", "--seeds", "100000000"], ["--seeds", "1000"]),
        (["evaluate", "{set}", "--lr", "0"], ["--lr", "finite number > 0"]),
        (["evaluate", "{set}", "--lr", "nan"], ["--lr", "'nan'"]),
        (["evaluate", "{set}", "--models", "mlp,mlp"], ["--models", "distinct"]),
        (["distill", "--method", "random", "--dataset", "toy", "--ipc", "0", "--out", "{out}"], ["--ipc", "'0'"]),
        (
            ["distill", "--method", "random", "--dataset", "toy", "--ipc", "1", "--seed", "-1", "--out", "{out}"],
            ["--seed", "'-1'"],
        ),
        (
            ["distill", "--method", "random", "--dataset", "toy", "--ipc", "1", "--seed", str(2**32), "--out", "{out}"],
            ["--seed", "4294967295"],
        ),
        (
            ["distill", "--method", "mtt", "--dataset", "toy", "--ipc", "1", "--set", "iterations=0", "--out", "{out}"],
            ["iterations=0", ">= 1"],
        ),
        (
            [
                "distill",
                "--method",
                "mtt",
                "--dataset",
                "toy",
                "--ipc",
                "1",
                "--set",
                "expert_batch=0",
                "--out",
                "{out}",
            ],
            ["expert_batch=0", ">= 1"],
        ),
        (
            ["distill", "--method", "mtt", "--dataset", "toy", "--ipc", "1", "--set", "expert_lr=0", "--out", "{out}"],
            ["expert_lr=0", "> 0"],
        ),
        (
            [
                "distill",
                "--method",
                "ftd",
                "--dataset",
                "toy",
                "--ipc",
                "1",
                "--set",
                "num_experts=-2",
                "--out",
                "{out}",
            ],
            ["num_experts=-2"],
        ),
        (
            [
                "distill",
                "--method",
                "datm",
                "--dataset",
                "toy",
                "--ipc",
                "1",
                "--set",
                "expansion_end_epoch=0",
                "--out",
                "{out}",
            ],
            ["expansion_end_epoch=0"],
        ),
        (
            ["distill", "--method", "oq", "--dataset", "toy", "--ipc", "1", "--set", "ae_epochs=0", "--out", "{out}"],
            ["ae_epochs=0"],
        ),
        (
            [
                "distill",
                "--method",
                "oq",
                "--dataset",
                "toy",
                "--ipc",
                "1",
                "--set",
                "iterations=1.5",
                "--out",
                "{out}",
            ],
            ["iterations='1.5'"],
        ),
        (
            ["distill", "--method", "mtt", "--dataset", "toy", "--ipc", "1", "--set", "lr_img=inf", "--out", "{out}"],
            ["lr_img=inf", "finite"],
        ),
        (
            [
                "distill",
                "--method",
                "mtt",
                "--dataset",
                "toy",
                "--ipc",
                "1",
                "--set",
                "expert_optimizer=adamw",
                "--out",
                "{out}",
            ],
            ["'adamw'", "sgd"],
        ),
        (["buffer", "--dataset", "toy", "--experts", "0"], ["--experts", "'0'"]),
        (["buffer", "--dataset", "toy", "--epochs", "0"], ["--epochs", "'0'"]),
        (["buffer", "--dataset", "toy", "--batch-size", "-1"], ["--batch-size", "'-1'"]),
        (["buffer", "--dataset", "toy", "--lr", "-0.1"], ["--lr", "'-0.1'"]),
    ],
)
def test_zero_negative_and_non_finite_counts_are_refused_on_the_command_line(capsys, tmp_path, argv, words):
    fill = {"set": str(digits_set().save(tmp_path / "syn.pt")), "out": str(tmp_path / "out.pt")}
    line = error_line(
        *run(
            capsys,
            *[a.format(**fill) for a in argv],
            "--cache-dir" if argv[0] == "buffer" else "--device",
            str(tmp_path / "cache") if argv[0] == "buffer" else "cpu",
        )
    )
    for word in words:
        assert word in line, line
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"eval": {"epochs": 0}}, ["epochs=0", ">= 1"]),
        ({"eval": {"batch_size": -5}}, ["batch_size=-5"]),
        ({"eval": {"lr": float("nan")}}, ["eval.lr=nan", "finite"]),
        ({"eval_seeds": 0}, ["eval_seeds=0", "count from 1"]),
        ({"eval_seeds": 10**12}, ["eval_seeds=1000000000000"]),
        ({"seeds": [2**40]}, ["seeds=[1099511627776]", "4294967295"]),
        ({"ipcs": [0]}, ["ipcs=[0]"]),
        (
            {"methods": {"random": {}, "full": {}, "mtt": {"overrides": {"iterations": 0}}}},
            ["methods.mtt", "iterations=0"],
        ),
        (
            {"methods": {"random": {}, "full": {}, "oq": {"overrides": {"restarts": True}}}},
            ["methods.oq", "restarts=True", "integer"],
        ),
        (
            {"methods": {"random": {}, "full": {}, "mtt": {"overrides": {"expert_optimizer": "adamw"}}}},
            ["methods.mtt", "'adamw'"],
        ),
        ({"budget_hours": float("inf")}, ["budget_hours=inf"]),
    ],
)
def test_zero_negative_and_huge_counts_in_a_suite_are_refused_before_any_work(capsys, tmp_path, changes, words):
    db = tmp_path / "m.db"
    line = error_line(
        *run(
            capsys,
            "run",
            write_suite(tmp_path, **changes),
            "--quiet",
            "--device",
            "cpu",
            "--tracking-uri",
            f"sqlite:///{db}",
        )
    )
    for word in words:
        assert word in line, line
    assert not db.exists()


def test_eval_config_refuses_zero_epochs_in_python_too():
    with pytest.raises(ConfigError, match="epochs=0"):
        EvalConfig(epochs=0)
    with pytest.raises(ConfigError, match="DSA strategy"):
        EvalConfig(dsa_strategy="colour")


# ---------------------------------------------------------------------------- 3, 4. tracking URIs


@pytest.mark.parametrize("command", ["run", "leaderboard"])
def test_a_tracking_server_nobody_listens_on_is_one_line_within_seconds(capsys, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    line = error_line(
        *run(
            capsys,
            command,
            write_suite(tmp_path),
            "--tracking-uri",
            "http://127.0.0.1:9",
            *(["--quiet", "--device", "cpu"] if command == "run" else []),
        )
    )
    assert time.perf_counter() - started < 30  # MLflow alone retries for minutes
    assert "http://127.0.0.1:9 is not reachable" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml"]


def test_a_tracking_server_that_never_answers_times_out():
    with socket.socket() as server:  # accepts connections (the kernel's backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        started = time.perf_counter()
        with pytest.raises(ServiceError, match=r"no answer within 0\.5 s"):
            tracking.check_reachable(uri, timeout=0.5)
        assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "uri, words",
    [
        ("foo://bar", ["'foo://bar' is not supported", "schemes: sqlite, http, https"]),
        ("file:///tmp/mlruns", ["'file:///tmp/mlruns' is not supported", "sqlite:///"]),
        ("mlflow.db", ["'mlflow.db' is not supported"]),
        ("sqlite://", ["'sqlite://' names no database file"]),
        ("http://", ["'http://' names no host"]),
        ("sqlite:///{tmp}", ["is a folder"]),
    ],
)
@pytest.mark.parametrize("command", ["run", "leaderboard"])
def test_an_unsupported_tracking_uri_lists_the_schemes(capsys, tmp_path, monkeypatch, command, uri, words):
    monkeypatch.chdir(tmp_path)
    suite = write_suite(tmp_path)
    line = error_line(
        *run(
            capsys,
            command,
            suite,
            "--tracking-uri",
            uri.format(tmp=tmp_path),
            *(["--quiet", "--device", "cpu"] if command == "run" else []),
        )
    )
    for word in words:
        assert word in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml"]


# ---------------------------------------------------------------------------- 5. an explicit data root


@pytest.mark.parametrize(
    "root, words",
    [
        ("afile", ["data root", "afile is a file"]),
        ("nowhere", ["data root", "nowhere is missing"]),
        ("empty", ["fashion_mnist", "not found in", "empty", "train-images-idx3-ubyte"]),
    ],
)
def test_an_explicit_data_root_without_the_data_is_an_error(capsys, tmp_path, root, words):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty").mkdir()
    argv = [
        "distill",
        "--method",
        "random",
        "--dataset",
        "fashion_mnist",
        "--ipc",
        "1",
        "--data-root",
        tmp_path / root,
        "--out",
        tmp_path / "out.pt",
        "--device",
        "cpu",
    ]
    line = error_line(*run(capsys, *argv))
    for word in words:
        assert word in line, line
    assert str(tmp_path / root) in line and not (tmp_path / "out.pt").exists()


# ---------------------------------------------------------------------------- 6. files that are not dd-bench sets


class Booby:
    """Unpickling this would create a file: the proof that nothing ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("kind", ["torch-pickle", "plain-pickle", "text"])
def test_a_pickle_of_arbitrary_objects_is_refused_in_one_line_and_never_unpickled(capsys, tmp_path, kind):
    import pickle

    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    if kind == "torch-pickle":
        torch.save({"images": Booby(marker)}, path)
    elif kind == "plain-pickle":
        path.write_bytes(pickle.dumps(Booby(marker)))
    else:
        path.write_text("images, labels\n")
    line = error_line(*run(capsys, "evaluate", path, "--device", "cpu"))
    assert line == f"dd-bench: error: {path} is not a dd-bench synthetic set; refusing to unpickle arbitrary objects"
    assert not marker.exists()


def test_a_torch_file_that_is_not_a_set_is_one_line(capsys, tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "model.pt")
    torch.save({**digits_set().to_dict(), "images": [1, 2, 3]}, tmp_path / "odd.pt")
    line = error_line(*run(capsys, "evaluate", tmp_path / "model.pt", "--device", "cpu"))
    assert line.endswith("model.pt is not a dd-bench synthetic set")
    line = error_line(*run(capsys, "evaluate", tmp_path / "odd.pt", "--device", "cpu"))
    assert "odd.pt is a corrupt synthetic set" in line


# ---------------------------------------------------------------------------- 7. a leaderboard of nothing


def test_a_leaderboard_of_a_store_without_runs_is_one_line_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = write_suite(tmp_path)
    line = error_line(*run(capsys, "leaderboard", suite, "--out", tmp_path / "lb"))
    assert "no finished runs of suite 'hardening'" in line and f"sqlite:///{tmp_path.resolve()}/mlflow.db" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml"]  # no store was created, no page written
    uri = f"sqlite:///{tmp_path}/m.db"
    tracking.experiment_id(tracking.client(uri), "hardening", uri)  # the suite's experiment, with no run in it
    line = error_line(*run(capsys, "leaderboard", suite, "--out", tmp_path / "lb", "--tracking-uri", uri))
    assert "no finished runs" in line and not (tmp_path / "lb").exists()


def test_a_partial_leaderboard_draws_its_plots_without_warnings(capsys, tmp_path):
    """One dataset finished, the other not run: its panel has nothing to draw and says nothing."""
    uri = f"sqlite:///{tmp_path}/m.db"
    suite = write_suite(tmp_path, datasets=["toy", "digits"])
    assert (
        run(capsys, "run", suite, "--quiet", "--device", "cpu", "--tracking-uri", uri, "--only", "dataset=toy")[0] == 0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run(capsys, "leaderboard", suite, "--out", tmp_path / "lb", "--tracking-uri", uri)
    assert code == 0, err
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]
    assert "missing (0/1)" in (tmp_path / "lb" / "README.md").read_text()


# ---------------------------------------------------------------------------- 8. a reader that closes early


@pytest.mark.parametrize("argv, codes", [(["plugins", "--json"], {141}), (["--help"], {0, 141})])
def test_a_reader_that_closes_early_gets_no_traceback(argv, codes):
    """141 as for SIGPIPE; argparse swallows its own write error when stdout is unbuffered (tox), hence 0 too."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dd_bench.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    proc.stdout.close()  # like `| head` after its lines: every write now fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in codes and err == "", err


def test_argument_errors_are_one_line_too(capsys):
    line = error_line(*run(capsys, "evaluate"))
    assert (
        line
        == "dd-bench evaluate: error: the following arguments are required: synthetic (see dd-bench evaluate --help)"
    )
