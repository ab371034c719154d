"""Deprecated: ``dd-bench report`` moved to :mod:`dd_bench.results.report`.

Kept for one release so that existing imports go on working: every public name is looked up
there, with a ``DeprecationWarning`` saying where to import it from.
"""

from __future__ import annotations

import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn("dd_bench.report is deprecated: import from dd_bench.results", DeprecationWarning, stacklevel=2)
    from .results import report

    try:
        return getattr(report, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
