"""A suite's leaderboard: read its runs back from MLflow (or its results files) and write the folder that shows them.

``make`` is what ``dd-bench leaderboard`` and ``dd-bench demo`` call: it reads the runs once (or
the ``results.jsonl`` files given, merged: ``datafile``), builds the board (``board.build``), and
``write`` puts README.md, leaderboard.csv, results.jsonl, index.html, the plots and each row's
image grid in the output folder. Every file is written atomically
under a unique temporary name (``synthetic.atomic_write_bytes``), so a reader or a second
writer never sees half a page. How the figures are aggregated and scored is in ``board``; what
the files say, in ``tables``, ``notes``, ``render`` and ``plots``.
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import tracking
from ..cells import plan
from ..errors import ConfigError, DataError
from ..suite import Suite, validate
from ..synthetic import atomic_write_bytes, atomic_write_text
from . import datafile
from .board import Board, build
from .plots import plot_accuracy_vs_ipc, plot_cross_arch
from .provenance import from_cwd, provenance
from .records import choose_device_type, device_type_of_runs, records_from_mlflow
from .render import grid_name, render_html, render_markdown
from .tables import csv_rows, reported_for


def csv_text(board: Board, prov: Mapping[str, str]) -> str:
    """leaderboard.csv: the provenance as ``# key: value`` lines, then the header and a row per entry."""
    buf = io.StringIO()
    for k, v in prov.items():
        buf.write(f"# {k}: {v}\n")
    header, rows = csv_rows(board)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write(
    board: Board,
    out: Path,
    prov: Mapping[str, str],
    grids: Mapping[tuple[str, str, str], bytes] | None = None,
    results: Sequence[Mapping[str, Any]] | None = None,
) -> list[Path]:
    """README.md, leaderboard.csv, index.html, the plots, each row's image grids (``grids``:
    (dataset, method, ipc) -> PNG) and, given its records, results.jsonl, each written atomically."""
    grids = dict(grids or {})
    out.mkdir(parents=True, exist_ok=True)
    caption = f"dd-bench leaderboard {board.suite.name} · {prov['date']} · {prov['device']} · {prov['command']}"
    images = {
        "accuracy_vs_ipc.png": plot_accuracy_vs_ipc(board, caption),
        "cross_architecture.png": plot_cross_arch(board, caption),
    }
    written = []
    for name, data in images.items():
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    for key, data in grids.items():
        atomic_write_bytes(out / grid_name(*key), data)
        written.append(out / grid_name(*key))
    if results is not None:
        written.append(datafile.write(results, out / datafile.NAME))
    atomic_write_text(out / "README.md", render_markdown(board, prov, list(images), grids))
    atomic_write_text(out / "leaderboard.csv", csv_text(board, prov))
    atomic_write_text(out / "index.html", render_html(board, prov, images, grids))
    written += [out / "README.md", out / "leaderboard.csv", out / "index.html"]
    return written


def make(
    suite: Suite,
    registry: Any,
    uri: str | None,
    out: Path,
    command: str | None = None,
    device_type: str | None = None,
    sources: Sequence[Path] = (),
) -> tuple[Board, list[Path]]:
    """Read the suite's runs on one device type from MLflow, or from the results files ``sources``
    (merged), and write the leaderboard, with its results file, to ``out``."""
    if sources and uri:
        raise ConfigError("give the runs' --tracking-uri or their results files (--from), not both")
    command = command or "dd-bench " + " ".join(sys.argv[1:])
    if sources:
        suite = validate(suite, registry, check_data=False)
        board, results, where = _from_files(suite, registry, [Path(p) for p in sources], device_type)
        grids = grids_from_folders(board, [Path(p).parent for p in sources])
    else:
        uri = tracking.normalise_uri(uri)
        tracking.check_reachable(uri)
        suite = validate(suite, registry, check_data=False)
        runs = tracking.runs_table(uri, suite.name)  # read once: device type and records both come from it
        cells = plan(suite, registry, device_type_of_runs(runs[0], suite, uri, device_type))
        board = build(suite, records_from_mlflow(suite, cells, uri, runs))
        results, where, grids = datafile.from_mlflow(suite, cells, uri, runs), uri, grids_from_mlflow(board, uri)
    board.reported = reported_for(suite, registry)
    return board, write(board, Path(out), provenance(board, command, where), grids, results)


def _from_files(
    suite: Suite, registry: Any, sources: list[Path], device_type: str | None
) -> tuple[Board, list[dict], str]:
    """The board of the planned cells found in the results files, their records, and where they came from."""
    where = "results files " + ", ".join(from_cwd(str(p)) for p in sources)
    records = datafile.merge(sources, suite)
    cells = plan(suite, registry, choose_device_type({r["device_type"] for r in records}, suite, where, device_type))
    planned = {c.config_hash for c in cells}
    shown = [r for r in records if r["hash"] in planned]
    if len(shown) < len(records):
        print(
            f"dd-bench: warning: {len(records) - len(shown)} of {len(records)} records are of cells suite {suite.name}"
            " does not plan (another device type, or a config changed since): left out",
            file=sys.stderr,
        )
    cell_recs = datafile.cell_records(suite, cells, shown, where)
    if not any(r.accs for r in cell_recs):
        raise DataError(f"no finished network of a cell suite {suite.name!r} plans in {where}")
    return build(suite, cell_recs), datafile.public(shown), where


def grids_from_folders(board: Board, folders: Sequence[Path]) -> dict[tuple[str, str, str], bytes]:
    """(dataset, method, ipc) -> the PNG grid a page beside a results file shows for the row (``grids/``)."""
    grids = {}
    for r in board.records:
        key = (r.dataset, r.method, r.ipc)
        for folder in folders:
            path = folder / grid_name(*key)
            if key not in grids and path.is_file():
                grids[key] = path.read_bytes()
    return grids


def grids_from_mlflow(board: Board, uri: str) -> dict[tuple[str, str, str], bytes]:
    """(dataset, method, ipc) -> the PNG grid of the lowest-seed cell's set, as its run saved it."""
    from mlflow.tracking import MlflowClient

    client, grids = MlflowClient(uri), {}
    for r in sorted(board.records, key=lambda r: r.seed):
        key = (r.dataset, r.method, r.ipc)
        if key in grids or r.run_id is None or r.tags.get("synthetic") != tracking.SAVED:
            continue
        with tempfile.TemporaryDirectory(prefix="ddb-grid-") as tmp:
            try:
                grids[key] = Path(client.download_artifacts(r.run_id, "synthetic/grid.png", tmp)).read_bytes()
            except Exception:  # an old run without a grid: the page shows none for it
                continue
    return grids
