"""Results: what a suite's runs show, as leaderboards and cross-architecture reports.

The package reads finished runs back from MLflow and turns them into files people read; it
runs nothing itself (``dd-bench report`` and ``dd-bench verify`` ask the runner to run, then
read the runs back like any other). Each module has one job, lowest first:

* ``records``: what a leaderboard knows of each cell, read from MLflow (:class:`CellRecord`)
* ``datafile``: ``results.jsonl``, the page's raw results as data (one record per trained
  network), written beside it, read back and merged
* ``board``: cells aggregated into entries, DD-Ranking scores, costs and ranks (:func:`build`)
* ``provenance``: which suite, command, device and versions made a page
* ``tables``: every table as rows of text, the CSV rows, the best entry of each column
* ``notes``: "How the numbers are made"
* ``render``: Markdown, and HTML from the Jinja2 templates in ``templates/``
* ``plots``: the figures, as PNG bytes
* ``leaderboard``: :func:`make` and :func:`write`, the leaderboard's folder
* ``report``: the cross-architecture report of given sets (``dd-bench report``; :func:`make_report`)
* ``verify``: a page's cells rerun at HEAD and compared with its results file (``dd-bench verify``)

Modules use each other's public names only; this module re-exports the ones callers need.
"""

from __future__ import annotations

from . import datafile, report
from .board import LRS_LAMBDA, Board, Entry, build, lrs
from .leaderboard import csv_text, grids_from_mlflow, make, write
from .plots import plot_accuracy_vs_ipc, plot_cross_arch
from .provenance import from_cwd, numerics, portable_uri, provenance
from .records import CellRecord, device_type_of_runs, records_from_mlflow
from .render import render_html, render_markdown
from .report import Report, Row
from .report import make as make_report
from .tables import best_cells, csv_rows, markdown_table, reported_for, reported_table, tables

__all__ = [
    "LRS_LAMBDA",
    "Board",
    "CellRecord",
    "Entry",
    "Report",
    "Row",
    "best_cells",
    "build",
    "datafile",
    "csv_rows",
    "csv_text",
    "device_type_of_runs",
    "from_cwd",
    "grids_from_mlflow",
    "lrs",
    "make",
    "make_report",
    "markdown_table",
    "numerics",
    "plot_accuracy_vs_ipc",
    "plot_cross_arch",
    "portable_uri",
    "provenance",
    "records_from_mlflow",
    "render_html",
    "render_markdown",
    "report",
    "reported_for",
    "reported_table",
    "tables",
    "write",
]
