"""dd_bench.results: the old import paths still work (and warn), pages escape what they show,
and files are written atomically under names two writers do not share."""

from __future__ import annotations

import importlib

import pytest
from test_leaderboard import DOC, PROV, rec


def test_the_old_import_paths_still_work_and_warn():
    from dd_bench import results

    old = importlib.import_module("dd_bench.leaderboard")
    with pytest.warns(DeprecationWarning, match="dd_bench.leaderboard is deprecated: import from dd_bench.results"):
        assert old.make is results.make
    with pytest.warns(DeprecationWarning):
        from dd_bench.leaderboard import CellRecord, device_type_of_runs
    assert CellRecord is results.CellRecord and device_type_of_runs is results.device_type_of_runs
    with pytest.warns(DeprecationWarning):
        assert "addEventListener('click'" in old.SORT_SCRIPT  # a constant that is now a template file
    report = importlib.import_module("dd_bench.report")
    with pytest.warns(DeprecationWarning, match="dd_bench.report is deprecated"):
        assert report.make is results.report.make and report.row_name("MTT", set()) == "mtt"
    assert not hasattr(old, "_atomic_write")  # private names did not move


def test_pages_escape_what_they_show_and_leave_no_temporary_files(tmp_path):
    from dd_bench.results import build, write
    from dd_bench.suite import parse

    suite, errors = parse({**DOC, "description": "<script>alert(1)</script> & more"})
    assert not errors
    board = build(suite, [rec("alpha", 1, 0, 40.0), rec("alpha", 1, 1, 42.0)])
    write(board, tmp_path, {**PROV, "command": "dd-bench leaderboard '<known>'"})
    page = (tmp_path / "index.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert page.count("<script>") == 1  # the sorting script only
    assert "<code>dd-bench leaderboard &#39;&lt;known&gt;&#39;</code>" in page
    assert "<script>alert(1)</script> & more" in (tmp_path / "README.md").read_text()  # Markdown as it was
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_atomic_writes_use_a_temporary_name_of_their_own(tmp_path, monkeypatch):
    import os

    from dd_bench.synthetic import atomic_write_bytes

    seen = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append(src), replace(src, dst)))
    for data in (b"one", b"two"):
        atomic_write_bytes(tmp_path / "plot.png", data)
    assert (tmp_path / "plot.png").read_bytes() == b"two"
    assert len(set(seen)) == 2 and all(os.path.dirname(s) == str(tmp_path) for s in seen)
