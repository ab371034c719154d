"""Leaderboards: read a suite's runs back from MLflow and write README.md, CSV, HTML and PNGs.

Aggregation (stated in every leaderboard): a cell trains ``k`` fresh networks per
evaluation architecture and contributes the mean of their final test accuracies; a table
entry is the mean ± sample std over the suite's distillation seeds of those per-cell
means, and ``n`` is the number of distillation seeds. An entry is shown only when every
seed the suite asks for has finished; otherwise it reads ``missing (i/n)``: partial seeds
are never averaged.

Fairness columns (after DD-Ranking, Li et al. 2025), on the primary evaluation
architecture (the distillation one when it is evaluated), accuracies in percent:

* HLR (hard label recovery) = acc_full_hard - acc_syn_hard  (lower is better)
* IOR (improvement over random) = acc_syn - acc_random  (higher is better)
* LRS (label-robust score) = 100 * (exp(a) - exp(-1)) / (exp(1) - exp(-1)) with
  a = (lambda * IOR - (1 - lambda) * HLR) / 100 and lambda = 0.5.

The reference formula takes the exponential of a combination of accuracies it assumes are
fractions in [0, 1]; with percentages that exponent spans [-100, 100]. Dividing by 100
puts ``a`` back in [-1, 1] and LRS in [0, 100]. ``acc_syn_hard`` is the accuracy with the
set's labels replaced by their argmax (the runner measures it for soft-label sets);
HLR, IOR and LRS are computed per distillation seed against the reference rows' means,
then averaged.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import math
import os
import statistics
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tracking
from .errors import ConfigError
from .suite import Suite, eval_config

LRS_LAMBDA = 0.5


# ---------------------------------------------------------------------------- records


@dataclass
class CellRecord:
    """What the leaderboard needs of one finished (or partly finished) cell."""

    method: str
    dataset: str
    ipc: str
    seed: int
    role: str = "method"
    accs: dict[str, float] = field(default_factory=dict)
    """Eval architecture -> mean test accuracy (%) over the cell's eval networks."""
    hard_accs: dict[str, float] = field(default_factory=dict)
    """Same, with soft labels replaced by their argmax (only for soft-label sets)."""
    distill_seconds: float | None = None
    """Device-seconds of distilling: a sharded cell's shards added up."""
    peak_memory_mb: float | None = None
    synthetic_bytes: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    val_accs: dict[str, float] = field(default_factory=dict)
    """Eval architecture -> mean validation accuracy (%): what presets may be chosen on."""
    cache_build_seconds: float | None = None
    """Part of ``distill_seconds`` spent building caches later cells reuse (expert buffers...)."""
    labels: str = "set"
    """The cell's label protocol (``eval.labels``): hard, set or teacher."""
    storage_bytes: float | None = None
    """Storage the cell's protocol needs (images + labels, or + the teacher); None for older runs."""
    hard_storage_bytes: float | None = None
    """Storage under the hard protocol (images + class indices)."""
    distill_wall_seconds: float | None = None
    """Wall time of a cell distilled in several shards (none when it ran whole)."""
    run_id: str | None = None
    """The cell's MLflow run (its grid of images is read from there)."""

    def hard_acc(self, model: str) -> float | None:
        """Accuracy under the hard protocol: measured beside the protocol's, or the protocol's own
        when it is hard (or ``set`` on a hard-label set); None when not measured."""
        if model in self.hard_accs:
            return self.hard_accs[model]
        return None if self.labels == "teacher" else self.accs.get(model)


def lrs(hlr: float, ior: float, lam: float = LRS_LAMBDA) -> float:
    """Label-robust score in [0, 100] for HLR and IOR given in percentage points."""
    a = (lam * ior - (1 - lam) * hlr) / 100.0
    return 100.0 * (math.exp(a) - math.exp(-1)) / (math.exp(1) - math.exp(-1))


def records_from_mlflow(suite: Suite, cells: Sequence[Any], uri: str, runs: tuple[list[Any], list[Any]]) -> list[CellRecord]:
    """The newest run of each planned cell (by config hash), with its finished evaluations;
    ``runs`` are the suite's (cell runs, eval runs) read from ``uri`` by ``tracking.runs_table``.

    Raises DataError when no planned cell has a finished evaluation: a page of nothing but
    missing entries would only hide a wrong store or a suite that never ran.
    """
    cell_runs, eval_runs = runs
    wanted = {c.config_hash: c for c in cells}
    newest: dict[str, Any] = {}
    for r in cell_runs:  # newest first
        h = r.data.tags.get(f"{tracking.TAG}hash")
        if h in wanted and h not in newest:
            newest[h] = r
    evals: dict[tuple[str, str], Any] = {}
    for r in eval_runs:
        t = tracking.tags_of(r)
        parent = r.data.tags.get("mlflow.parentRunId")
        if t.get("status") == tracking.DONE and parent:
            evals.setdefault((parent, t.get("eval_model", "")), r)
    out = []
    for h, run in newest.items():
        cell = wanted[h]
        m = run.data.metrics
        rec = CellRecord(
            method=cell.method,
            dataset=cell.dataset,
            ipc=cell.ipc_label,
            seed=cell.seed,
            role=cell.role,
            distill_seconds=m.get("distill_seconds"),
            distill_wall_seconds=m.get("distill_wall_seconds"),
            peak_memory_mb=m.get("peak_memory_mb"),
            synthetic_bytes=m.get("synthetic_bytes"),
            cache_build_seconds=m.get("cache_build_seconds"),
            tags=tracking.tags_of(run),
            labels=str(cell.eval.get("labels", "set")),
            run_id=run.info.run_id,
        )
        for model in cell.eval_models:
            e = evals.get((run.info.run_id, model))
            if e is not None and "test_acc_mean" in e.data.metrics:
                rec.accs[model] = e.data.metrics["test_acc_mean"]
                if rec.storage_bytes is None and "storage_bytes" in e.data.metrics:
                    rec.storage_bytes = e.data.metrics["storage_bytes"]
                    rec.hard_storage_bytes = e.data.metrics.get("hard_storage_bytes")
                if "hard_test_acc_mean" in e.data.metrics:
                    rec.hard_accs[model] = e.data.metrics["hard_test_acc_mean"]
                if "val_acc_mean" in e.data.metrics:
                    rec.val_accs[model] = e.data.metrics["val_acc_mean"]
        out.append(rec)
    if not any(r.accs for r in out):
        from .errors import DataError

        raise DataError(
            f"no finished runs of suite {suite.name!r} in {uri}: run it first (dd-bench run {suite.path or suite.name}),"
            " or pass the --tracking-uri it ran with"
        )
    return out


# ---------------------------------------------------------------------------- aggregation


@dataclass
class Entry:
    """One table entry: per-seed values, and whether every expected seed is there."""

    values: list[float]
    expected: int

    @property
    def complete(self) -> bool:
        return len(self.values) == self.expected and self.expected > 0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.complete else math.nan

    @property
    def std(self) -> float:
        if not self.complete:
            return math.nan
        return statistics.stdev(self.values) if self.n > 1 else math.nan

    def text(self, digits: int = 2) -> str:
        if not self.complete:
            return f"missing ({self.n}/{self.expected})"
        sd = "–" if math.isnan(self.std) else f"{self.std:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {sd} (n={self.n})"


@dataclass
class Board:
    suite: Suite
    methods: list[str]
    """Row order: methods, then the random and full references."""
    roles: dict[str, str]
    ipcs: list[str]
    acc: dict[tuple[str, str, str, str], Entry]
    """(dataset, method, ipc, eval_model) -> Entry; the upper reference is under every IPC."""
    val: dict[tuple[str, str, str, str], Entry]
    """The same on the validation split."""
    fairness: dict[tuple[str, str, str], dict[str, Entry]]
    """(dataset, method, ipc) -> {"hlr", "ior", "lrs"}."""
    cost: dict[tuple[str, str, str], dict[str, Entry]]
    """(dataset, method, ipc) -> {"distill_seconds", "cache_build_seconds", "peak_memory_mb", "storage_kib"}."""
    ranks: dict[tuple[str, str], tuple[float, int]]
    """(dataset, method) -> (mean rank over complete columns, number of columns)."""
    records: list[CellRecord]
    protocols: dict[str, str] = field(default_factory=dict)
    """method -> its label protocol in this suite (``eval.labels``)."""
    label_effect: dict[tuple[str, str, str], dict[str, Entry]] = field(default_factory=dict)
    """(dataset, method, ipc) -> {"hard", "own", "gain", "hard_kib", "own_kib"} on the primary architecture."""
    reported: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """method -> the figures its paper reports (``ReportedResult``; see :func:`reported_for`)."""

    def method_label(self, m: str) -> str:
        role = self.roles.get(m)
        if role == "random":
            return f"{m} (lower reference)"
        if role == "full":
            return f"{m} (upper reference: whole training set)"
        imported = any(e.name == m and e.source is not None for e in self.suite.methods or ())
        return f"{m} (published set)" if imported else m


def _seeds_for(suite: Suite, method: str) -> tuple[int, ...]:
    for entry in suite.methods or ():
        if entry.name == method:
            return (0,) if entry.source is not None else entry.seeds or suite.seeds  # a published set: one cell
    return suite.seeds


def _ipcs_for(suite: Suite, method: str) -> list[str]:
    for entry in suite.methods or ():
        if entry.name == method:
            return [str(i) for i in (entry.ipcs or suite.ipcs)]
    return [str(i) for i in suite.ipcs]


def _rank(values: Mapping[str, float]) -> dict[str, float]:
    """1 = best (highest); ties share the mean of their ranks."""
    order = sorted(values, key=lambda k: -values[k])
    ranks: dict[str, float] = {}
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i : j + 1]:
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _protocols(suite: Suite) -> dict[str, str]:
    return {m.name: eval_config(suite.eval, m.eval).labels for m in suite.methods or ()}


def build(suite: Suite, records: Sequence[CellRecord]) -> Board:
    """Aggregate cell records into entries, fairness scores, costs and ranks.

    Fairness follows DD-Ranking under one teacher: HLR compares hard-label accuracies (the
    upper reference's and the method's); IOR compares the method under its own protocol with
    the random subset under the same protocol: its hard (or set) accuracy for hard/set rows,
    its teacher-protocol accuracy for teacher rows, and only where both cells name the same
    teacher (cache key); a seed whose teacher differs from the random row's is left out, so
    its entry reads missing.
    """
    names = [m.name for m in suite.methods or ()]
    protocols = _protocols(suite)
    refs = [r for r in (suite.random_method, suite.full_method) if r in names]
    methods = [m for m in names if m not in refs] + refs
    roles = {m: ("random" if m == suite.random_method else "full" if m == suite.full_method else "method") for m in names}
    ipcs = sorted({str(i) for m in names if roles[m] != "full" for i in _ipcs_for(suite, m)}, key=int)
    by: dict[tuple[str, str, str], dict[int, CellRecord]] = defaultdict(dict)
    for r in records:
        by[(r.dataset, r.method, r.ipc)][r.seed] = r

    def per_seed(ds: str, m: str, ipc: str, get: Any) -> Entry:
        seeds = _seeds_for(suite, m)
        cell_ipc = "all" if roles[m] == "full" else ipc
        got = by.get((ds, m, cell_ipc), {})
        vals = [get(got[s]) for s in seeds if s in got]
        vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
        return Entry(vals, len(seeds))

    acc: dict[tuple[str, str, str, str], Entry] = {}
    val: dict[tuple[str, str, str, str], Entry] = {}
    cost: dict[tuple[str, str, str], dict[str, Entry]] = {}
    for ds in suite.datasets:
        for m in methods:
            for ipc in ipcs:
                if roles[m] != "full" and ipc not in _ipcs_for(suite, m):
                    continue
                for model in suite.eval_models:
                    acc[(ds, m, ipc, model)] = per_seed(ds, m, ipc, lambda r, model=model: r.accs.get(model))
                    val[(ds, m, ipc, model)] = per_seed(ds, m, ipc, lambda r, model=model: r.val_accs.get(model))
                cost[(ds, m, ipc)] = {
                    "distill_seconds": per_seed(ds, m, ipc, lambda r: r.distill_seconds),
                    "distill_wall_seconds": per_seed(ds, m, ipc, lambda r: r.distill_seconds if r.distill_wall_seconds is None
                                                     else r.distill_wall_seconds),  # fmt: skip
                    "cache_build_seconds": per_seed(ds, m, ipc, lambda r: r.cache_build_seconds),
                    "peak_memory_mb": per_seed(ds, m, ipc, lambda r: r.peak_memory_mb),
                    "storage_kib": per_seed(ds, m, ipc, lambda r: _kib(r.storage_bytes if r.storage_bytes is not None else r.synthetic_bytes)),
                }

    primary = suite.primary_eval_model()
    fairness: dict[tuple[str, str, str], dict[str, Entry]] = {}
    label_effect: dict[tuple[str, str, str], dict[str, Entry]] = {}
    for ds in suite.datasets:
        for ipc in ipcs:
            full_m, rnd_m = suite.full_method or "", suite.random_method or ""
            full = per_seed(ds, full_m, ipc, lambda r: r.hard_acc(primary)) if full_m in roles else None
            rnd_hard = per_seed(ds, rnd_m, ipc, lambda r: r.hard_acc(primary)) if rnd_m in roles else None
            rnd_teacher = (per_seed(ds, rnd_m, ipc, lambda r: r.accs.get(primary) if r.labels == "teacher" else None)
                           if rnd_m in roles else None)  # fmt: skip
            rnd_keys = {r.tags.get("teacher") for r in by.get((ds, rnd_m, ipc), {}).values()}
            for m in methods:
                if roles[m] == "full" or (ds, m, ipc, primary) not in acc:
                    continue
                label_effect[(ds, m, ipc)] = {
                    "hard": per_seed(ds, m, ipc, lambda r: r.hard_acc(primary)),
                    "own": per_seed(ds, m, ipc, lambda r: r.accs.get(primary)),
                    "gain": per_seed(ds, m, ipc, lambda r: None if r.hard_acc(primary) is None or primary not in r.accs
                                     else r.accs[primary] - r.hard_acc(primary)),  # fmt: skip
                    "hard_kib": per_seed(ds, m, ipc, lambda r: _kib(r.hard_storage_bytes)),
                    "own_kib": per_seed(ds, m, ipc, lambda r: _kib(r.storage_bytes)),
                }
                teacher_row = protocols.get(m) == "teacher"
                rnd = rnd_teacher if teacher_row else rnd_hard
                seeds = _seeds_for(suite, m)
                got = by.get((ds, m, ipc), {})
                hlr, ior, score = [], [], []
                if full is not None and rnd is not None and full.complete and rnd.complete:
                    for s in seeds:
                        r = got.get(s)
                        if r is None or primary not in r.accs or r.hard_acc(primary) is None:
                            continue
                        if teacher_row and (r.tags.get("teacher") not in rnd_keys or len(rnd_keys) != 1):
                            continue  # not the random row's teacher: no like-for-like IOR
                        syn_any = r.accs[primary]
                        syn_hard = r.hard_acc(primary)
                        h, i = full.mean - syn_hard, syn_any - rnd.mean
                        hlr.append(h)
                        ior.append(i)
                        score.append(lrs(h, i))
                expected = len(seeds) if (full is not None and rnd is not None and full.complete and rnd.complete) else len(seeds) + 1
                fairness[(ds, m, ipc)] = {"hlr": Entry(hlr, expected), "ior": Entry(ior, expected), "lrs": Entry(score, expected)}

    ranks: dict[tuple[str, str], tuple[float, int]] = {}
    for ds in suite.datasets:
        collected: dict[str, list[float]] = defaultdict(list)
        for ipc in ipcs:
            for model in suite.eval_models:
                col = {m: acc[(ds, m, ipc, model)].mean for m in methods if roles[m] != "full" and (ds, m, ipc, model) in acc}
                if col and all(not math.isnan(v) for v in col.values()):
                    for m, rk in _rank(col).items():
                        collected[m].append(rk)
        for m in methods:
            if roles[m] != "full":
                v = collected.get(m, [])
                ranks[(ds, m)] = (statistics.fmean(v) if v else math.nan, len(v))
    return Board(suite, methods, roles, ipcs, acc, val, fairness, cost, ranks, list(records), protocols, label_effect)


def _kib(value: float | None) -> float | None:
    return None if value is None else value / 1024


# ---------------------------------------------------------------------------- provenance


NUMERIC_TAGS = ("deterministic", "float32_matmul_precision", "compile", "cuda", "cudnn", "gpu", "cuda_matmul_allow_tf32",
                "cudnn_allow_tf32", "cudnn_deterministic", "cudnn_benchmark", "cublas_workspace_config")


def numerics(records: Sequence[CellRecord]) -> str:
    """The settings that decide bit-reproducibility, as the runs recorded them (each distinct value)."""
    parts = []
    for key in NUMERIC_TAGS:
        values = sorted({r.tags[key] for r in records if r.tags.get(key) not in (None, "")})
        if values:
            parts.append(f"{key}={'/'.join(values)}")
    return "; ".join(parts) or "unknown"


def _from_cwd(path: str) -> str:
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


def _portable_uri(uri: str) -> str:
    prefix = "sqlite:///"
    return prefix + _from_cwd(uri[len(prefix):]) if uri.startswith(prefix) else uri


def provenance(board: Board, command: str, uri: str) -> dict[str, str]:
    import mlflow
    import torch

    from . import __version__

    def unique(key: str) -> str:
        vals = sorted({r.tags.get(key, "") for r in board.records if r.tags.get(key)})
        return ", ".join(vals) or "unknown"

    s = board.suite
    return {
        "suite": f"{s.name} v{s.version} ({_from_cwd(str(s.path)) if s.path else 'inline'})",
        "command": command,
        "tracking": _portable_uri(uri),
        "device": unique("device"),
        "numerics": numerics(board.records),
        "memory": unique("memory_kind"),
        "versions (runs)": f"dd-bench {unique('dd_bench')}; torch {unique('torch')}; torchvision {unique('torchvision')}; python {unique('python')}",
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
    parts = [f"{e.name}: {e.source['format']} " + ", ".join(f"IPC {i} {_from_cwd(p)}" for i, p in sorted(e.source["paths"].items()))
             for e in imported]  # fmt: skip
    return {"published sets": "; ".join(parts) + " (the SHA-256 of each is in its run's config.yaml)"}


def _fmt(v: float, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


# ---------------------------------------------------------------------------- tables


def tables(board: Board) -> list[tuple[str, str, list[str], list[list[str]]]]:
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
        out.append(
            (
                f"{ds}: test accuracy (%)",
                f"Rows: methods; columns: IPC x evaluation architecture (distilled with {s.distill_model}). "
                "The upper reference trains on the whole training set and does not depend on IPC. "
                "Mean rank: over the complete columns, 1 = best, the upper reference excluded.",
                header,
                rows,
            )
        )
        paper = reported_table(board, ds)
        if paper:
            out.append(paper)
        if any(e.values for (d, *_), e in board.val.items() if d == ds):
            header = ["method"] + [f"IPC {ipc} · {m}" for ipc in board.ipcs for m in s.eval_models]
            rows = [
                [board.method_label(m)] + [board.val[(ds, m, ipc, model)].text() if (ds, m, ipc, model) in board.val else "–"
                                           for ipc in board.ipcs for model in s.eval_models]
                for m in board.methods
            ]  # fmt: skip
            note = ("The same cells on the validation split (held out of the training data): the figures to choose"
                    " presets, budgets and variants on. Rankings and scores use test accuracy.")  # fmt: skip
            out.append((f"{ds}: validation accuracy (%)", note, header, rows))
        for ipc in board.ipcs:
            header = ["method"] + list(s.eval_models) + ["spread (max - min)"]
            rows = []
            for m in board.methods:
                vals = [board.acc.get((ds, m, ipc, model)) for model in s.eval_models]
                means = [v.mean for v in vals if v is not None and v.complete]
                spread = max(means) - min(means) if len(means) == len(vals) and means else math.nan
                rows.append([board.method_label(m)] + [_fmt(v.mean) if v and v.complete else "missing" for v in vals] + [_fmt(spread)])
            out.append((f"{ds}, IPC {ipc}: cross-architecture matrix (mean test accuracy %)", f"Distilled with {s.distill_model}; each column trains that architecture on the set.", header, rows))
        if board.label_effect and any(p != "set" for p in board.protocols.values()):
            header = ["method", "labels"] + [f"IPC {ipc} · {k}" for ipc in board.ipcs
                                             for k in ("hard", "own protocol", "own − hard", "KiB hard", "KiB own")]  # fmt: skip
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
                            row.append(_fmt(e.mean, digits) if e.complete else "–" if not e.values else "missing")
                        else:
                            row.append(e.text(digits))
                rows.append(row)
            note = (f"Each method under the hard protocol (class indices) and under its own (`labels`: set = the labels"
                    f" stored in the set, teacher = the teacher's softened outputs on every augmented batch), on {primary},"
                    " from the same cells; 'own − hard' is what the labels add. KiB: what each protocol must store"
                    " (images + class indices; + soft labels; or + the teacher's parameters and buffers).")  # fmt: skip
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
            out.append((f"{ds}: DD-Ranking-style fairness scores on {primary}", "See 'How the numbers are made' for the formulas (percent-correct LRS normalisation).", header, rows))
        columns = {"distill_seconds": "distill s", "distill_wall_seconds": "wall s", "cache_build_seconds": "of which caches s",
                   "peak_memory_mb": "peak MB", "storage_kib": "storage KiB"}  # fmt: skip
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
                    row.append("–" if e is None or unreported else (_fmt(e.mean, 1) if e.complete else "missing"))
            rows.append(row)
        out.append(
            (
                f"{ds}: cost",
                "Mean over distillation seeds: distillation time (a sharded cell's shards added up; 'wall s', where"
                " shown, is from its first shard's start to the merge), the part of it spent building caches that"
                " later cells reuse (expert buffers, a trained latent; it falls on the first cell that needs them),"
                " peak memory during distillation (see 'memory' above for what is measured), storage of images +"
                " labels (+ weights, lr) as float tensors.",
                header,
                rows,
            )
        )
    return out


def reported_for(suite: Suite, registry: Any) -> dict[str, tuple[Any, ...]]:
    """Each row's paper figures: a distiller's own; a published set's, those of the distiller it
    names (``import.method``, else the row's name)."""
    out = {}
    for entry in suite.methods or ():
        name = (entry.source.get("method") or entry.name) if entry.source is not None else entry.name
        if name in registry.distillers and registry.distiller(name).reported:
            out[entry.name] = registry.distiller(name).reported
    return out


def _comparable(board: Board, m: str) -> list[Any]:
    """``m``'s paper figures for an architecture and label protocol the suite evaluates it with."""
    return [r for r in board.reported.get(m, ()) if r.model in board.suite.eval_models and r.labels == board.protocols.get(m, "set")]


def reported_table(board: Board, ds: str) -> tuple[str, str, list[str], list[list[str]]] | None:
    """The papers' figures beside the entries measured here in the same setting, or None."""
    rows = []
    for m in board.methods:
        for r in _comparable(board, m):
            e = board.acc.get((ds, m, str(r.ipc), r.model)) if r.dataset == ds else None
            if e is None:
                continue
            diff = _fmt(e.mean - r.accuracy) if e.complete else "–"
            rows.append([f"{board.method_label(m)} · IPC {r.ipc} · {r.model}", r.text(), e.text(), diff,
                         r.where + (f" ({r.note})" if r.note else "")])  # fmt: skip
    if not rows:
        return None
    note = ("Each figure a method's paper reports for a setting this suite runs (dataset, IPC, evaluation architecture,"
            " label protocol), beside the entry measured here; difference = measured − reported, in points. The papers'"
            " other settings (distillation budget, ZCA, resolution, evaluation epochs, runs) can differ from the suite's:"
            " see each figure's note and the suite's presets.")  # fmt: skip
    return f"{ds}: reported in the papers and measured here (test accuracy %)", note, ["setting", "reported", "measured", "measured − reported", "where"], rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


HOW = """\
- **Cells.** One cell = method x dataset x IPC x distillation seed; the cell's seed seeds the
  distillation. Each cell trains {k} fresh network(s) per evaluation architecture (network
  seeds {eval_seeds}, the same in every cell) with the evaluation protocol of `dd_bench/evaluate.py`
  ({epochs} epochs unless a method overrides it{overrides}) and reports the final-epoch test accuracy.
- **Evaluation recipe** (`eval.recipe`, recorded with every run): {recipes}.
- **Entries.** mean ± sample std over distillation seeds of the per-cell mean accuracy;
  n = number of distillation seeds ({n}). Evaluation networks within a cell share one
  synthetic set, so they are averaged first rather than counted as independent samples.
  An entry whose seeds did not all finish reads `missing (i/n)`; partial seeds are never averaged.
- **HLR** (hard label recovery) = acc_full_hard − acc_syn_hard, lower is better;
  **IOR** (improvement over random) = acc_syn − acc_random, higher is better;
  **LRS** (label-robust score) = 100 · (e^a − e^−1) / (e − e^−1), a = (λ·IOR − (1−λ)·HLR) / 100, λ = {lam}.
  Accuracies are in percent, hence the division by 100 (the reference formula assumes
  fractions in [0, 1]); LRS lies in [0, 100]. acc_syn_hard uses argmax labels for soft-label
  sets; references are the {full} and {random} rows' means on {primary} at the same IPC;
  scores are computed per distillation seed, then averaged.
- **Label protocols.** Every evaluation records `labels`: `hard` trains on class indices, `set`
  on the set's stored labels, `teacher` on a teacher's softened outputs (KL at a temperature)
  for every augmented batch. A cell under `set` (soft labels) or `teacher` is also trained
  under `hard`, so each row shows both. Under the teacher protocol IOR compares with the random
  row under the same protocol and the same teacher (cache key); HLR always uses hard labels.
- **Costs.** Distillation wall time and peak memory (CPU: peak RSS of the process during
  distillation; GPU: `torch.cuda.max_memory_allocated`), storage in KiB of what the cell's
  label protocol needs (images, plus soft labels or the teacher's parameters where it uses them).
  The wall time includes building caches (expert buffers, a trained latent) in whichever cell
  needed them first; "of which caches" shows that part, where the distiller reports it.
"""


def _grid_rows(board: Board, grids: Mapping[tuple[str, str, str], bytes]) -> list[tuple[str, str, list[tuple[str, str] | None]]]:
    """(dataset, method, [(ipc, grid file) or None per IPC column]) for every row with a grid."""
    out = []
    for ds in board.suite.datasets:
        for m in board.methods:
            ipcs = ["all"] if board.roles[m] == "full" else board.ipcs
            cells = [(ipc, grid_name(ds, m, ipc)) if (ds, m, ipc) in grids else None for ipc in ipcs]
            if any(cells):
                out.append((ds, m, cells + [None] * (len(board.ipcs) - len(cells))))
    return out


def render_markdown(board: Board, prov: Mapping[str, str], images: Sequence[str], grids: Mapping[tuple[str, str, str], bytes] | None = None) -> str:
    s = board.suite
    parts = [f"# Leaderboard: {s.name}", ""]
    if s.description:
        parts += [s.description, ""]
    parts += ["## How this was made", ""] + [f"- **{k}**: `{v}`" if k == "command" else f"- **{k}**: {v}" for k, v in prov.items()] + [""]
    for title, note, header, rows in tables(board):
        parts += [f"## {title}", "", note, "", _md_table(header, rows), ""]
    parts += ["## Plots", ""] + [f"![{img}]({img})" for img in images] + [""]
    rows = _grid_rows(board, grids or {})
    if rows:
        parts += ["## Distilled images", "", "The set of each row's lowest distillation seed (the run's `synthetic/grid.png`).", ""]
        parts += [_md_table(["dataset", "method"] + [f"IPC {ipc}" for ipc in board.ipcs],
                            [[ds, board.method_label(m)] + [f"![{c[1]}]({c[1]})" if c else "" for c in cells]
                             for ds, m, cells in rows]), ""]  # fmt: skip
    parts += ["## How the numbers are made", "", _how(board), ""]
    stopped = [r for r in board.records if r.tags.get("stopped_early")]
    if stopped:
        parts += ["## Cells stopped early (a bad matching loss; the last good set was kept)", ""]
        parts += [f"- {r.method}/{r.dataset}/ipc{r.ipc}/seed{r.seed}: {r.tags['stopped_early']}" for r in stopped] + [""]
    failed = [r for r in board.records if r.tags.get("status") == tracking.FAILED]
    if failed:
        parts += ["## Failed cells", ""] + [f"- {r.method}/{r.dataset}/ipc{r.ipc}/seed{r.seed}: {r.tags.get('error', '')}" for r in failed] + [""]
    return "\n".join(parts)


RECIPE_TEXT = {
    "classic": "SGD momentum 0.9, x0.1 at half the epochs, DSA",
    "decoupled": "SRe2L/RDED's: AdamW, cosine, random-resized crop + flip, teacher labels, test crop 0.875",
}


def _recipes_text(suite: Suite, methods: list[str]) -> str:
    """Which named evaluation recipe each method ran under, in one phrase."""
    by_method = {m.name: eval_config(suite.eval, m.eval).recipe for m in suite.methods or ()}
    default = eval_config(suite.eval).recipe
    groups: dict[str, list[str]] = {}
    for m in methods:
        groups.setdefault(by_method.get(m, default), []).append(m)
    if len(groups) <= 1:
        name = next(iter(groups), default)
        return f"`{name}` ({RECIPE_TEXT[name]}) for every method"
    return "; ".join(f"`{name}` ({RECIPE_TEXT[name]}) for {', '.join(ms)}" for name, ms in sorted(groups.items()))


def _how(board: Board) -> str:
    s = board.suite
    overrides = [f"{m.name}: {dict(m.eval)}" for m in s.methods or () if m.eval]
    seeds = {m: len(_seeds_for(s, m)) for m in board.methods}
    n = ", ".join(sorted({f"{v}" for v in seeds.values()}))
    return HOW.format(
        k=len(s.eval_seeds),
        eval_seeds=", ".join(map(str, s.eval_seeds)),
        epochs=eval_config(s.eval).epochs,
        recipes=_recipes_text(s, board.methods),
        overrides="; overrides: " + "; ".join(overrides) if overrides else "",
        n=n,
        lam=LRS_LAMBDA,
        full=s.full_method,
        random=s.random_method,
        primary=s.primary_eval_model(),
    )


LOWER_IS_BETTER = ("↓", "rank", " s", "seconds", "MB", "KiB", "spread")
"""Header words of columns where the smallest value is the best."""
SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.title = 'sort'; th.style.cursor = 'pointer';
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = th.getAttribute('data-order') !== 'up';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
      th.setAttribute('data-order', up ? 'up' : 'down');
      function key(row) { var t = row.cells[col].textContent.trim(), n = parseFloat(t); return isNaN(n) ? t : n; }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), c;
        if (typeof x === 'number' && typeof y === 'number') c = x - y;
        else if (typeof x === 'number') c = -1; else if (typeof y === 'number') c = 1;
        else c = String(x).localeCompare(String(y));
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def best_cells(header: Sequence[str], rows: Sequence[Sequence[str]]) -> set[tuple[int, int]]:
    """(row, column) of each numeric column's best entry among the method rows (references left
    out): the highest, or the lowest where the header says lower is better; ties all marked.
    Only tables whose rows are methods or sets (first header ``method`` or ``set``) rank."""
    best: set[tuple[int, int]] = set()
    if not header or header[0] not in ("method", "set"):
        return best
    for j, name in enumerate(header[1:], start=1):
        values = {}
        for i, row in enumerate(rows):
            match = re.match(r"-?\d+(\.\d+)?", row[j]) if j < len(row) else None
            if match and "reference" not in row[0]:
                values[i] = float(match.group())
        if len(values) > 1:
            target = (min if any(w in name for w in LOWER_IS_BETTER) else max)(values.values())
            best |= {(i, j) for i, v in values.items() if v == target}
    return best


def _inline_html(text: str) -> str:
    """Markdown's `code` and **bold** as HTML, everything else escaped."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def _bullets_html(text: str) -> str:
    """A Markdown list of ``- `` items (continuation lines indented) as an HTML list."""
    items: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(line[2:].strip())
        elif line.strip() and items:
            items[-1] += " " + line.strip()
    return "<ul>" + "".join(f"<li>{_inline_html(item)}</li>" for item in items) + "</ul>"


PAGE_STYLE = (
    "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%}"
    "td.best{font-weight:bold;background:#e8f5e9}th[data-order=up]::after{content:' ▲'}th[data-order=down]::after{content:' ▼'}"
    "table.grids img{max-width:320px;image-rendering:pixelated}.note{color:#555}code{background:#f3f3f3;padding:0 2px}</style>"
)


def png_uri(data: bytes) -> str:
    """A PNG as a data URI, so the page needs no file beside it."""
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A sortable table (``SORT_SCRIPT``) with each column's best entry marked (``best_cells``)."""
    h = html.escape
    best = best_cells(header, rows)
    body = "".join("<tr>" + "".join(f"<td class='best'>{h(c)}</td>" if (i, j) in best else f"<td>{h(c)}</td>"
                                    for j, c in enumerate(row)) + "</tr>" for i, row in enumerate(rows))  # fmt: skip
    return f"<table class='sortable'><thead><tr>{''.join(f'<th>{h(c)}</th>' for c in header)}</tr></thead><tbody>{body}</tbody></table>"


def render_html(board: Board, prov: Mapping[str, str], images: Mapping[str, bytes], grids: Mapping[tuple[str, str, str], bytes] | None = None) -> str:
    """One self-contained page: every image inline, the sorting script inline, no external URL."""
    s = board.suite
    h = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>dd-bench leaderboard: {h(s.name)}</title>",
        PAGE_STYLE,
        "</head><body>",
        f"<h1>Leaderboard: {h(s.name)}</h1>",
    ]
    if s.description:
        parts.append(f"<p>{h(s.description)}</p>")
    parts.append("<h2>How this was made</h2><ul>" + "".join(
        f"<li><b>{h(k)}</b>: {f'<code>{h(v)}</code>' if k == 'command' else h(v)}</li>" for k, v in prov.items()) + "</ul>")
    parts.append("<p class='note'>Click a column's header to sort by it; the best entry of each column among the methods"
                 " (references left out) is marked.</p>")
    for title, note, header, rows in tables(board):
        parts.append(f"<h2>{h(title)}</h2><p class='note'>{_inline_html(note)}</p>{html_table(header, rows)}")
    parts.append("<h2>Plots</h2>")
    for name, data in images.items():
        parts.append(f"<p><img alt='{h(name)}' src='{png_uri(data)}'></p>")
    rows = _grid_rows(board, grids or {})
    if rows:
        parts.append("<h2>Distilled images</h2><p class='note'>The set of each row's lowest distillation seed.</p>"
                     "<table class='grids'><thead><tr><th>dataset</th><th>method</th>"
                     + "".join(f"<th>IPC {h(ipc)}</th>" for ipc in board.ipcs) + "</tr></thead><tbody>")  # fmt: skip
        for ds, m, cells in rows:
            tds = "".join(f"<td><img alt='{h(c[1])}' src='{png_uri(grids[(ds, m, c[0])])}'></td>" if c else "<td></td>" for c in cells)
            parts.append(f"<tr><td>{h(ds)}</td><td>{h(board.method_label(m))}</td>{tds}</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>How the numbers are made</h2>" + _bullets_html(_how(board)))
    parts.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _hard_mean(board: Board, ds: str, m: str, ipc: str, model: str) -> float | None:
    """Mean hard-protocol accuracy of a column (complete seeds only), None when not measured."""
    seeds = _seeds_for(board.suite, m)
    cell_ipc = "all" if board.roles[m] == "full" else ipc
    vals = [r.hard_acc(model) for r in board.records if (r.dataset, r.method, r.ipc) == (ds, m, cell_ipc) and r.seed in seeds]
    vals = [v for v in vals if v is not None]
    return statistics.fmean(vals) if vals and len(vals) == len(seeds) else None


def csv_rows(board: Board) -> tuple[list[str], list[list[Any]]]:
    header = [
        "dataset", "method", "role", "ipc", "eval_model", "mean", "std", "n", "expected_n", "complete", "val_mean", "val_std",
        "hlr", "ior", "lrs", "distill_seconds", "cache_build_seconds", "peak_memory_mb", "storage_kib", "mean_rank",
        "labels", "hard_mean", "reported_mean", "reported_std", "reported_where",
    ]  # fmt: skip
    rows = []
    for (ds, m, ipc, model), e in board.acc.items():
        paper = next((r for r in _comparable(board, m) if (r.dataset, str(r.ipc), r.model) == (ds, ipc, model)), None)
        v = board.val[(ds, m, ipc, model)]
        f = board.fairness.get((ds, m, ipc), {})
        c = board.cost.get((ds, m, ipc), {})
        primary = model == board.suite.primary_eval_model()
        rk = board.ranks.get((ds, m), (math.nan, 0))[0]
        val = lambda x: "" if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 4)  # noqa: E731
        rows.append(
            [
                ds, m, board.roles[m], "all" if board.roles[m] == "full" else ipc, model,
                val(e.mean), val(e.std), e.n, e.expected, e.complete, val(v.mean), val(v.std),
                val(f["hlr"].mean) if primary and f else "", val(f["ior"].mean) if primary and f else "",
                val(f["lrs"].mean) if primary and f else "",
                val(c["distill_seconds"].mean) if c else "", val(c["cache_build_seconds"].mean) if c else "",
                val(c["peak_memory_mb"].mean) if c else "",
                val(c["storage_kib"].mean) if c else "", val(rk),
                board.protocols.get(m, "set"), val(_hard_mean(board, ds, m, ipc, model)),
                *((paper.accuracy, val(paper.std), paper.where) if paper and board.roles[m] != "full" else ("", "", "")),
            ]
        )  # fmt: skip
    return header, rows


# ---------------------------------------------------------------------------- plots


def plot_accuracy_vs_ipc(board: Board, caption: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = board.suite
    primary = s.primary_eval_model()
    fig, axes = plt.subplots(1, len(s.datasets), figsize=(6 * len(s.datasets), 4.5), squeeze=False)
    xs = [int(i) for i in board.ipcs]
    for ax, ds in zip(axes[0], s.datasets):
        for m in board.methods:
            entries = [board.acc.get((ds, m, ipc, primary)) for ipc in board.ipcs]
            if board.roles[m] == "full":
                e = entries[0] if entries else None
                if e is not None and e.complete:
                    ax.axhline(e.mean, ls="--", color="k", lw=1, label=f"{m} (whole training set)")
                continue
            pts = [(x, e.mean, 0.0 if math.isnan(e.std) else e.std) for x, e in zip(xs, entries) if e is not None and e.complete]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3, label=m)
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("images per class")
        ax.set_ylabel(f"test accuracy % ({primary})")
        ax.set_title(f"{ds}: accuracy vs IPC")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # no finished entry on this dataset: no legend (and no warning)
            ax.legend(fontsize=8)
    fig.text(0.01, 0.005, caption, fontsize=6, color="#555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _png(fig, caption)


def plot_cross_arch(board: Board, caption: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    s = board.suite
    panels = [(ds, ipc) for ds in s.datasets for ipc in board.ipcs]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 + 1.3 * len(s.eval_models) * len(panels) + 1.5 * len(panels), 0.6 * len(board.methods) + 2.2), squeeze=False)
    for ax, (ds, ipc) in zip(axes[0], panels):
        grid = np.full((len(board.methods), len(s.eval_models)), np.nan)
        for i, m in enumerate(board.methods):
            for j, model in enumerate(s.eval_models):
                e = board.acc.get((ds, m, ipc, model))
                if e is not None and e.complete:
                    grid[i, j] = e.mean
        im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto", vmin=np.nanmin(grid) if np.isfinite(grid).any() else 0, vmax=np.nanmax(grid) if np.isfinite(grid).any() else 100)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, "missing" if np.isnan(grid[i, j]) else f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=8, color="w" if np.isnan(grid[i, j]) or grid[i, j] < np.nanmean(grid) else "k")
        ax.set_xticks(range(len(s.eval_models)), s.eval_models, rotation=30)
        ax.set_yticks(range(len(board.methods)), board.methods)
        ax.set_title(f"{ds}, IPC {ipc} (distilled with {s.distill_model})", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.text(0.01, 0.005, caption, fontsize=6, color="#555")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _png(fig, caption)


def _png(fig: Any, caption: str) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Description": caption, "Software": "dd-bench leaderboard"})
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------- files


def _atomic_write(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        data = data.encode()
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def grid_name(ds: str, m: str, ipc: str) -> str:
    return f"grids/{ds}-{m}-ipc{ipc}.png"


def write(board: Board, out: Path, prov: Mapping[str, str], grids: Mapping[tuple[str, str, str], bytes] | None = None) -> list[Path]:
    """README.md, leaderboard.csv, index.html, the plots and each row's image grids (``grids``:
    (dataset, method, ipc) -> PNG), each written atomically."""
    grids = dict(grids or {})
    out.mkdir(parents=True, exist_ok=True)
    caption = f"dd-bench leaderboard {board.suite.name} · {prov['date']} · {prov['device']} · {prov['command']}"
    images = {"accuracy_vs_ipc.png": plot_accuracy_vs_ipc(board, caption), "cross_architecture.png": plot_cross_arch(board, caption)}
    written = []
    for name, data in images.items():
        _atomic_write(out / name, data)
        written.append(out / name)
    if grids:
        (out / "grids").mkdir(exist_ok=True)
    for key, data in grids.items():
        _atomic_write(out / grid_name(*key), data)
        written.append(out / grid_name(*key))
    _atomic_write(out / "README.md", render_markdown(board, prov, list(images), grids))
    buf = io.StringIO()
    for k, v in prov.items():
        buf.write(f"# {k}: {v}\n")
    header, rows = csv_rows(board)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    _atomic_write(out / "leaderboard.csv", buf.getvalue())
    _atomic_write(out / "index.html", render_html(board, prov, images, grids))
    written += [out / "README.md", out / "leaderboard.csv", out / "index.html"]
    return written


def device_type_of_runs(cell_runs: Sequence[Any], suite: Suite, uri: str, device_type: str | None) -> str:
    """The device type whose runs make the page: the one asked for, else the only one among ``cell_runs``."""
    from .runner import DEVICE_TYPES

    if device_type is not None:
        if device_type not in DEVICE_TYPES:
            raise ConfigError(f"device type {device_type!r} is not allowed: use {' or '.join(DEVICE_TYPES)}")
        return device_type
    found = sorted({r.data.tags.get(f"{tracking.TAG}device_type") for r in cell_runs} - {None})
    if len(found) > 1:
        raise ConfigError(f"suite {suite.name} has runs on {' and '.join(found)} in {uri}: choose one with --device-type")
    return found[0] if found else "cpu"


def make(
    suite: Suite, registry: Any, uri: str | None, out: Path, command: str | None = None, device_type: str | None = None
) -> tuple[Board, list[Path]]:
    """Read the suite's runs on one device type from MLflow and write the leaderboard to ``out``."""
    from .runner import plan
    from .suite import validate

    uri = tracking.normalise_uri(uri)
    tracking.check_reachable(uri)
    suite = validate(suite, registry, check_data=False)
    runs = tracking.runs_table(uri, suite.name)  # read once: device type and records both come from it
    cells = plan(suite, registry, device_type_of_runs(runs[0], suite, uri, device_type))
    board = build(suite, records_from_mlflow(suite, cells, uri, runs))
    board.reported = reported_for(suite, registry)
    command = command or "dd-bench " + " ".join(sys.argv[1:])
    return board, write(board, Path(out), provenance(board, command, uri), grids_from_mlflow(board, uri))


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


__all__ = ["CellRecord", "Entry", "Board", "build", "lrs", "make", "records_from_mlflow", "write", "Iterable"]
