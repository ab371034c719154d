"""The leaderboard's tables: what each shows, as rows of text, shared by Markdown, HTML and CSV.

A table is (title, note, header, rows) of strings, so that the README, the page and any other
renderer show the same figures with the same rounding; which entry is the best of its column
is decided here too (``best_cells``), once for every page that marks it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from ..suite import Suite
from .board import Board, hard_mean


def fmt(v: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals; ``–`` for none or nan."""
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


Table = tuple[str, str, list[str], list[list[str]]]
"""(title, note, header, rows); the note is Markdown (`code` and **bold** only)."""


def tables(board: Board) -> list[Table]:
    """(title, note, header, rows) for every table, shared by README and HTML."""
    s = board.suite
    primary = s.primary_eval_model()
    out = []
    for ds in s.datasets:
        header = ["method"] + [f"IPC {ipc} · {m}" for ipc in board.ipcs for m in s.eval_models] + ["mean rank"]
        rows = []
        for m in board.methods:
            row = [board.method_label(m)]
            for ipc in board.ipcs:
                for model in s.eval_models:
                    e = board.acc.get((ds, m, ipc, model))
                    row.append(e.text() if e else "–")
            rk = board.ranks.get((ds, m))
            row.append("–" if rk is None or math.isnan(rk[0]) else f"{rk[0]:.2f} (over {rk[1]})")
            rows.append(row)
        note = (
            f"Rows: methods; columns: IPC x evaluation architecture (distilled with {s.distill_model}). "
            "The upper reference trains on the whole training set and does not depend on IPC. "
            "Mean rank: over the complete columns, 1 = best, the upper reference excluded."
        )
        out.append((f"{ds}: test accuracy (%)", note, header, rows))
        paper = reported_table(board, ds)
        if paper:
            out.append(paper)
        if any(e.values for (d, *_), e in board.val.items() if d == ds):
            header = ["method"] + [f"IPC {ipc} · {m}" for ipc in board.ipcs for m in s.eval_models]
            rows = [
                [board.method_label(m)]
                + [
                    board.val[key].text() if key in board.val else "–"
                    for ipc in board.ipcs
                    for model in s.eval_models
                    for key in [(ds, m, ipc, model)]
                ]
                for m in board.methods
            ]
            note = (
                "The same cells on the validation split (held out of the training data): the figures to choose"
                " presets, budgets and variants on. Rankings and scores use test accuracy."
            )
            out.append((f"{ds}: validation accuracy (%)", note, header, rows))
        for ipc in board.ipcs:
            header = ["method"] + list(s.eval_models) + ["spread (max - min)"]
            rows = []
            for m in board.methods:
                vals = [board.acc.get((ds, m, ipc, model)) for model in s.eval_models]
                means = [v.mean for v in vals if v is not None and v.complete]
                spread = max(means) - min(means) if len(means) == len(vals) and means else math.nan
                entries = [fmt(v.mean) if v and v.complete else "missing" for v in vals]
                rows.append([board.method_label(m)] + entries + [fmt(spread)])
            out.append(
                (
                    f"{ds}, IPC {ipc}: cross-architecture matrix (mean test accuracy %)",
                    f"Distilled with {s.distill_model}; each column trains that architecture on the set.",
                    header,
                    rows,
                )
            )
        if board.label_effect and any(p != "set" for p in board.protocols.values()):
            kinds = ("hard", "own protocol", "own − hard", "KiB hard", "KiB own")
            header = ["method", "labels"] + [f"IPC {ipc} · {k}" for ipc in board.ipcs for k in kinds]
            rows = []
            for m in board.methods:
                if board.roles[m] == "full":
                    continue
                row = [board.method_label(m), board.protocols.get(m, "set")]
                for ipc in board.ipcs:
                    le = board.label_effect.get((ds, m, ipc))
                    for k, digits in (("hard", 2), ("own", 2), ("gain", 2), ("hard_kib", 1), ("own_kib", 1)):
                        e = None if le is None else le[k]
                        if e is None:
                            row.append("–")
                        elif k in ("hard_kib", "own_kib"):
                            row.append(fmt(e.mean, digits) if e.complete else "–" if not e.values else "missing")
                        else:
                            row.append(e.text(digits))
                rows.append(row)
            note = (
                f"Each method under the hard protocol (class indices) and under its own (`labels`: set = the"
                " labels stored in the set, teacher = the teacher's softened outputs on every augmented batch),"
                f" on {primary},"
                " from the same cells; 'own − hard' is what the labels add. KiB: what each protocol must store"
                " (images + class indices; + soft labels; or + the teacher's parameters and buffers)."
            )
            out.append((f"{ds}: label protocols (test accuracy %, {primary})", note, header, rows))
        if s.full_method and s.random_method:  # the scores are relative to both references
            header = ["method"] + [f"IPC {ipc} · {k}" for ipc in board.ipcs for k in ("HLR ↓", "IOR ↑", "LRS ↑")]
            rows = []
            for m in board.methods:
                if board.roles[m] == "full":
                    continue
                row = [board.method_label(m)]
                for ipc in board.ipcs:
                    f = board.fairness.get((ds, m, ipc))
                    for k in ("hlr", "ior", "lrs"):
                        row.append("–" if f is None else (f[k].text() if f[k].complete else "missing"))
                rows.append(row)
            out.append(
                (
                    f"{ds}: DD-Ranking-style fairness scores on {primary}",
                    "See 'How the numbers are made' for the formulas (percent-correct LRS normalisation).",
                    header,
                    rows,
                )
            )
        columns = {
            "distill_seconds": "distill s",
            "distill_wall_seconds": "wall s",
            "cache_build_seconds": "of which caches s",
            "peak_memory_mb": "peak MB",
            "storage_kib": "storage KiB",
        }
        if not any(c["cache_build_seconds"].values for (d, *_), c in board.cost.items() if d == ds):
            del columns["cache_build_seconds"]  # runs from before the metric existed
        if not any(r.distill_wall_seconds is not None for r in board.records if r.dataset == ds):
            del columns["distill_wall_seconds"]  # no cell ran in shards: wall time is the distill time
        header = ["method"] + [f"IPC {ipc} · {label}" for ipc in board.ipcs for label in columns.values()]
        rows = []
        for m in board.methods:
            row = [board.method_label(m)]
            for ipc in board.ipcs:
                cst = board.cost.get((ds, m, ipc))
                for k in columns:
                    e = cst[k] if cst else None
                    unreported = k == "cache_build_seconds" and e is not None and not e.values  # e.g. random: no caches
                    row.append("–" if e is None or unreported else (fmt(e.mean, 1) if e.complete else "missing"))
            rows.append(row)
        out.append((f"{ds}: cost", COST_NOTE, header, rows))
    return out


COST_NOTE = (
    "Mean over distillation seeds: distillation time (a sharded cell's shards added up; 'wall s', where"
    " shown, is from its first shard's start to the merge), the part of it spent building caches that"
    " later cells reuse (expert buffers, a trained latent; it falls on the first cell that needs them),"
    " peak memory during distillation (see 'memory' above for what is measured), storage of images +"
    " labels (+ weights, lr) as float tensors."
)


def reported_for(suite: Suite, registry: Any) -> dict[str, tuple[Any, ...]]:
    """Each row's paper figures: a distiller's own; a published set's, those of the distiller it
    names (``import.method``, else the row's name)."""
    out = {}
    for entry in suite.methods or ():
        name = (entry.source.get("method") or entry.name) if entry.source is not None else entry.name
        if name in registry.distillers and registry.distiller(name).reported:
            out[entry.name] = registry.distiller(name).reported
    return out


def comparable(board: Board, m: str) -> list[Any]:
    """``m``'s paper figures for an architecture and label protocol the suite evaluates it with."""
    return [
        r
        for r in board.reported.get(m, ())
        if r.model in board.suite.eval_models and r.labels == board.protocols.get(m, "set")
    ]


def reported_table(board: Board, ds: str) -> Table | None:
    """The papers' figures beside the entries measured here in the same setting, or None."""
    rows = []
    for m in board.methods:
        for r in comparable(board, m):
            e = board.acc.get((ds, m, str(r.ipc), r.model)) if r.dataset == ds else None
            if e is None:
                continue
            diff = fmt(e.mean - r.accuracy) if e.complete else "–"
            rows.append(
                [
                    f"{board.method_label(m)} · IPC {r.ipc} · {r.model}",
                    r.text(),
                    e.text(),
                    diff,
                    r.where + (f" ({r.note})" if r.note else ""),
                ]
            )
    if not rows:
        return None
    note = (
        "Each figure a method's paper reports for a setting this suite runs (dataset, IPC, evaluation"
        " architecture, label protocol), beside the entry measured here; difference = measured − reported, in"
        " points. The papers' other settings (distillation budget, ZCA, resolution, evaluation epochs, runs) can"
        " differ from the suite's: see each figure's note and the suite's presets."
    )
    header = ["setting", "reported", "measured", "measured − reported", "where"]
    return f"{ds}: reported in the papers and measured here (test accuracy %)", note, header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table, ``|`` escaped in every entry."""

    def esc(s):
        return str(s).replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


LOWER_IS_BETTER = ("↓", "rank", " s", "seconds", "MB", "KiB")
"""Header words of columns where the smallest value is the best."""
UNRANKED = ("spread",)
"""Header words of columns where neither end is the best: a small cross-architecture spread
is as true of a method bad on every architecture as of one good on all."""


def best_cells(header: Sequence[str], rows: Sequence[Sequence[str]]) -> set[tuple[int, int]]:
    """(row, column) of each numeric column's best entry among the method rows (references left
    out): the highest, or the lowest where the header says lower is better, none where neither
    end is better (``UNRANKED``); ties all marked. Only tables whose rows are methods or sets (first header ``method`` or ``set``) rank."""
    best: set[tuple[int, int]] = set()
    if not header or header[0] not in ("method", "set"):
        return best
    for j, name in enumerate(header[1:], start=1):
        if any(w in name for w in UNRANKED):
            continue
        values = {}
        for i, row in enumerate(rows):
            match = re.match(r"-?\d+(\.\d+)?", row[j]) if j < len(row) else None
            if match and "reference" not in row[0]:
                values[i] = float(match.group())
        if len(values) > 1:
            target = (min if any(w in name for w in LOWER_IS_BETTER) else max)(values.values())
            best |= {(i, j) for i, v in values.items() if v == target}
    return best


def csv_rows(board: Board) -> tuple[list[str], list[list[Any]]]:
    """leaderboard.csv: one row per (dataset, method, IPC, evaluation architecture), numbers unrounded to 4 places."""
    header = [
        "dataset",
        "method",
        "role",
        "ipc",
        "eval_model",
        "mean",
        "std",
        "n",
        "expected_n",
        "complete",
        "val_mean",
        "val_std",
        "hlr",
        "ior",
        "lrs",
        "distill_seconds",
        "cache_build_seconds",
        "peak_memory_mb",
        "storage_kib",
        "mean_rank",
        "labels",
        "hard_mean",
        "reported_mean",
        "reported_std",
        "reported_where",
    ]
    rows = []
    for (ds, m, ipc, model), e in board.acc.items():
        paper = next((r for r in comparable(board, m) if (r.dataset, str(r.ipc), r.model) == (ds, ipc, model)), None)
        v = board.val[(ds, m, ipc, model)]
        f = board.fairness.get((ds, m, ipc), {})
        c = board.cost.get((ds, m, ipc), {})
        primary = model == board.suite.primary_eval_model()
        rk = board.ranks.get((ds, m), (math.nan, 0))[0]

        def val(x):
            return "" if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 4)

        rows.append(
            [
                ds,
                m,
                board.roles[m],
                "all" if board.roles[m] == "full" else ipc,
                model,
                val(e.mean),
                val(e.std),
                e.n,
                e.expected,
                e.complete,
                val(v.mean),
                val(v.std),
                val(f["hlr"].mean) if primary and f else "",
                val(f["ior"].mean) if primary and f else "",
                val(f["lrs"].mean) if primary and f else "",
                val(c["distill_seconds"].mean) if c else "",
                val(c["cache_build_seconds"].mean) if c else "",
                val(c["peak_memory_mb"].mean) if c else "",
                val(c["storage_kib"].mean) if c else "",
                val(rk),
                board.protocols.get(m, "set"),
                val(hard_mean(board, ds, m, ipc, model)),
                *(
                    (paper.accuracy, val(paper.std), paper.where)
                    if paper and board.roles[m] != "full"
                    else ("", "", "")
                ),
            ]
        )
    return header, rows
