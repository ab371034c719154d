"""The board: a suite's cells aggregated into entries, DD-Ranking scores, costs and ranks.

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

The board is numbers only: what the tables, pages and plots show is decided elsewhere, so
the aggregation can be tested on hand-made records.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..suite import Suite, eval_config
from .records import CellRecord

LRS_LAMBDA = 0.5


def lrs(hlr: float, ior: float, lam: float = LRS_LAMBDA) -> float:
    """Label-robust score in [0, 100] for HLR and IOR given in percentage points."""
    a = (lam * ior - (1 - lam) * hlr) / 100.0
    return 100.0 * (math.exp(a) - math.exp(-1)) / (math.exp(1) - math.exp(-1))


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


def seeds_for(suite: Suite, method: str) -> tuple[int, ...]:
    for entry in suite.methods or ():
        if entry.name == method:
            return (0,) if entry.source is not None else entry.seeds or suite.seeds  # a published set: one cell
    return suite.seeds


def ipcs_for(suite: Suite, method: str) -> list[str]:
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


def protocols_of(suite: Suite) -> dict[str, str]:
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
    protocols = protocols_of(suite)
    refs = [r for r in (suite.random_method, suite.full_method) if r in names]
    methods = [m for m in names if m not in refs] + refs
    roles = {
        m: ("random" if m == suite.random_method else "full" if m == suite.full_method else "method") for m in names
    }
    ipcs = sorted({str(i) for m in names if roles[m] != "full" for i in ipcs_for(suite, m)}, key=int)
    by: dict[tuple[str, str, str], dict[int, CellRecord]] = defaultdict(dict)
    for r in records:
        by[(r.dataset, r.method, r.ipc)][r.seed] = r

    def per_seed(ds: str, m: str, ipc: str, get: Any) -> Entry:
        seeds = seeds_for(suite, m)
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
                if roles[m] != "full" and ipc not in ipcs_for(suite, m):
                    continue
                for model in suite.eval_models:
                    acc[(ds, m, ipc, model)] = per_seed(ds, m, ipc, lambda r, model=model: r.accs.get(model))
                    val[(ds, m, ipc, model)] = per_seed(ds, m, ipc, lambda r, model=model: r.val_accs.get(model))
                cost[(ds, m, ipc)] = {
                    "distill_seconds": per_seed(ds, m, ipc, lambda r: r.distill_seconds),
                    "distill_wall_seconds": per_seed(ds, m, ipc, _wall_seconds),
                    "cache_build_seconds": per_seed(ds, m, ipc, lambda r: r.cache_build_seconds),
                    "peak_memory_mb": per_seed(ds, m, ipc, lambda r: r.peak_memory_mb),
                    "storage_kib": per_seed(ds, m, ipc, _storage_kib),
                }

    primary = suite.primary_eval_model()
    fairness: dict[tuple[str, str, str], dict[str, Entry]] = {}
    label_effect: dict[tuple[str, str, str], dict[str, Entry]] = {}
    for ds in suite.datasets:
        for ipc in ipcs:
            full_m, rnd_m = suite.full_method or "", suite.random_method or ""
            full = per_seed(ds, full_m, ipc, lambda r: r.hard_acc(primary)) if full_m in roles else None
            rnd_hard = per_seed(ds, rnd_m, ipc, lambda r: r.hard_acc(primary)) if rnd_m in roles else None
            rnd_teacher = (
                per_seed(ds, rnd_m, ipc, lambda r: r.accs.get(primary) if r.labels == "teacher" else None)
                if rnd_m in roles
                else None
            )
            rnd_keys = {r.tags.get("teacher") for r in by.get((ds, rnd_m, ipc), {}).values()}
            for m in methods:
                if roles[m] == "full" or (ds, m, ipc, primary) not in acc:
                    continue
                label_effect[(ds, m, ipc)] = {
                    "hard": per_seed(ds, m, ipc, lambda r: r.hard_acc(primary)),
                    "own": per_seed(ds, m, ipc, lambda r: r.accs.get(primary)),
                    "gain": per_seed(ds, m, ipc, lambda r: _label_gain(r, primary)),
                    "hard_kib": per_seed(ds, m, ipc, lambda r: _kib(r.hard_storage_bytes)),
                    "own_kib": per_seed(ds, m, ipc, lambda r: _kib(r.storage_bytes)),
                }
                teacher_row = protocols.get(m) == "teacher"
                rnd = rnd_teacher if teacher_row else rnd_hard
                seeds = seeds_for(suite, m)
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
                refs_done = full is not None and rnd is not None and full.complete and rnd.complete
                expected = len(seeds) if refs_done else len(seeds) + 1
                fairness[(ds, m, ipc)] = {
                    "hlr": Entry(hlr, expected),
                    "ior": Entry(ior, expected),
                    "lrs": Entry(score, expected),
                }

    ranks: dict[tuple[str, str], tuple[float, int]] = {}
    for ds in suite.datasets:
        collected: dict[str, list[float]] = defaultdict(list)
        for ipc in ipcs:
            for model in suite.eval_models:
                col = {
                    m: acc[(ds, m, ipc, model)].mean
                    for m in methods
                    if roles[m] != "full" and (ds, m, ipc, model) in acc
                }
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


def _label_gain(r: CellRecord, model: str) -> float | None:
    """What the cell's own labels add over hard labels on ``model``, None when either is not measured."""
    hard = r.hard_acc(model)
    return None if hard is None or model not in r.accs else r.accs[model] - hard


def _storage_kib(r: CellRecord) -> float | None:
    """What the cell's protocol stores, else (older runs) the set's own bytes, in KiB."""
    return _kib(r.storage_bytes if r.storage_bytes is not None else r.synthetic_bytes)


def _wall_seconds(r: CellRecord) -> float | None:
    """A sharded cell's wall time; a whole cell's distillation time."""
    return r.distill_seconds if r.distill_wall_seconds is None else r.distill_wall_seconds


def hard_mean(board: Board, ds: str, m: str, ipc: str, model: str) -> float | None:
    """Mean hard-protocol accuracy of a column (complete seeds only), None when not measured."""
    seeds = seeds_for(board.suite, m)
    cell_ipc = "all" if board.roles[m] == "full" else ipc
    vals = [
        r.hard_acc(model)
        for r in board.records
        if (r.dataset, r.method, r.ipc) == (ds, m, cell_ipc) and r.seed in seeds
    ]
    vals = [v for v in vals if v is not None]
    return statistics.fmean(vals) if vals and len(vals) == len(seeds) else None
