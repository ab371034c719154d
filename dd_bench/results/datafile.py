"""``results.jsonl``: a leaderboard's raw results as data, written beside its page.

MLflow is the working store; the results file is what is published. It holds one JSON record
per line, one per trained evaluation network, sorted so that a rerun diffs cleanly; every
record says everything needed to rebuild the page and to rerun its cell (see :data:`FIELDS`).
A cell none of whose networks finished is one record with no network fields, so a page rebuilt
from the file still shows its cost and its failure. Reading checks every line (whole, JSON, a
record of this format and suite) and merges several files: two different records of one
network (same cell hash, architecture and network seed) are an error naming both places.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .. import tracking
from ..errors import DataError
from ..suite import Suite
from ..synthetic import atomic_write_text
from .provenance import RUN_VERSIONS, from_cwd, numerics
from .records import CellRecord, ipc_order, newest_runs, sorted_records

NAME = "results.jsonl"
FORMAT = 1
"""Each record's ``format``; bumped when a field changes meaning."""

FIELDS = {
    "format": "the file format (this is 1)",
    "suite": "the suite's name",
    "suite_version": "the suite's version",
    "suite_file": "the suite file relative to where the page was written (only when it lay there)",
    "cell": "the cell's id: method/dataset/ipcN/seedS (what `dd-bench verify --cell` takes)",
    "hash": "the cell's config hash (dd_bench.cells.Cell.config_hash)",
    "dataset": "", "method": "the row", "role": "method, random or full", "ipc": "a number or all",
    "seed": "the distillation seed", "device_type": "cpu or cuda (part of the hash)",
    "eval_model": "the evaluation architecture (null: no network of the cell finished)",
    "eval_seed": "the evaluation network's seed",
    "test_acc": "final test accuracy %", "val_acc": "final validation accuracy %",
    "hard_test_acc": "test accuracy % trained on argmax labels (soft-label or teacher cells; else null)",
    "per_class_test_acc": "class name -> test accuracy %",
    "labels": "label protocol (eval.labels)", "recipe": "evaluation recipe (eval.recipe)",
    "distill_seconds": "the cell's", "distill_wall_seconds": "the cell's, when sharded",
    "cache_build_seconds": "the cell's", "peak_memory_mb": "the cell's distillation",
    "synthetic_bytes": "", "storage_bytes": "what the label protocol stores",
    "hard_storage_bytes": "the same under hard labels",
    "eval_seconds": "the architecture's evaluation, all its networks together",
    "device": "", "numerics": "the settings that decide bit-reproducibility",
    "versions": "dd-bench, torch, torchvision, python", "git_sha": "the code the cell ran",
    "imported_sha256": "the published set's files (imported rows; else null)",
    "config": "the cell's resolved config (Cell.resolved())", "tags": "the cell run's dd-bench tags",
}  # fmt: skip
"""Every record's fields, in the order they are written, with what each means."""

NETWORK_FIELDS = ("test_acc", "val_acc", "hard_test_acc", "per_class_test_acc")
"""What a trained network measured: what ``dd-bench verify`` compares."""


def key_of(record: Mapping[str, Any]) -> tuple[str, str, int]:
    """One network (or one cell without networks): cell hash, architecture, network seed."""
    return (record["hash"], record["eval_model"] or "", -1 if record["eval_seed"] is None else record["eval_seed"])


def order_of(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The file's order: readable (dataset, method, IPC, seed, architecture, network seed), then the hash."""
    return (
        record["dataset"],
        record["method"],
        ipc_order(record["ipc"]),
        record["seed"],
        record["device_type"],
        *key_of(record)[1:],
        record["hash"],
    )


def _finite(value: Any) -> Any:
    """JSON has no NaN: a value that is not a number is written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


# ---------------------------------------------------------------------------- from MLflow


def from_mlflow(suite: Suite, cells: Sequence[Any], uri: str, runs: tuple[list[Any], list[Any]]) -> list[dict]:
    """One record per finished evaluation network of the newest run of each planned cell."""
    client = tracking.client(uri)
    suite_file = _suite_file(suite)
    out = []
    for cell, run, done in newest_runs(cells, runs):
        base = _cell_fields(suite_file, cell, tracking.tags_of(run), run.data.metrics)
        if not done:
            out.append({**base, **dict.fromkeys(("eval_model", "eval_seed", *NETWORK_FIELDS))})
        for model, e in done.items():
            m = e.data.metrics

            def history(key: str, run_id: str = e.info.run_id) -> dict[int, float]:
                return {x.step: x.value for x in client.get_metric_history(run_id, key)}

            vals = history("val_acc")  # step i: network seed cell.eval_seeds[i]
            tests = {} if all(f"test_acc_s{s}" in m for s in cell.eval_seeds) else history("test_acc")
            per_class = _per_class(client, e.info.run_id)
            for i, seed in enumerate(cell.eval_seeds):
                out.append(
                    {
                        **base,
                        "eval_model": model,
                        "eval_seed": seed,
                        "test_acc": _finite(m.get(f"test_acc_s{seed}", tests.get(i))),
                        "val_acc": _finite(vals.get(i)),
                        "hard_test_acc": _finite(m.get(f"hard_test_acc_s{seed}")),
                        "per_class_test_acc": per_class.get(seed),
                        "storage_bytes": m.get("storage_bytes"),
                        "hard_storage_bytes": m.get("hard_storage_bytes"),
                        "eval_seconds": m.get("eval_seconds"),
                    }
                )
    return [{k: r.get(k) for k in FIELDS if k in r} for r in sorted(out, key=order_of)]


def _suite_file(suite: Suite) -> str | None:
    """Where the suite file lies relative to the working directory; None when elsewhere (an
    absolute path names a machine, not the suite)."""
    if suite.path is None:
        return None
    rel = from_cwd(str(suite.path))
    return None if Path(rel).is_absolute() else rel


def _cell_fields(suite_file: str | None, cell: Any, tags: Mapping[str, str], metrics: Mapping[str, float]) -> dict:
    config = cell.resolved()
    if "source" in config:  # the published set's place on this machine is no part of the result
        config["source"] = {**config["source"], "path": from_cwd(config["source"]["path"])}
    tags = dict(sorted(tags.items()))
    return {
        "format": FORMAT,
        "suite": cell.suite,
        "suite_version": cell.suite_version,
        **({"suite_file": suite_file} if suite_file else {}),
        "cell": cell.key,
        "hash": cell.config_hash,
        "dataset": cell.dataset,
        "method": cell.method,
        "role": cell.role,
        "ipc": cell.ipc_label,
        "seed": cell.seed,
        "device_type": cell.device_type,
        "labels": str(cell.eval.get("labels", "set")),
        "recipe": cell.eval.get("recipe"),
        **{
            k: _finite(metrics.get(k))
            for k in (
                "distill_seconds",
                "distill_wall_seconds",
                "cache_build_seconds",
                "peak_memory_mb",
                "synthetic_bytes",
            )
        },
        "storage_bytes": None,
        "hard_storage_bytes": None,
        "eval_seconds": None,
        "device": tags.get("device"),
        "numerics": numerics([SimpleNamespace(tags=tags)]),
        "versions": {key: tags.get(key) for _, key in RUN_VERSIONS},
        "git_sha": tags.get("git_sha"),
        "imported_sha256": cell.source.get("sha256") if cell.source is not None else None,
        "config": config,
        "tags": tags,
    }


def _per_class(client: Any, run_id: str) -> dict[int, dict[str, float | None]]:
    """Network seed -> class -> test accuracy, from the eval run's ``per_class.json`` (none for older runs)."""
    from ..tracked_cell import PER_CLASS_ARTIFACT

    with tempfile.TemporaryDirectory(prefix="ddb-per-class-") as tmp:
        try:
            doc = json.loads(Path(client.download_artifacts(run_id, PER_CLASS_ARTIFACT, tmp)).read_text())
        except Exception:  # a run from before the artifact: no per-class figures
            return {}
    return {
        seed: {str(name): _finite(acc) for name, acc in zip(doc["classes"], accs)}
        for seed, accs in zip(doc["eval_seeds"], doc["test_acc"])
    }


# ---------------------------------------------------------------------------- the file


def dumps(records: Iterable[Mapping[str, Any]]) -> str:
    """The file's text: one record a line, in the file's order."""
    lines = [json.dumps(dict(r), ensure_ascii=False, allow_nan=False) for r in sorted(records, key=order_of)]
    return "".join(line + "\n" for line in lines)


def write(records: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write the records to ``path`` atomically (a reader never sees half a file)."""
    atomic_write_text(path, dumps(records))
    return path


def read(path: Path, suite: Suite | None = None) -> list[dict]:
    """Every record of a results file, each checked; ``suite``: the records must be its (name and
    version). Each record remembers where it was read (``_where``, not written back)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable results file ({exc})") from None
    lines = text.split("\n")
    if lines[-1]:
        raise DataError(f"{path} is truncated: its last line ({len(lines)}) does not end the record")
    records = []
    for n, line in enumerate(lines[:-1], 1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path} line {n} is not JSON ({exc})") from None
        if not isinstance(record, dict) or any(k not in record for k in REQUIRED):
            raise DataError(f"{path} line {n} is not a dd-bench results record (it needs {', '.join(REQUIRED)})")
        if record["format"] != FORMAT:
            raise DataError(f"{path} line {n} has format {record['format']!r}: this dd-bench reads format {FORMAT}")
        if suite is not None and (record["suite"], record["suite_version"]) != (suite.name, suite.version):
            raise DataError(
                f"{path} line {n} holds results of suite {record['suite']!r} v{record['suite_version']},"
                f" not {suite.name!r} v{suite.version}"
            )
        records.append({**record, "_where": f"{path} line {n}"})
    if not records:
        raise DataError(f"{path} holds no records")
    return records


REQUIRED = ("format", "suite", "suite_version", "cell", "hash", "dataset", "method", "ipc", "seed", "device_type")
REQUIRED += ("eval_model", "eval_seed", "test_acc", "config", "tags")


def merge(paths: Sequence[Path], suite: Suite | None = None) -> list[dict]:
    """The records of every file, each network once: identical duplicates are one; two that
    differ are an error naming both places and the first field they differ in."""
    seen: dict[tuple[str, str, int], dict] = {}
    for path in paths:
        for record in read(path, suite):
            k = key_of(record)
            old = seen.setdefault(k, record)
            if old is not record and _public(old) != _public(record):
                field = next(f for f in FIELDS if old.get(f) != record.get(f))
                raise DataError(
                    f"{old['_where']} and {record['_where']} hold two different records of cell {record['cell']}"
                    f" ({record['eval_model']}, network seed {record['eval_seed']}): {field} is"
                    f" {_short(old.get(field))} against {_short(record.get(field))}"
                )
    return sorted(seen.values(), key=order_of)


def _public(record: Mapping[str, Any]) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def public(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """The records as they are written (without where each was read)."""
    return [_public(r) for r in records]


# ---------------------------------------------------------------------------- back to cell records


def cell_records(
    suite: Suite, cells: Sequence[Any], records: Sequence[Mapping[str, Any]], where: str
) -> list[CellRecord]:
    """What the leaderboard knows of each planned cell, from its records: the same values the
    MLflow route reads (each architecture's means recomputed from its networks as the
    evaluation computed them), so both routes build the same page."""
    by_hash: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        by_hash.setdefault(r["hash"], []).append(r)
    out = []
    for cell in cells:
        group = by_hash.get(cell.config_hash)
        if not group:
            continue
        first = group[0]
        rec = CellRecord(
            method=cell.method,
            dataset=cell.dataset,
            ipc=cell.ipc_label,
            seed=cell.seed,
            role=cell.role,
            distill_seconds=first["distill_seconds"],
            distill_wall_seconds=first["distill_wall_seconds"],
            peak_memory_mb=first["peak_memory_mb"],
            synthetic_bytes=first["synthetic_bytes"],
            cache_build_seconds=first["cache_build_seconds"],
            tags=dict(first["tags"]),
            labels=str(cell.eval.get("labels", "set")),
        )
        for model in cell.eval_models:
            nets = {r["eval_seed"]: r for r in group if r["eval_model"] == model}
            if not nets:
                continue
            if set(nets) != set(cell.eval_seeds):
                raise DataError(
                    f"{where}: cell {cell.key} on {model} has networks of seeds {sorted(nets)}, not"
                    f" {list(cell.eval_seeds)}: a record is missing"
                )
            ordered = [nets[s] for s in cell.eval_seeds]
            tests = [r["test_acc"] for r in ordered]
            if any(t is None for t in tests):
                continue
            rec.accs[model] = statistics.fmean(tests)  # as evaluate.Summary.mean
            if rec.storage_bytes is None and ordered[0]["storage_bytes"] is not None:
                rec.storage_bytes = ordered[0]["storage_bytes"]
                rec.hard_storage_bytes = ordered[0]["hard_storage_bytes"]
            hard = [r["hard_test_acc"] for r in ordered]
            if all(h is not None for h in hard):
                rec.hard_accs[model] = statistics.fmean(hard)
            vals = [r["val_acc"] for r in ordered]
            if all(v is not None for v in vals):
                rec.val_accs[model] = sum(vals) / len(vals)  # as the runner logs val_acc_mean
        out.append(rec)
    return sorted_records(out)


def device_types(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({r["device_type"] for r in records})
