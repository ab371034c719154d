"""dd-bench: a plugin-based benchmark suite for dataset distillation."""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("dd-bench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

PROJECT = "dd_bench"
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Decorate a plugin's hook implementations with this marker."""

__all__ = ["__version__", "hookimpl", "PROJECT"]
