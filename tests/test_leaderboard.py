"""Leaderboard numbers from known runs: aggregation, missing cells, DD-Ranking scores, ranks, files."""

from __future__ import annotations

import csv
import math

import pytest

from dd_bench.results import CellRecord, build, csv_rows, lrs, tables, write
from dd_bench.suite import parse

DOC = {
    "name": "known",
    "datasets": ["toy"],
    "ipcs": [1, 10],
    "methods": {"alpha": {}, "beta": {}, "random": {}, "full": {"seeds": [0]}},
    "distill_model": "convnet",
    "eval_models": ["convnet", "mlp"],
    "seeds": [0, 1],
    "eval_seeds": 3,
}


def rec(method, ipc, seed, convnet, mlp=None, hard=None, role="method", secs=1.0):
    r = CellRecord(
        method, "toy", str(ipc), seed, role, {"convnet": convnet}, {}, secs, 100.0, 4096.0, {"device": "cpu (test)"}
    )
    if mlp is not None:
        r.accs["mlp"] = mlp
    if hard is not None:
        r.hard_accs["convnet"] = hard
    return r


@pytest.fixture
def board():
    suite, errors = parse(DOC)
    assert not errors
    records = [
        rec("full", "all", 0, 90.0, 80.0, role="full"),
        rec("random", 1, 0, 20.0, 15.0, role="random"),
        rec("random", 1, 1, 30.0, 25.0, role="random"),
        rec("random", 10, 0, 50.0, 40.0, role="random"),
        rec("random", 10, 1, 60.0, 50.0, role="random"),
        rec("alpha", 1, 0, 40.0, 30.0),
        rec("alpha", 1, 1, 50.0, 34.0),
        rec("alpha", 10, 0, 70.0, 60.0, secs=10.0),
        rec("alpha", 10, 1, 74.0, 62.0, secs=20.0),
        # beta: soft labels (hard_accs), and ipc 10 seed 1 never finished
        rec("beta", 1, 0, 60.0, 20.0, hard=30.0),
        rec("beta", 1, 1, 64.0, 22.0, hard=34.0),
        rec("beta", 10, 0, 80.0, 70.0, hard=60.0),
    ]
    return build(suite, records)


def test_entries_are_mean_and_sample_std_over_distillation_seeds(board):
    e = board.acc[("toy", "alpha", "1", "convnet")]
    assert e.complete and e.n == 2 and e.mean == 45.0 and math.isclose(e.std, math.sqrt(50.0))
    assert e.text() == "45.00 ± 7.07 (n=2)"
    full = board.acc[("toy", "full", "10", "convnet")]
    assert full.mean == 90.0 and full.n == 1 and math.isnan(full.std) and "± –" in full.text()


def test_incomplete_cells_are_missing_never_partial_means(board):
    e = board.acc[("toy", "beta", "10", "convnet")]
    assert not e.complete and e.n == 1 and math.isnan(e.mean) and e.text() == "missing (1/2)"
    assert not board.fairness[("toy", "beta", "10")]["lrs"].complete
    assert not board.cost[("toy", "beta", "10")]["distill_seconds"].complete


def test_dd_ranking_scores_use_percent_correct_normalisation(board):
    # random ipc1 convnet mean = 25, full = 90; alpha seeds 40, 50 (hard labels)
    f = board.fairness[("toy", "alpha", "1")]
    assert f["hlr"].values == [50.0, 40.0] and f["ior"].values == [15.0, 25.0]
    expected = [lrs(50.0, 15.0), lrs(40.0, 25.0)]
    assert f["lrs"].values == pytest.approx(expected)
    a = (0.5 * 15.0 - 0.5 * 50.0) / 100
    assert expected[0] == pytest.approx(100 * (math.exp(a) - math.exp(-1)) / (math.exp(1) - math.exp(-1)))
    # beta has soft labels: HLR uses the argmax-label accuracy, IOR the accuracy it reached
    b = board.fairness[("toy", "beta", "1")]
    assert b["hlr"].values == [60.0, 56.0] and b["ior"].values == [35.0, 39.0]
    # the bounds: 0 at IOR = -100, HLR = 100; 100 at IOR = 100, HLR = -100; finite in percent
    assert lrs(100.0, -100.0) == pytest.approx(0.0) and lrs(-100.0, 100.0) == pytest.approx(100.0)
    assert 0 < lrs(50.0, 15.0) < 100


def test_ranks_and_costs(board):
    # ipc1 convnet: beta 62 > alpha 45 > random 25; ipc1 mlp: alpha 32 > random 20 > beta 21? -> beta 21 > random 20
    # ipc10 columns are incomplete (beta missing) and do not count
    assert board.ranks[("toy", "beta")] == (1.5, 2)
    assert board.ranks[("toy", "alpha")] == (1.5, 2)
    assert board.ranks[("toy", "random")] == (3.0, 2)
    assert board.cost[("toy", "alpha", "10")]["distill_seconds"].mean == 15.0
    assert board.cost[("toy", "alpha", "10")]["storage_kib"].mean == 4.0


PROV = {
    "suite": "known v1",
    "command": "dd-bench leaderboard known",
    "device": "cpu (test)",
    "memory": "cpu_peak_rss",
    "versions (runs)": "dd-bench 0; torch 0",
    "date": "2026-01-01 00:00 UTC",
}


def test_files_say_how_they_were_made(board, tmp_path):
    files = write(board, tmp_path, PROV)
    assert {p.name for p in files} == {
        "README.md",
        "leaderboard.csv",
        "index.html",
        "accuracy_vs_ipc.png",
        "cross_architecture.png",
    }
    readme = (tmp_path / "README.md").read_text()
    for needle in (
        "dd-bench leaderboard known",
        "cpu (test)",
        "45.00 ± 7.07 (n=2)",
        "missing (1/2)",
        "HLR",
        "LRS",
        "cross-architecture",
        "upper reference",
    ):
        assert needle in readme, needle
    html = (tmp_path / "index.html").read_text()
    assert "data:image/png;base64," in html and "dd-bench leaderboard known" in html and "<link" not in html
    lines = [line for line in (tmp_path / "leaderboard.csv").read_text().splitlines() if not line.startswith("#")]
    rows = list(csv.DictReader(lines))
    alpha = next(r for r in rows if r["method"] == "alpha" and r["ipc"] == "1" and r["eval_model"] == "convnet")
    assert float(alpha["mean"]) == 45.0 and alpha["n"] == "2" and float(alpha["hlr"]) == 45.0
    assert (tmp_path / "leaderboard.csv").read_text().startswith("# suite: known v1")
    assert (tmp_path / "accuracy_vs_ipc.png").read_bytes()[:4] == b"\x89PNG"


def test_validation_accuracies_get_their_own_table_and_csv_columns(tmp_path):
    suite, errors = parse(DOC)
    assert not errors
    records = [rec("alpha", 1, s, 40.0 + s) for s in (0, 1)]
    for s, r in enumerate(records):
        r.val_accs["convnet"] = 50.0 + 2 * s
    board = build(suite, records)
    v = board.val[("toy", "alpha", "1", "convnet")]
    assert v.complete and v.mean == 51.0 and board.acc[("toy", "alpha", "1", "convnet")].mean == 40.5
    assert not board.val[("toy", "alpha", "1", "mlp")].values
    write(board, tmp_path, PROV)
    readme = (tmp_path / "README.md").read_text()
    assert "toy: validation accuracy (%)" in readme and "51.00 ± 1.41 (n=2)" in readme
    lines = [line for line in (tmp_path / "leaderboard.csv").read_text().splitlines() if not line.startswith("#")]
    row = next(
        r for r in csv.DictReader(lines) if r["method"] == "alpha" and r["ipc"] == "1" and r["eval_model"] == "convnet"
    )
    assert float(row["val_mean"]) == 51.0 and float(row["mean"]) == 40.5


def test_runs_without_validation_figures_get_no_validation_table(board, tmp_path):
    write(board, tmp_path, PROV)
    assert "validation accuracy" not in (tmp_path / "README.md").read_text()


def test_a_suite_without_the_upper_reference_gets_no_fairness_table(tmp_path):
    suite, errors = parse(
        {**DOC, "methods": {"alpha": {}, "random": {}}, "references": {"random": "random", "full": None}}
    )
    assert not errors, errors
    write(build(suite, [rec("alpha", 1, 0, 40.0), rec("random", 1, 0, 30.0, role="random")]), tmp_path, PROV)
    readme = (tmp_path / "README.md").read_text()
    assert "test accuracy (%)" in readme and "fairness scores" not in readme


def test_cache_building_time_gets_a_cost_column_only_when_reported(tmp_path):
    suite, errors = parse(DOC)
    assert not errors
    records = [rec("alpha", 1, s, 40.0, secs=100.0 if s == 0 else 10.0) for s in (0, 1)]
    records[0].cache_build_seconds, records[1].cache_build_seconds = 90.0, 0.0  # seed 0 trained the experts
    records.append(rec("random", 1, 0, 30.0, role="random"))
    board = build(suite, records)
    assert board.cost[("toy", "alpha", "1")]["cache_build_seconds"].mean == 45.0
    write(board, tmp_path, PROV)
    readme = (tmp_path / "README.md").read_text()
    cost_table = readme[readme.index("## toy: cost") : readme.index("## Plots")]
    assert "of which caches s" in cost_table
    alpha_row = next(line for line in cost_table.splitlines() if line.startswith("| alpha"))
    assert alpha_row.split("|")[2:4] == [" 55.0 ", " 45.0 "]
    random_row = next(line for line in cost_table.splitlines() if line.startswith("| random"))
    assert random_row.split("|")[3] == " – "


def test_no_caches_column_for_runs_that_never_reported_it(board, tmp_path):
    write(board, tmp_path, PROV)
    readme = (tmp_path / "README.md").read_text()
    cost_table = readme[readme.index("## toy: cost") : readme.index("## Plots")]
    assert "of which caches s" not in cost_table and "· wall s" not in cost_table


def test_a_sharded_cell_shows_its_wall_time_beside_its_summed_shards(tmp_path):
    suite, errors = parse(DOC)
    assert not errors
    records = [rec("alpha", 1, s, 40.0, secs=100.0) for s in (0, 1)]
    for r in records:
        r.distill_wall_seconds = 60.0  # two shards in parallel: 100 device-seconds in 60 s
    records += [rec("random", 1, s, 30.0, role="random", secs=4.0) for s in (0, 1)]
    write(build(suite, records), tmp_path, PROV)
    readme = (tmp_path / "README.md").read_text()
    cost_table = readme[readme.index("## toy: cost") : readme.index("## Plots")]
    assert "· wall s" in cost_table
    row = lambda m: next(line for line in cost_table.splitlines() if line.startswith(f"| {m}")).split("|")  # noqa: E731
    assert row("alpha")[2:4] == [" 100.0 ", " 60.0 "]
    assert row("random")[2:4] == [" 4.0 ", " 4.0 "]  # ran whole: its wall time is its distill time


def test_provenance_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    from dd_bench.results.provenance import from_cwd, portable_uri

    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert from_cwd(str(tmp_path / "repo" / "suites" / "demo.yaml")) == "suites/demo.yaml"
    assert portable_uri(f"sqlite:///{tmp_path}/repo/mlflow.db") == "sqlite:///mlflow.db"
    assert portable_uri(f"sqlite:///{tmp_path}/runs/mlflow.db") == "sqlite:///../runs/mlflow.db"  # beside the checkout
    assert from_cwd("/elsewhere/demo.yaml") == "/elsewhere/demo.yaml"  # elsewhere: kept whole
    assert portable_uri("http://host:5000") == "http://host:5000"


LABEL_DOC = {
    "name": "labels",
    "datasets": ["toy"],
    "ipcs": [1],
    "methods": {
        "sre2l": {"eval": {"labels": "teacher", "teacher_model": "mlp"}},
        "mtt": {},
        "random": {"eval": {"labels": "teacher", "teacher_model": "mlp"}},
        "full": {"seeds": [0]},
    },
    "distill_model": "convnet",
    "eval_models": ["convnet"],
    "seeds": [0, 1],
    "eval_seeds": 1,
}


def lrec(method, seed, own, hard=None, labels="set", teacher="t1", role="method", storage=None, hard_storage=None):
    r = CellRecord(
        method,
        "toy",
        "all" if role == "full" else "1",
        seed,
        role,
        {"convnet": own},
        {},
        1.0,
        1.0,
        1024.0,
        {"teacher": teacher} if labels == "teacher" else {},
        labels=labels,
        storage_bytes=storage,
        hard_storage_bytes=hard_storage,
    )
    if hard is not None:
        r.hard_accs["convnet"] = hard
    return r


def label_board(sre2l_teacher="t1"):
    suite, errors = parse(LABEL_DOC)
    assert not errors, errors
    return build(
        suite,
        [
            lrec("full", 0, 90.0, role="full"),
            lrec("random", 0, 40.0, hard=20.0, labels="teacher", role="random"),
            lrec("random", 1, 44.0, hard=24.0, labels="teacher", role="random"),
            lrec(
                "sre2l",
                0,
                60.0,
                hard=15.0,
                labels="teacher",
                teacher=sre2l_teacher,
                storage=9000.0,
                hard_storage=1000.0,
            ),
            lrec("sre2l", 1, 64.0, hard=17.0, labels="teacher", storage=9000.0, hard_storage=1000.0),
            lrec("mtt", 0, 50.0),
            lrec("mtt", 1, 52.0),
        ],
    )


def test_each_method_shows_hard_and_its_own_protocol_side_by_side():
    board = label_board()
    assert board.protocols == {"sre2l": "teacher", "mtt": "set", "random": "teacher", "full": "set"}
    le = board.label_effect[("toy", "sre2l", "1")]
    assert le["hard"].values == [15.0, 17.0] and le["own"].values == [60.0, 64.0] and le["gain"].values == [45.0, 47.0]
    assert le["own_kib"].mean == pytest.approx(9000 / 1024) and le["hard_kib"].mean == pytest.approx(1000 / 1024)
    assert board.label_effect[("toy", "mtt", "1")]["hard"].values == [50.0, 52.0]  # hard-label set: hard = set
    # the storage column counts what the protocol needs (the teacher), not only the images
    assert board.cost[("toy", "sre2l", "1")]["storage_kib"].mean == pytest.approx(9000 / 1024)
    title, note, header, rows = next(t for t in tables(board) if "label protocols" in t[0])
    row = next(r for r in rows if r[0] == "sre2l")
    assert (
        row[1] == "teacher" and row[2].startswith("16.00") and row[3].startswith("62.00") and row[4].startswith("46.00")
    )


def test_ior_compares_with_random_under_the_same_protocol_and_teacher():
    board = label_board()
    f = board.fairness[("toy", "sre2l", "1")]
    # IOR: sre2l under the teacher vs random under the teacher (mean 42); HLR: hard vs full's hard (90)
    assert f["ior"].values == [18.0, 22.0] and f["hlr"].values == [75.0, 73.0]
    m = board.fairness[("toy", "mtt", "1")]
    assert m["ior"].values == [28.0, 30.0]  # mtt (hard labels) vs random's hard accuracy (mean 22)
    other = label_board(sre2l_teacher="t2").fairness[("toy", "sre2l", "1")]
    assert other["ior"].values == [22.0] and not other["ior"].complete  # seed 0's teacher differs: left out


def test_label_protocol_columns_in_csv(tmp_path):
    board = label_board()
    header, rows = csv_rows(board)
    i, h = header.index("labels"), header.index("hard_mean")
    got = {r[1]: (r[i], r[h]) for r in rows}
    assert got["sre2l"] == ("teacher", 16.0) and got["mtt"] == ("set", 51.0)


class _PageChecker(__import__("html.parser").parser.HTMLParser):
    """Collects what a page references and whether its tags nest."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.refs, self.best, self.scripts = [], [], [], 0, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.refs += [v for k, v in attrs.items() if k in ("src", "href") and v]
        self.best += tag == "td" and attrs.get("class") == "best"
        self.scripts += tag == "script"
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_the_page_is_well_formed_self_contained_sortable_and_shows_each_rows_images(board, tmp_path):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buf, format="PNG")
    grids = {("toy", "alpha", "1"): buf.getvalue(), ("toy", "full", "all"): buf.getvalue()}
    files = write(board, tmp_path, PROV, grids)
    assert tmp_path / "grids" / "toy-alpha-ipc1.png" in files
    page = (tmp_path / "index.html").read_text()
    checker = _PageChecker()
    checker.feed(page)
    assert checker.errors == [] and checker.stack == [] and checker.scripts == 1
    assert checker.refs and all(
        r.startswith("data:image/png;base64,") for r in checker.refs
    )  # nothing outside the file
    assert checker.best > 0 and "table class='sortable'" in page and "addEventListener('click'" in page
    assert "<li><b>Cells.</b>" in page and "<pre" not in page  # the notes are HTML
    readme = (tmp_path / "README.md").read_text()
    assert "## Distilled images" in readme and "](grids/toy-alpha-ipc1.png)" in readme


def test_best_cells_take_the_highest_or_the_lowest_and_skip_references():
    from dd_bench.results import best_cells

    header = ["method", "IPC 1 · convnet", "distill s"]
    rows = [
        ["a", "40.00 ± 1.00 (n=2)", "10.0"],
        ["b", "45.00 ± 1.00 (n=2)", "30.0"],
        ["random (lower reference)", "99.0", "1.0"],
    ]
    assert best_cells(header, rows) == {(1, 1), (0, 2)}


def test_the_papers_figures_stand_beside_the_measured_entries_of_their_setting(board):
    from dd_bench.specs import ReportedResult as R

    board.reported = {
        "alpha": (
            R("toy", 1, "convnet", 48.0, 0.5, "Alpha paper, Table 1"),  # run here: shown, difference -3
            R("toy", 10, "convnet", 70.0, None, "Alpha paper, Table 1", note="ZCA"),
            R("toy", 1, "resnet18", 60.0, 1.0, "Alpha paper, Table 3"),  # an architecture the suite does not run
            R("toy", 1, "convnet", 55.0, 1.0, "Alpha paper, Table 5", labels="teacher"),  # another protocol
            R("cifar10", 1, "convnet", 46.0, 1.0, "Alpha paper, Table 1"),  # another dataset
        )
    }
    found = [t for t in tables(board) if "reported in the papers" in t[0]]
    assert len(found) == 1
    _, note, header, rows = found[0]
    assert header[:4] == ["setting", "reported", "measured", "measured − reported"]
    assert rows == [
        ["alpha · IPC 1 · convnet", "48.0 ± 0.5", "45.00 ± 7.07 (n=2)", "-3.00", "Alpha paper, Table 1"],
        ["alpha · IPC 10 · convnet", "70.0", "72.00 ± 2.83 (n=2)", "2.00", "Alpha paper, Table 1 (ZCA)"],
    ]
    header, rows = csv_rows(board)
    got = {(r[1], r[3], r[4]): r[header.index("reported_mean")] for r in rows}
    assert (
        got[("alpha", "1", "convnet")] == 48.0
        and got[("alpha", "1", "mlp")] == ""
        and got[("beta", "1", "convnet")] == ""
    )
    from dd_bench.results import best_cells

    assert best_cells(found[0][2], found[0][3]) == set()  # a table of settings ranks nothing


def test_a_published_set_is_compared_with_the_figures_of_the_method_it_names():
    from dd_bench.results import reported_for
    from dd_bench.specs import ReportedResult as R
    from dd_bench.testing import make_registry

    registry = make_registry()
    spec = registry.distiller("random")
    object.__setattr__(spec, "reported", (R("toy", 1, "mlp", 30.0, 1.0, "somewhere, Table 1"),))
    try:
        doc = {
            **DOC,
            "methods": {
                "random": {},
                "theirs": {"import": {"format": "tensors", "path": {1: "x.pt"}, "method": "random"}},
                "alpha": {},
            },
        }
        suite, errors = parse(doc)
        assert not errors
        got = reported_for(suite, registry)
        assert set(got) == {"random", "theirs"} and got["theirs"][0].accuracy == 30.0
    finally:
        object.__setattr__(spec, "reported", ())


def test_a_column_where_smaller_is_not_better_marks_no_best(board):
    from dd_bench.results import best_cells

    title, note, header, rows = next(t for t in tables(board) if "cross-architecture matrix" in t[0])
    spread = header.index("spread (max - min)")
    marked = best_cells(header, rows)
    assert marked and not any(j == spread for _, j in marked)  # the architectures' columns still rank


def test_each_plotted_row_has_its_own_look_and_the_legend_covers_no_line():
    from dd_bench.results.plots import accuracy_figure, row_styles

    names = [f"m{i}" for i in range(14)]
    suite, errors = parse({**DOC, "methods": {**{n: {} for n in names}, "random": {}, "full": {"seeds": [0]}}})
    assert not errors, errors
    records = [
        rec(m, ipc, s, 10.0 + i, 5.0) for i, m in enumerate(names + ["random"]) for ipc in (1, 10) for s in (0, 1)
    ]
    board = build(suite, records + [rec("full", "all", 0, 90.0, 80.0, role="full")])
    styles = row_styles(board)
    looks = [tuple(sorted(styles[m].items())) for m in names + ["random"]]
    assert len(set(looks)) == len(looks) == 15
    assert len({styles[m]["color"] for m in names[:9]}) == 9 and styles["random"]["color"] not in {
        styles[m]["color"] for m in names
    }
    fig = accuracy_figure(board, "caption")
    fig.canvas.draw()
    (ax,) = fig.axes
    legend, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes_box.x1 and legend.x1 <= fig.bbox.x1  # beside the axes, inside the figure
    import matplotlib.pyplot as plt

    plt.close(fig)
