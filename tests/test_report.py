"""``dd-bench report``: sets beside the random subset and the whole data, per architecture and per class."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from test_leaderboard import _PageChecker
from torch import nn

from dd_bench import api, tracking
from dd_bench.cli import main
from dd_bench.results.report import row_name
from dd_bench.testing import make_registry, one_error_line
from dd_bench.training import class_accuracy


def test_class_accuracy_counts_each_class_and_marks_classes_without_images():
    class Always(nn.Module):  # predicts class 1 whatever it sees
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.tensor([0.0, 1.0, 0.0, 0.0]).expand(len(x), 4) + self.w

    y = torch.tensor([0, 1, 1, 1, 2, 2])
    overall, per_class = class_accuracy(Always(), torch.zeros(6, 1, 2, 2), y, 4, batch_size=4)
    assert overall == pytest.approx(50.0) and per_class[:3] == (0.0, 100.0, 0.0) and math.isnan(per_class[3])


def test_row_names_are_unique_and_never_a_references():
    assert row_name("MTT", set()) == "mtt"
    assert row_name("random", set()) == "random-2" and row_name("mtt", {"mtt"}) == "mtt-2"
    assert row_name("My Set!", set()) == "my-set"


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """One report over two toy sets (random subsets of seeds 0 and 1), run through the command line."""
    tmp = tmp_path_factory.mktemp("report")
    registry = make_registry()
    data = api.load_data(registry, "toy")
    for seed in (0, 1):
        api.distill(registry, "random", data, 1, seed=seed).save(tmp / f"seed{seed}.pt")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    argv = [
        "report",
        str(tmp / "seed0.pt"),
        str(tmp / "seed1.pt"),
        "--models",
        "mlp,convnet",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--no-dsa",
        "--full-epochs",
        "1",
        "--out",
        str(tmp / "out"),
        "--tracking-uri",
        uri,
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(argv) == 0
    return tmp, uri, argv


def test_report_rows_are_the_sets_and_the_references_under_one_protocol(reported):
    tmp, _, _ = reported
    doc = json.loads((tmp / "out" / "report.json").read_text())
    rows = {r["label"]: r for r in doc["rows"]}
    assert [r["role"] for r in doc["rows"]] == ["set", "set", "random", "full"]
    assert {"random (seed0.pt)", "random (seed1.pt)"} <= set(rows)
    reference = next(r for r in doc["rows"] if r["role"] == "random")
    # the set that is the reference's own subset (seed 0) scores exactly what the reference row scores
    assert rows["random (seed0.pt)"]["test_acc"] == reference["test_acc"]
    assert rows["random (seed1.pt)"]["test_acc"] != reference["test_acc"]
    assert all(len(v) == 2 for r in doc["rows"] for v in r["test_acc"].values())  # n = evaluation seeds
    assert doc["full_epochs"] == 1 and doc["eval"]["epochs"] == 2 and doc["eval"]["dsa"] is False
    assert rows["random (seed0.pt)"]["source"]["sha256"] and rows["random (seed0.pt)"]["source"]["format"] == "dd-bench"


def test_per_class_accuracies_add_up_to_the_overall_accuracy(reported):
    tmp, _, _ = reported
    data = api.load_data(make_registry(), "toy")
    counts = torch.bincount(data.test_y, minlength=data.num_classes).double()
    doc = json.loads((tmp / "out" / "report.json").read_text())
    for r in doc["rows"]:
        for model, per_seed in r["test_acc_per_class"].items():
            for overall, per_class in zip(r["test_acc"][model], per_seed):
                assert float((torch.tensor(per_class).double() * counts).sum() / counts.sum()) == pytest.approx(overall)
    with open(tmp / "out" / "per_class.csv") as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == 4 * 2 * data.num_classes and {line["eval_model"] for line in lines} == {"mlp", "convnet"}


def test_report_files_are_a_page_that_needs_nothing_beside_it(reported):
    tmp, _, _ = reported
    out = tmp / "out"
    page = (out / "report.html").read_text()
    checker = _PageChecker()
    checker.feed(page)
    assert checker.errors == [] and checker.stack == [] and checker.scripts == 1
    assert checker.refs and all(r.startswith("data:image/png;base64,") for r in checker.refs)
    md = (out / "report.md").read_text()
    assert "label protocol" in md and "evaluation recipe" in md and "per-class accuracy on mlp" in md
    assert "- **device**: cpu" in md and "- **git SHA (runs)**:" in md and "- **numerics**: deterministic=" in md
    assert "](report.png)" in md and (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    grids = sorted(p.name for p in (out / "grids").iterdir())
    assert len(grids) == 3  # the two sets and the random subset; the whole training set has none


def test_the_report_is_tracked_and_a_second_report_reruns_nothing(reported, capsys):
    tmp, uri, argv = reported
    c = tracking.client(uri)
    exp = tracking.experiment_id(c, "report", uri, create=False)
    runs = tracking.search(c, exp)
    cells = [r for r in runs if r.data.tags.get("ddb.kind") == "cell"]
    reports = [r for r in runs if r.data.tags.get("ddb.kind") == "report"]
    assert len(cells) == 4 and len(reports) == 1
    assert "report/report.md" in tracking.list_artifacts(c, reports[0].info.run_id, "report")
    capsys.readouterr()
    assert main([a for a in argv if a != "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "4 skipped" in err
    runs = tracking.search(c, exp)
    assert sum(r.data.tags.get("ddb.kind") == "cell" for r in runs) == 4


def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a set")
    out = tmp_path / "out"
    line = one_error_line(
        capsys,
        ["report", str(tmp_path / "junk.pt"), "--out", str(out), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"],
    )
    assert "junk.pt" in line and not out.exists() and not (tmp_path / "m.db").exists()
    registry = make_registry()
    api.distill(registry, "random", api.load_data(registry, "toy"), 1).save(tmp_path / "s.pt")
    line = one_error_line(
        capsys,
        [
            "report",
            str(tmp_path / "s.pt"),
            "--models",
            "nosuchnet",
            "--out",
            str(out),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
        ],
    )
    assert "nosuchnet" in line and not out.exists()
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "s.pt"), "--references", "median", "--out", str(out)])
    assert exc.value.code == 2 and "random, full" in capsys.readouterr().err


def test_a_sets_method_brings_its_papers_figures_into_the_report(tmp_path):
    from dd_bench.results import report
    from dd_bench.specs import ReportedResult as R

    registry = make_registry()
    api.distill(registry, "random", api.load_data(registry, "toy"), 1).save(tmp_path / "s.pt")
    spec = registry.distiller("random")
    object.__setattr__(
        spec,
        "reported",
        (
            R("toy", 1, "mlp", 99.0, 0.5, "Random et al., Table 1"),
            R("toy", 1, "convnet", 50.0, 0.5, "Random et al., Table 2"),
        ),
    )
    try:
        got, _ = report.make(
            [tmp_path / "s.pt"],
            ["mlp"],
            [0],
            {"epochs": 1, "dsa": False},
            tmp_path / "out",
            references=(),
            tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
            device="cpu",
            quiet=True,
            registry=registry,
        )
    finally:
        object.__setattr__(spec, "reported", ())
    md = (tmp_path / "out" / "report.md").read_text()
    measured = got.rows[0].mean("mlp")
    assert "| random (s.pt) · mlp | 99.0 ± 0.5 |" in md and f"| {measured - 99.0:.2f} | Random et al., Table 1 |" in md
    assert "Table 2" not in md  # convnet was not evaluated


def test_a_suites_finished_reference_cells_serve_a_report_in_its_experiment(tmp_path, capsys):
    from dd_bench.runner import run_suite
    from dd_bench.suite import parse
    from dd_bench.testing import toy_suite_doc

    registry = make_registry()
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    suite, errors = parse(toy_suite_doc())  # random and full on toy, mlp, one network, 1 epoch, no DSA
    assert not errors
    assert run_suite(suite, registry=registry, tracking_uri=uri, device="cpu", quiet=True).count("done") == 2
    api.distill(registry, "random", api.load_data(registry, "toy"), 1, seed=3).save(tmp_path / "s.pt")
    capsys.readouterr()
    assert (
        main(
            [
                "report",
                str(tmp_path / "s.pt"),
                "--models",
                "mlp",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--no-dsa",
                "--experiment",
                "toy",
                "--tracking-uri",
                uri,
                "--out",
                str(tmp_path / "out"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "1 done, 2 skipped" in capsys.readouterr().err  # only the set was evaluated
