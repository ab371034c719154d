"""What a leaderboard knows of each cell, read back from MLflow.

A leaderboard never looks at a synthetic set or a network: everything it shows comes from the
runs the runner tracked. This module is the one place that knows how those runs are laid out
(a cell run per cell, tagged with its config hash; a nested evaluation run per architecture),
so the board, the tables and the pages work on plain :class:`CellRecord` values and can be
tested without a tracking store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import tracking
from ..cells import DEVICE_TYPES
from ..errors import ConfigError, DataError
from ..suite import Suite


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


def newest_runs(cells: Sequence[Any], runs: tuple[list[Any], list[Any]]) -> list[tuple[Any, Any, dict[str, Any]]]:
    """(planned cell, its newest cell run, eval_model -> newest finished eval run) of each planned
    cell that has a run; ``runs`` are the suite's (cell runs, eval runs) from ``tracking.runs_table``."""
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
        done = {m: evals[(run.info.run_id, m)] for m in cell.eval_models if (run.info.run_id, m) in evals}
        out.append((cell, run, done))
    return out


def sorted_records(records: Sequence[CellRecord]) -> list[CellRecord]:
    """Cell records in one order whatever store or file they came from, so pages built from
    either list the same cells in the same order (and sum the same floats in the same order)."""
    return sorted(records, key=lambda r: (r.dataset, r.method, ipc_order(r.ipc), r.seed))


def ipc_order(ipc: str) -> tuple[int, str]:
    """IPCs by number, ``all`` (the whole training set) last."""
    return (int(ipc), "") if ipc.isdigit() else (1 << 62, ipc)


def records_from_mlflow(
    suite: Suite, cells: Sequence[Any], uri: str, runs: tuple[list[Any], list[Any]]
) -> list[CellRecord]:
    """The newest run of each planned cell (by config hash), with its finished evaluations;
    ``runs`` are the suite's (cell runs, eval runs) read from ``uri`` by ``tracking.runs_table``.

    Raises DataError when no planned cell has a finished evaluation: a page of nothing but
    missing entries would only hide a wrong store or a suite that never ran.
    """
    out = []
    for cell, run, done in newest_runs(cells, runs):
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
            e = done.get(model)
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
        raise no_runs(suite, uri)
    return sorted_records(out)


def no_runs(suite: Suite, where: str) -> DataError:
    """The error of a page with no finished cell to show."""
    return DataError(
        f"no finished runs of suite {suite.name!r} in {where}: run it first"
        f" (dd-bench run {suite.path or suite.name}), or pass the --tracking-uri it ran with"
    )


def device_type_of_runs(cell_runs: Sequence[Any], suite: Suite, uri: str, device_type: str | None) -> str:
    """The device type whose runs make the page: the one asked for, else the only one among ``cell_runs``."""
    found = {r.data.tags.get(f"{tracking.TAG}device_type") for r in cell_runs} - {None}
    return choose_device_type(found, suite, uri, device_type)


def choose_device_type(found: set[str], suite: Suite, where: str, device_type: str | None) -> str:
    """The device type asked for, else the only one ``found`` in ``where`` (cpu when none)."""
    if device_type is not None:
        if device_type not in DEVICE_TYPES:
            raise ConfigError(f"device type {device_type!r} is not allowed: use {' or '.join(DEVICE_TYPES)}")
        return device_type
    if len(found) > 1:
        raise ConfigError(
            f"suite {suite.name} has runs on {' and '.join(sorted(found))} in {where}: choose one with --device-type"
        )
    return next(iter(found), "cpu")
