"""Provenance: which suite, command, store, device, numerics and versions made a page.

Every leaderboard and report says how it was made, and says it so that a reader of the
repository can redo it: paths are written relative to the working directory (or the folder
beside it), since this machine's absolute paths mean nothing elsewhere.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..suite import Suite
from .board import Board

NUMERIC_TAGS = (
    "deterministic",
    "float32_matmul_precision",
    "compile",
    "cuda",
    "cudnn",
    "gpu",
    "cuda_matmul_allow_tf32",
    "cudnn_allow_tf32",
    "cudnn_deterministic",
    "cudnn_benchmark",
    "cublas_workspace_config",
)


def numerics(records: Sequence[Any]) -> str:
    """The settings that decide bit-reproducibility, as the runs recorded them (each distinct value);
    ``records`` are anything with the run's ``tags`` (cell records, report rows)."""
    parts = []
    for key in NUMERIC_TAGS:
        values = sorted({r.tags[key] for r in records if r.tags.get(key) not in (None, "")})
        if values:
            parts.append(f"{key}={'/'.join(values)}")
    return "; ".join(parts) or "unknown"


def from_cwd(path: str) -> str:
    """``path`` relative to the working directory when it lies under it or beside it (``../runs``
    next to a checkout), so that a reader can rerun the commands from the repository (this
    machine's absolute paths mean nothing there)."""
    cwd = Path.cwd().resolve()
    for base, prefix in ((cwd, ""), (cwd.parent, "../")):
        try:
            return prefix + str(Path(path).resolve().relative_to(base))
        except (ValueError, OSError):
            continue
    return path


def portable_uri(uri: str) -> str:
    """A SQLite store's path as :func:`from_cwd` writes it; any other URI as it is."""
    prefix = "sqlite:///"
    return prefix + from_cwd(uri[len(prefix) :]) if uri.startswith(prefix) else uri


RUN_VERSIONS = (("dd-bench", "dd_bench"), ("torch", "torch"), ("torchvision", "torchvision"), ("python", "python"))
"""(name shown, run tag) of each version a leaderboard states of its runs."""


def provenance(board: Board, command: str, uri: str) -> dict[str, str]:
    """The leaderboard's "How this was made" lines, in the order the files show them."""
    import mlflow
    import torch

    from .. import __version__

    def unique(key: str) -> str:
        vals = sorted({r.tags.get(key, "") for r in board.records if r.tags.get(key)})
        return ", ".join(vals) or "unknown"

    s = board.suite
    return {
        "suite": f"{s.name} v{s.version} ({from_cwd(str(s.path)) if s.path else 'inline'})",
        "command": command,
        "tracking": portable_uri(uri),
        "device": unique("device"),
        "numerics": numerics(board.records),
        "memory": unique("memory_kind"),
        "versions (runs)": "; ".join(f"{name} {unique(key)}" for name, key in RUN_VERSIONS),
        "git SHA (runs)": unique("git_sha"),
        "versions (this page)": f"dd-bench {__version__}; torch {torch.__version__}; mlflow {mlflow.__version__}",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **_published_sets(s),
    }


def _published_sets(suite: Suite) -> dict[str, str]:
    """The provenance line of a suite's imported rows (none when it has none)."""
    imported = [e for e in suite.methods or () if e.source is not None]
    if not imported:
        return {}
    parts = [
        f"{e.name}: {e.source['format']} "
        + ", ".join(f"IPC {i} {from_cwd(p)}" for i, p in sorted(e.source["paths"].items()))
        for e in imported
    ]
    return {"published sets": "; ".join(parts) + " (the SHA-256 of each is in its run's config.yaml)"}
