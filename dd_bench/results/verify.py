"""``dd-bench verify``: rerun a committed page's cells at HEAD and compare every network with its record.

Each chosen cell runs from scratch through the normal runner, into a fresh MLflow store and a
fresh cache in a temporary folder, and is read back as results records exactly as
``dd-bench leaderboard`` writes them; then each committed network is compared with the new one.
A CPU run is deterministic, so its accuracies must be bit-identical; a GPU run is not, so it
may differ by a stated tolerance (``--tolerance`` sets one for every cell). Verdicts go to
stdout, one line a cell and a summary; the runner's progress goes to stderr.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .. import tracking
from ..errors import DataError
from . import datafile

GPU_TOLERANCE = 2.0
"""Points of accuracy a rerun on a GPU may differ by, per network (cuDNN and atomics are not deterministic)."""


def choose(records: Sequence[Mapping[str, Any]], count: int | None, ids: Sequence[str], where: str) -> list[str]:
    """The cell ids to verify: those named (each must be in the file), else the ``count`` cheapest
    (recorded distillation + evaluation seconds), one per method first so that ``count`` cells
    cover ``count`` methods where they can, ties broken by id; else every cell."""
    known = sorted({r["cell"] for r in records})
    if ids:
        missing = [i for i in ids if i not in known]
        if missing:
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            raise DataError(f"{where} has no cell {missing[0]!r} (its cells: {shown})")
        return list(dict.fromkeys(ids))
    if count is None:
        return known
    known = sorted(
        {r["cell"] for r in records if r["eval_model"] is not None}
    )  # a cell that trained nothing shows nothing
    cost: dict[str, float] = {}
    method: dict[str, str] = {}
    for r in records:
        if r["cell"] not in cost:
            cost[r["cell"]] = r["distill_seconds"] or 0.0
        method[r["cell"]] = r["method"]
    seen_evals = set()
    for r in records:
        k = (r["cell"], r["hash"], r["eval_model"])
        if r["eval_model"] is not None and k not in seen_evals:
            seen_evals.add(k)
            cost[r["cell"]] += r["eval_seconds"] or 0.0
    by_cost = sorted(known, key=lambda c: (cost[c], c))
    firsts, rest, methods = [], [], set()
    for c in by_cost:
        (rest if method[c] in methods else firsts).append(c)
        methods.add(method[c])
    return (firsts + rest)[:count]


def differences(old: Mapping[str, Any], new: Mapping[str, Any], tolerance: float) -> list[str]:
    """How a rerun network differs from its record: in any bit, or (``tolerance`` > 0) by more than
    ``tolerance`` points in test, validation or hard-label accuracy (per-class figures, a few test
    images each, are then left out)."""
    out = []
    for field in datafile.NETWORK_FIELDS if tolerance == 0 else datafile.NETWORK_FIELDS[:-1]:
        a, b = old.get(field), new.get(field)
        if isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b):
            bad = [k for k in a if not _close(a[k], b[k], tolerance)]
            if bad:
                out.append(f"{field}[{bad[0]}] {a[bad[0]]} -> {b[bad[0]]}")
        elif not _close(a, b, tolerance):
            out.append(f"{field} {a} -> {b}")
    return out


def _close(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (tolerance > 0 and math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance)
    return a == b


def verify(
    folder: Path,
    *,
    count: int | None = None,
    ids: Sequence[str] = (),
    tolerance: float | None = None,
    suite_name: str | None = None,
    data_root: str | None = None,
    registry: Any = None,
    out: TextIO | None = None,
) -> int:
    """Rerun the chosen cells of ``folder/results.jsonl`` at HEAD and compare; 0 when every
    network matches, 1 otherwise. Bad input (no results file, an unknown cell id) raises DataError
    before anything runs."""
    import dataclasses

    from ..cells import plan
    from ..plugins import Registry
    from ..runner import run_suite
    from ..suite import load_suite, validate

    out = out or sys.stdout
    path = Path(folder) / datafile.NAME
    if not Path(folder).is_dir():
        raise DataError(f"{folder}: no such leaderboard folder")
    if not path.exists():
        raise DataError(f"{folder} has no {datafile.NAME}: write it with dd-bench leaderboard SUITE --out {folder}")
    suite = load_suite(suite_name or _suite_source(datafile.read(path)[0]))
    records = datafile.read(path, suite)  # every record of this suite and version
    chosen = choose(records, count, ids, str(path))
    if data_root:
        suite = dataclasses.replace(suite, data_root=data_root)
    registry = registry if registry is not None else Registry()
    suite = validate(suite, registry, check_data=False)
    by_cell: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        by_cell.setdefault(r["cell"], []).append(r)
    git = _head()
    say(f"verifying {len(chosen)} of {len(by_cell)} cells of {path} at {git[:12]}: each rerun from scratch")
    verdicts: list[bool] = []

    def verdict(ok: bool, line: str) -> None:
        verdicts.append(ok)
        print(line, file=out, flush=True)

    with tempfile.TemporaryDirectory(prefix="ddb-verify-") as tmp:
        uri = f"sqlite:///{Path(tmp).resolve() / 'mlflow.db'}"
        for i, cell_id in enumerate(chosen, 1):
            committed = by_cell[cell_id]
            device_type = committed[0]["device_type"]
            tol = tolerance if tolerance is not None else (0.0 if device_type == "cpu" else GPU_TOLERANCE)
            cells = {c.config_hash: c for c in plan(suite, registry, device_type) if c.key == cell_id}
            say(f"[{i}/{len(chosen)}] {cell_id} ({device_type}): rerunning")
            if committed[0]["hash"] not in cells:
                now = ", ".join(cells) or "none"
                verdict(
                    False, f"MISMATCH {cell_id}: the suite at HEAD plans it with hash {now}, not {committed[0]['hash']}"
                )
                continue
            c = committed[0]
            result = run_suite(
                suite,
                registry=registry,
                tracking_uri=uri,
                only=[f"method={c['method']}", f"dataset={c['dataset']}", f"ipc={c['ipc']}", f"seed={c['seed']}"],
                device=device_type,
                deterministic=committed[0]["tags"].get("deterministic") == "True",
                cache_dir=str(Path(tmp) / "cache"),
            )
            fresh = {
                datafile.key_of(r): json.loads(json.dumps(r))  # as the file holds it
                for r in datafile.from_mlflow(suite, list(cells.values()), uri, tracking.runs_table(uri, suite.name))
            }
            failed = [r.error for r in result.results if r.status == "failed"]
            verdict(*_verdict(cell_id, committed, fresh, tol, device_type, failed))
    bad = verdicts.count(False)
    print(
        f"{len(verdicts) - bad} of {len(verdicts)} cells match {path} at {git[:12]}"
        + (f"; {bad} mismatch" if bad else ""),
        file=out,
    )
    return 1 if bad else 0


def _verdict(
    cell_id: str,
    committed: Sequence[Mapping[str, Any]],
    fresh: Mapping[tuple[str, str, int], Mapping[str, Any]],
    tol: float,
    device_type: str,
    failed: Sequence[str | None],
) -> tuple[bool, str]:
    how = "bit-identical" if tol == 0 else f"within {tol:g} points, per-class not compared"
    if failed:
        return False, f"MISMATCH {cell_id}: the rerun failed ({failed[0]})"
    if all(r["eval_model"] is None for r in committed):
        if fresh:
            return False, f"MISMATCH {cell_id}: the file says no network finished; the rerun trained {len(fresh)}"
        committed = []
    for r in committed:
        new = fresh.get(datafile.key_of(r))
        if new is None:
            return False, f"MISMATCH {cell_id}: the rerun has no network {r['eval_model']} seed {r['eval_seed']}"
        diff = differences(r, new, tol)
        if diff:
            return False, (
                f"MISMATCH {cell_id} {r['eval_model']} network seed {r['eval_seed']}: {diff[0]}"
                f" (committed -> HEAD; {device_type}: {how} required)"
            )
    extra = len(fresh) - len(committed)
    if extra:
        return False, f"MISMATCH {cell_id}: the rerun trained {extra} network(s) the file does not hold"
    return True, f"match    {cell_id}: {len(committed)} network(s), {how} ({device_type})"


def _suite_source(record: Mapping[str, Any]) -> str:
    """The suite of a record: its file where it lies relative to here, else its name."""
    file = record.get("suite_file")
    return file if file and Path(file).is_file() else record["suite"]


def _head() -> str:
    from ..runtime import git_sha

    return git_sha() or "unknown"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
