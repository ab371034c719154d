"""results.jsonl: written beside every page, the page rebuilt from it alone, files merged, bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dd_bench.cli import main
from dd_bench.results import datafile
from dd_bench.testing import one_error_line, toy_suite_doc

SUITE = toy_suite_doc(name="results-file", seeds=[0, 1], eval_seeds=2)
VOLATILE = ("command", "tracking", "date")
"""Provenance lines that say how and when a page was written, not what it shows."""


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A toy suite run into a fresh store (store/) and its leaderboard written from MLflow, in the
    folder the tests work in (the page names its suite file relative to it)."""
    root = tmp_path_factory.mktemp("results-file")
    suite = root / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(["run", str(suite), "--quiet", "--device", "cpu", "--tracking-uri", uri]) == 0
        assert main(["leaderboard", str(suite), "--tracking-uri", uri, "--out", str(root / "lb")]) == 0
    return root, suite, root / "lb"


def stable(text: str) -> str:
    """A page's text without the provenance lines that differ between two writes of one page."""
    keep = []
    for line in text.splitlines():
        if any(line.startswith(p) for k in VOLATILE for p in (f"- **{k}**:", f"# {k}:")):
            continue
        keep.append(line)
    return "\n".join(keep)


def test_the_file_holds_one_sorted_record_per_trained_network(made):
    from dd_bench.cells import plan
    from dd_bench.suite import load_suite, validate
    from dd_bench.testing import make_registry

    root, suite_path, lb = made
    text = (lb / "results.jsonl").read_text()
    records = datafile.read(lb / "results.jsonl")
    registry = make_registry()
    cells = plan(validate(load_suite(suite_path), registry, check_data=False), registry, "cpu")
    assert len(records) == len(cells) * 2  # one architecture, two networks per cell
    assert {r["hash"] for r in records} == {c.config_hash for c in cells}
    assert datafile.dumps(datafile.public(records)) == text  # sorted and written as it reads back
    first = json.loads(text.splitlines()[0])
    assert list(first) == [k for k in datafile.FIELDS if k in first] and first["format"] == datafile.FORMAT
    for r in records:
        assert r["eval_model"] == "mlp" and r["eval_seed"] in (0, 1) and r["device_type"] == "cpu"
        assert 0 <= r["test_acc"] <= 100 and 0 <= r["val_acc"] <= 100 and r["git_sha"]
        assert set(r["per_class_test_acc"]) == {"horizontal", "vertical", "checker", "border"}
        assert r["labels"] == "set" and r["recipe"] == "classic" and r["config"]["config_hash"] == r["hash"]
        assert r["versions"]["torch"] and "deterministic=" in r["numerics"] and r["imported_sha256"] is None


def test_the_page_rebuilds_from_its_results_file_alone(made, tmp_path, monkeypatch):
    root, suite, lb = made
    monkeypatch.chdir(root)  # no store here (it is in store/): the page can only come from the file
    again = tmp_path / "again"
    assert main(["leaderboard", str(suite), "--from", str(lb / "results.jsonl"), "--out", str(again)]) == 0
    for name in ("README.md", "leaderboard.csv"):
        assert stable((again / name).read_text()) == stable((lb / name).read_text()), name
    assert (again / "results.jsonl").read_bytes() == (lb / "results.jsonl").read_bytes()
    assert "results files" in (again / "README.md").read_text()
    assert sorted(p.name for p in (again / "grids").iterdir()) == sorted(p.name for p in (lb / "grids").iterdir())
    assert not (root / "mlflow.db").exists()


def split(lb: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The file in two: the random rows' records, and the others'."""
    lines = (lb / "results.jsonl").read_text().splitlines(keepends=True)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(line for line in lines if '"method": "random"' in line))
    b.write_text("".join(line for line in lines if '"method": "random"' not in line))
    return a, b


def test_results_from_several_files_merge_into_one_page(made, tmp_path, monkeypatch):
    root, suite, lb = made
    monkeypatch.chdir(root)
    a, b = split(lb, tmp_path)
    out = tmp_path / "merged"
    argv = ["leaderboard", str(suite), "--from", str(a), "--from", str(b), "--from", str(lb / "results.jsonl")]
    assert main([*argv, "--out", str(out)]) == 0  # the whole file again: identical duplicates are one
    assert (out / "results.jsonl").read_bytes() == (lb / "results.jsonl").read_bytes()
    assert stable((out / "README.md").read_text()) == stable((lb / "README.md").read_text())


def test_two_different_records_of_one_network_are_refused_naming_both_files(made, tmp_path, capsys):
    root, suite, lb = made
    a, _ = split(lb, tmp_path)
    lines = a.read_text().splitlines(keepends=True)
    record = json.loads(lines[0])
    record["test_acc"] += 1.0
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(record) + "\n")
    line = one_error_line(
        capsys, ["leaderboard", str(suite), "--from", str(a), "--from", str(other), "--out", str(tmp_path / "out")]
    )
    assert f"{a} line 1 and {other} line 1" in line and record["cell"] in line and "test_acc" in line
    assert not (tmp_path / "out").exists()
    both = tmp_path / "both.jsonl"  # the same within one file
    both.write_text(lines[0] + json.dumps(record) + "\n")
    line = one_error_line(capsys, ["leaderboard", str(suite), "--from", str(both), "--out", str(tmp_path / "out")])
    assert f"{both} line 1 and {both} line 2" in line and not (tmp_path / "out").exists()


def bad_file(lb: Path, tmp_path: Path, how: str) -> Path:
    text = (lb / "results.jsonl").read_text()
    lines = text.splitlines(keepends=True)
    if how == "truncated":
        text = text[: len(text) - len(lines[-1]) // 2]
    elif how == "not JSON":
        text = lines[0] + "this is not json\n" + "".join(lines[1:])
    elif how in ("another suite", "another version"):
        record = json.loads(lines[1])
        record.update({"suite": "elsewhere"} if how == "another suite" else {"suite_version": 7})
        text = lines[0] + json.dumps(record) + "\n" + "".join(lines[2:])
    elif how == "not a record":
        text = '{"hello": 1}\n'
    path = tmp_path / "results.jsonl"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "how, says",
    [
        ("truncated", "is truncated: its last line"),
        ("not JSON", "line 2 is not JSON"),
        ("another suite", "line 2 holds results of suite 'elsewhere' v1, not 'results-file' v1"),
        ("another version", "line 2 holds results of suite 'results-file' v7, not 'results-file' v1"),
        ("not a record", "line 1 is not a dd-bench results record"),
    ],
)
def test_a_bad_results_file_is_one_line_and_writes_nothing(made, tmp_path, capsys, how, says):
    root, suite, lb = made
    path = bad_file(lb, tmp_path, how)
    line = one_error_line(capsys, ["leaderboard", str(suite), "--from", str(path), "--out", str(tmp_path / "out")])
    assert says in line and str(path) in line, line
    assert not (tmp_path / "out").exists()


def test_a_results_file_and_a_store_together_are_refused(made, tmp_path, capsys):
    root, suite, lb = made
    argv = ["leaderboard", str(suite), "--from", str(lb / "results.jsonl"), "--tracking-uri", "sqlite:///x.db"]
    line = one_error_line(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert "not both" in line and not (tmp_path / "out").exists()


def test_records_of_cells_the_suite_no_longer_plans_are_left_out_and_said(made, tmp_path, monkeypatch, capsys):
    root, suite, lb = made
    monkeypatch.chdir(root)
    text = (lb / "results.jsonl").read_text()
    stale = json.loads(text.splitlines()[0]) | {"hash": "0" * 16}  # as if its config had changed since
    path = tmp_path / "results.jsonl"
    path.write_text(text + json.dumps(stale) + "\n")
    assert main(["leaderboard", str(suite), "--from", str(path), "--out", str(tmp_path / "out")]) == 0
    n = len(text.splitlines()) + 1
    assert (
        f"dd-bench: warning: 1 of {n} records are of cells suite results-file does not plan" in capsys.readouterr().err
    )
    assert (tmp_path / "out" / "results.jsonl").read_text() == text
