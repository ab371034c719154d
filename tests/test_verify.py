"""dd-bench verify: a page's cells rerun at HEAD from scratch match its results file, and a changed figure does not."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from dd_bench.cli import main
from dd_bench.results.verify import choose
from dd_bench.testing import one_error_line, toy_suite_doc

ROOT = Path(__file__).resolve().parents[1]
SUITE = toy_suite_doc(name="verify", seeds=[0], eval_seeds=2)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A toy suite's page with its results file, written where the suite file lies (as a
    repository's pages are), from a store elsewhere."""
    root = tmp_path_factory.mktemp("verify")
    (root / "suite.yaml").write_text(yaml.safe_dump(SUITE))
    uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(["run", "suite.yaml", "--quiet", "--device", "cpu", "--tracking-uri", uri]) == 0
        assert main(["leaderboard", "suite.yaml", "--tracking-uri", uri, "--out", "lb"]) == 0
    return root


def test_the_cheapest_cells_are_chosen_one_method_first():
    records = [
        {"cell": cell, "hash": cell, "method": cell[0], "distill_seconds": distill, "eval_seconds": evals}
        | {"eval_model": "mlp", "eval_seed": seed}
        for cell, distill, evals in [("a/0", 1.0, 1.0), ("a/1", 0.5, 1.0), ("b/0", 5.0, 1.0), ("c/0", None, 0.2)]
        for seed in (0, 1)  # a cell's evaluation seconds count once, not once per network
    ]  # c/0: a published set, no distillation
    assert choose(records, 2, (), "f") == ["c/0", "a/1"]
    assert choose(records, 4, (), "f") == ["c/0", "a/1", "b/0", "a/0"]
    assert choose(records, None, ("b/0",), "f") == ["b/0"]


def test_a_cpu_network_must_match_bit_for_bit_and_a_gpu_one_within_the_tolerance():
    from dd_bench.results.verify import differences

    old = {"test_acc": 50.0, "val_acc": 40.0, "hard_test_acc": None, "per_class_test_acc": {"a": 50.0, "b": 50.0}}
    assert differences(old, dict(old), 0.0) == []
    assert differences(old, {**old, "test_acc": 50.0 + 1e-12}, 0.0) == [f"test_acc 50.0 -> {50.0 + 1e-12}"]
    assert differences(old, {**old, "per_class_test_acc": {"a": 50.0, "b": 25.0}}, 0.0) == [
        "per_class_test_acc[b] 50.0 -> 25.0"
    ]
    noisy = {**old, "test_acc": 51.5, "per_class_test_acc": {"a": 40.0, "b": 60.0}}
    assert differences(old, noisy, 2.0) == []  # per-class figures are not compared under a tolerance
    assert differences(old, {**old, "val_acc": 37.5}, 2.0) == ["val_acc 40.0 -> 37.5"]
    assert differences(old, {**old, "hard_test_acc": 30.0}, 2.0) == ["hard_test_acc None -> 30.0"]


def test_a_page_verifies_at_head_and_a_changed_accuracy_does_not(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(page)
    assert main(["verify", "lb", "--cells", "1"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    # which cell is cheapest follows the recorded seconds, which differ from run to run: either may come first
    assert re.match(
        r"match    (random/toy/ipc1|full/toy/ipcall)/seed0: 2 network\(s\), bit-identical \(cpu\)$", lines[0]
    ), out
    assert lines[-1].startswith("1 of 1 cells match lb/results.jsonl") and len(lines) == 2
    assert "rerunning" in err  # progress on stderr

    shutil.copytree(page / "lb", tmp_path / "lb")
    path = tmp_path / "lb" / "results.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    target = next(r for r in records if r["cell"] == "full/toy/ipcall/seed0" and r["eval_seed"] == 1)
    target["test_acc"] += 0.5
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["verify", str(tmp_path / "lb"), "--cell", "full/toy/ipcall/seed0"]) == 1
    out, _ = capsys.readouterr()
    assert out.splitlines()[0].startswith("MISMATCH full/toy/ipcall/seed0 mlp network seed 1: test_acc"), out
    assert "(committed -> HEAD; cpu: bit-identical required)" in out and "0 of 1 cells match" in out


def test_verify_without_a_results_file_is_one_line(tmp_path, capsys):
    (tmp_path / "lb").mkdir()
    line = one_error_line(capsys, ["verify", str(tmp_path / "lb")])
    assert f"{tmp_path / 'lb'} has no results.jsonl" in line
    line = one_error_line(capsys, ["verify", str(tmp_path / "nowhere")])
    assert "no such leaderboard folder" in line


def test_verify_of_a_cell_the_file_does_not_hold_is_one_line(page, monkeypatch, capsys):
    monkeypatch.chdir(page)
    line = one_error_line(capsys, ["verify", "lb", "--cell", "dc/toy/ipc1/seed0"])
    assert "lb/results.jsonl has no cell 'dc/toy/ipc1/seed0'" in line and "random/toy/ipc1/seed0" in line


@pytest.mark.skipif(
    not (ROOT / "leaderboards/demo/results.jsonl").exists(), reason="written when the demo is regenerated"
)
def test_the_committed_demo_verifies_at_head(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = main(["verify", "leaderboards/demo", "--cells", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
