"""Deprecated: the leaderboard moved to :mod:`dd_bench.results` (one module per job there).

Kept for one release so that existing imports go on working: each public name of the old
module is looked up in its new home, with a ``DeprecationWarning`` saying where to import it
from. ``make`` is ``dd_bench.results.make`` (``dd_bench.results.leaderboard.make``).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

MOVED = {
    "records": ("CellRecord", "records_from_mlflow", "device_type_of_runs"),
    "board": ("LRS_LAMBDA", "lrs", "Entry", "Board", "build"),
    "provenance": ("NUMERIC_TAGS", "numerics", "provenance"),
    "tables": ("tables", "reported_for", "reported_table", "LOWER_IS_BETTER", "best_cells", "csv_rows"),
    "notes": ("HOW", "RECIPE_TEXT"),
    "render": ("render_markdown", "render_html", "png_uri", "html_table", "grid_name"),
    "plots": ("plot_accuracy_vs_ipc", "plot_cross_arch"),
    "leaderboard": ("write", "make", "grids_from_mlflow"),
}
"""Module of dd_bench.results -> the old public names that live there now."""
PAGE_PIECES = {"PAGE_STYLE": ("<style>{}</style>", "page.css"), "SORT_SCRIPT": ("{}", "sort.js")}
"""Old constants whose text is now a template file of dd_bench/results/templates."""


def __getattr__(name: str) -> Any:
    home = next((module for module, names in MOVED.items() if name in names), None)
    if home is None and name not in PAGE_PIECES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn("dd_bench.leaderboard is deprecated: import from dd_bench.results", DeprecationWarning, stacklevel=2)
    if home is None:
        from .results.render import template_text

        wrapper, template = PAGE_PIECES[name]
        return wrapper.format(template_text(template))
    return getattr(importlib.import_module(f"dd_bench.results.{home}"), name)
