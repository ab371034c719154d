"""One cell, run and tracked: distil (or import, or reload a saved set), evaluate on every architecture the
suite asks for that has no finished run, and record everything in MLflow. A cell that raises is recorded
as failed with its error and traceback. The executors (``dd_bench.runner``) decide where cells run."""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import tracking
from .cells import Cell, CellResult, jsonable
from .errors import DataError

PER_CLASS_ARTIFACT = "per_class.json"
"""An evaluation run's per-class test accuracies: ``classes``, ``eval_seeds``, ``test_acc`` (per seed, per class)."""


@dataclass(frozen=True)
class RunContext:
    """How cells run: plain data shared by every executor."""

    tracking_uri: str
    experiment: str
    device: str = "auto"
    deterministic: bool = False
    data_root: str | None = None
    download: bool = False
    resolution: int | None = None
    cache_dir: str | None = None
    quiet: bool = False
    suite_path: str | None = None


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak on a GPU, peak RSS of the process on CPU.

    On Linux the RSS high-water mark is reset at the start (``/proc/self/clear_refs``), so
    the figure belongs to the block; elsewhere it is the process's lifetime peak, and
    ``kind`` says so.
    """

    def __init__(self, device: Any):
        self.device = device
        self.kind = "cpu_peak_rss_process_lifetime"

    def __enter__(self) -> PeakMemory:
        import torch

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_max_memory_allocated"
        else:
            from .runtime import release_free_memory

            release_free_memory()  # memory kept by the tuned allocator would count as this block's
            try:
                Path("/proc/self/clear_refs").write_text("5")
                self.kind = "cpu_peak_rss"
            except OSError:
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        self.peak_mb = self.read()

    def read(self) -> float:
        import torch

        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.kind == "cpu_peak_rss":
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_REGISTRY: Any = None
DATA_CACHE: dict[tuple, Any] = {}


def default_registry() -> Any:
    global _REGISTRY
    if _REGISTRY is None:
        from .plugins import Registry

        _REGISTRY = Registry()
    return _REGISTRY


def cell_data(registry: Any, ctx: RunContext, dataset: str, test_crop_pct: float = 1.0) -> Any:
    from . import api

    key = (id(registry), dataset, ctx.data_root, ctx.download, ctx.resolution, test_crop_pct)
    if key not in DATA_CACHE:
        DATA_CACHE[key] = api.load_data(registry, dataset, ctx.data_root, ctx.download, ctx.resolution, test_crop_pct)
    return DATA_CACHE[key]


def say(ctx: RunContext, text: str) -> None:
    if not ctx.quiet:
        print(text, file=sys.stderr, flush=True)


def _identity_tags(cell: Cell, registry: Any, device: Any) -> dict[str, Any]:
    from .runtime import environment

    reg = registry.distillers.get(cell.method)
    env = environment(device)
    return {
        "mlflow.runName": cell.key,
        f"{tracking.TAG}kind": "cell",
        f"{tracking.TAG}suite": cell.suite,
        f"{tracking.TAG}suite_version": cell.suite_version,
        f"{tracking.TAG}hash": cell.config_hash,
        f"{tracking.TAG}method": cell.method,
        f"{tracking.TAG}role": cell.role,
        f"{tracking.TAG}dataset": cell.dataset,
        f"{tracking.TAG}ipc": cell.ipc_label,
        f"{tracking.TAG}seed": cell.seed,
        f"{tracking.TAG}preset": cell.preset,
        f"{tracking.TAG}distill_model": cell.distill_model,
        f"{tracking.TAG}eval_models": ",".join(cell.eval_models),  # a tag: a suite may add architectures later
        f"{tracking.TAG}plugin": reg.plugin if reg else None,
        f"{tracking.TAG}plugin_distribution": reg.distribution if reg else None,
        f"{tracking.TAG}plugin_version": reg.version if reg else None,
        **{f"{tracking.TAG}{k}": v for k, v in env.items()},
    }


def eval_runs_done(c: Any, exp: str, parent: str) -> dict[str, Any]:
    """Finished nested evaluation runs of a cell run, newest per architecture.

    Evaluation runs still RUNNING belong to a process that was killed (the cell run is only
    looked up again by a later run of the suite): they are marked interrupted and KILLED, so
    no run stays RUNNING in the store for ever.
    """
    runs = tracking.search(c, exp, f"tags.`mlflow.parentRunId` = '{parent}'")
    done: dict[str, Any] = {}
    for r in runs:
        t = tracking.tags_of(r)
        if t.get("kind") == "eval" and t.get("status") == tracking.DONE and t.get("eval_model") not in done:
            done[t["eval_model"]] = r
        elif r.info.status == "RUNNING":
            tracking.set_tags(
                c,
                r.info.run_id,
                {f"{tracking.TAG}status": tracking.INTERRUPTED, f"{tracking.TAG}error": "the process was killed"},
            )
            c.set_terminated(r.info.run_id, "KILLED")
    return done


def run_cell(cell: Cell, ctx: RunContext, registry: Any = None) -> CellResult:
    """Run (or skip, or resume) one cell, tracked in MLflow; never raises for a cell's own error."""
    import torch

    from .runtime import resolve_device

    started = time.perf_counter()
    registry = registry if registry is not None else default_registry()
    c = tracking.client(ctx.tracking_uri)
    exp = tracking.experiment_id(c, ctx.experiment, ctx.tracking_uri)
    previous = tracking.search(c, exp, tracking.tag_filter(kind="cell", hash=cell.config_hash))
    run = previous[0] if previous else None
    if run is not None:
        done_evals = eval_runs_done(c, exp, run.info.run_id)
        if tracking.tags_of(run).get("status") == tracking.DONE and set(cell.eval_models) <= set(done_evals):
            accs = {m: r.data.metrics.get("test_acc_mean", float("nan")) for m, r in done_evals.items()}
            return CellResult(cell.key, "skipped", run.info.run_id, accuracies=accs)
        run_id = run.info.run_id
        c.update_run(run_id, status="RUNNING")
        resumed_from = tracking.tags_of(run).get("status")
    else:
        done_evals = {}
        run_id = c.create_run(exp, run_name=cell.key).info.run_id
        resumed_from = None
    try:
        device = resolve_device(ctx.device)
        tracking.set_tags(
            c, run_id, {**_identity_tags(cell, registry, device), f"{tracking.TAG}status": tracking.RUNNING}
        )
        if resumed_from is not None:
            tracking.set_tags(c, run_id, {f"{tracking.TAG}resumed_from": resumed_from})
        tracking.log_params(c, run_id, tracking.flat_params("", _params(cell)))
        result = _run_cell_body(cell, ctx, registry, device, c, exp, run_id, done_evals)
        tracking.set_tags(c, run_id, {f"{tracking.TAG}status": tracking.DONE})
        c.set_terminated(run_id, "FINISHED")
        result.seconds = time.perf_counter() - started
        return result
    except KeyboardInterrupt:
        tracking.set_tags(c, run_id, {f"{tracking.TAG}status": tracking.INTERRUPTED})
        c.set_terminated(run_id, "KILLED")
        raise
    except Exception as exc:  # failure isolation: record it, let the suite go on
        error = f"{type(exc).__name__}: {exc}"
        record_failure(c, run_id, error, traceback.format_exc())
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return CellResult(cell.key, "failed", run_id, error=error, seconds=time.perf_counter() - started)


def record_failure(c: Any, run_id: str, error: str, trace: str) -> None:
    tracking.set_tags(c, run_id, {f"{tracking.TAG}status": tracking.FAILED, f"{tracking.TAG}error": error})
    try:
        tracking.log_text(c, run_id, trace, "error.txt")
    finally:
        c.set_terminated(run_id, "FAILED")


def _params(cell: Cell) -> dict[str, Any]:
    return {
        "method": cell.method,
        "preset": cell.preset,
        "dataset": cell.dataset,
        "ipc": cell.ipc_label,
        "seed": cell.seed,
        "distill_model": cell.distill_model,
        "eval_seeds": ",".join(map(str, cell.eval_seeds)),
        "config_hash": cell.config_hash,
        "shards": cell.shards,
        "suite_version": cell.suite_version,
        "config": dict(cell.config),
        "eval": dict(cell.eval),
    }


def _run_cell_body(
    cell: Cell, ctx: RunContext, registry: Any, device: Any, c: Any, exp: str, run_id: str, done_evals: dict[str, Any]
) -> CellResult:
    import yaml

    from . import api
    from .evaluate import EvalConfig, evaluate
    from .synthetic import CACHE_BUILD_SECONDS, SyntheticSet

    data = cell_data(registry, ctx, cell.dataset)
    metrics = tracking.MetricBuffer(c, run_id)
    with tempfile.TemporaryDirectory(prefix="ddb-cell-") as tmp:
        tmp_path = Path(tmp)
        if tracking.tags_of(c.get_run(run_id)).get("synthetic") == tracking.SAVED:
            say(ctx, f"  {cell.key}: reusing the synthetic set of run {run_id[:8]}")
            syn = SyntheticSet.load(Path(c.download_artifacts(run_id, "synthetic/synthetic.pt", str(tmp_path))))
        else:
            if cell.source is not None:
                from .interchange import import_set

                source = dict(cell.source)
                say(ctx, f"  {cell.key}: importing {source['format']} {source['path']}")
                syn = import_set(
                    source["format"],
                    Path(source["path"]),
                    data,
                    cell.ipc or 1,
                    registry=registry,
                    **{k: source[k] for k in ("experiment", "zca", "normalization", "lr", "method") if k in source},
                )
                if syn.metadata["source"]["sha256"] != source["sha256"]:  # import_set hashed what it read
                    raise DataError(f"{source['path']} changed since the suite was planned: run it again")
                syn = dataclasses.replace(syn, method=cell.method)
                metrics.log_many(
                    {
                        "synthetic_bytes": float(syn.nbytes()),
                        "synthetic_images": float(len(syn)),
                        "soft_labels": float(syn.soft_labels),
                    }
                )
                metrics.flush()
            else:
                say(ctx, f"  {cell.key}: distilling ({cell.distill_model}, {device})")
                with PeakMemory(device) as mem:
                    syn = api.distill(
                        registry,
                        cell.method,
                        data,
                        cell.ipc if cell.ipc is not None else 1,
                        seed=cell.seed,
                        preset=cell.preset,
                        overrides=cell.overrides,
                        device=device,
                        cache_dir=Path(ctx.cache_dir) if ctx.cache_dir else None,
                        model=cell.distill_model,
                        log_metric=metrics.log,
                        progress=not ctx.quiet,
                        resolution=ctx.resolution,
                        shards=cell.shards,
                    )
                metrics.log_many(
                    {
                        "distill_seconds": float(syn.metadata.get("distill_seconds", 0.0)),
                        **(
                            {"distill_wall_seconds": float(syn.metadata["distill_wall_seconds"])}
                            if "shards" in syn.metadata
                            else {}
                        ),
                        "peak_memory_mb": mem.peak_mb,
                        "synthetic_bytes": float(syn.nbytes()),
                        "synthetic_images": float(len(syn)),
                        "soft_labels": float(syn.soft_labels),
                        **(
                            {"cache_build_seconds": float(syn.metadata[CACHE_BUILD_SECONDS])}
                            if CACHE_BUILD_SECONDS in syn.metadata
                            else {}
                        ),
                    }
                )
                metrics.flush()
                stopped = syn.metadata.get("stopped_early")  # a matcher kept its last good set after a bad loss
                tracking.set_tags(
                    c,
                    run_id,
                    {
                        f"{tracking.TAG}memory_kind": mem.kind,
                        f"{tracking.TAG}soft_labels": syn.soft_labels,
                        f"{tracking.TAG}stopped_early": stopped
                        and f"at iteration {stopped['iteration']}, kept iteration {stopped['kept_iteration']}",
                    },
                )
            resolved = {**cell.resolved(), "synthetic_metadata": jsonable(_safe_metadata(syn.metadata))}
            (tmp_path / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
            c.log_artifact(run_id, str(tmp_path / "config.yaml"))
            syn.save(tmp_path / "synthetic.pt")
            syn.save_grid(tmp_path / "grid.png")
            c.log_artifact(run_id, str(tmp_path / "synthetic.pt"), "synthetic")
            c.log_artifact(run_id, str(tmp_path / "grid.png"), "synthetic")
            tracking.set_tags(
                c, run_id, {f"{tracking.TAG}status": tracking.DISTILLED, f"{tracking.TAG}synthetic": tracking.SAVED}
            )

    config = EvalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cell.eval.items()})
    if config.test_crop_pct != 1.0:  # the same training split, the test images cropped as the recipe says
        data = cell_data(registry, ctx, cell.dataset, config.test_crop_pct)
    accs: dict[str, float] = {m: r.data.metrics.get("test_acc_mean", float("nan")) for m, r in done_evals.items()}
    teacher = None
    if config.labels == "teacher" and any(m not in done_evals for m in cell.eval_models):
        teacher = api.eval_teacher(
            registry, syn, data, config, Path(ctx.cache_dir) if ctx.cache_dir else None, device, not ctx.quiet
        )
        say(ctx, f"  {cell.key}: teacher {teacher.recipe.model} {teacher.key} (val {teacher.val_acc:.2f}%)")
        tracking.set_tags(c, run_id, {f"{tracking.TAG}teacher": teacher.key})
        metrics.log_many({"teacher_val_acc": teacher.val_acc, "teacher_bytes": float(teacher.nbytes)})
        metrics.flush()
    storage = protocol_bytes(syn, config.labels, teacher)
    for model_name in cell.eval_models:
        if model_name in done_evals:
            continue
        spec = registry.model(model_name)
        child = c.create_run(
            exp,
            run_name=f"{cell.key}/{model_name}",
            tags={
                "mlflow.parentRunId": run_id,
                f"{tracking.TAG}kind": "eval",
                f"{tracking.TAG}suite": cell.suite,
                f"{tracking.TAG}hash": cell.config_hash,
                f"{tracking.TAG}method": cell.method,
                f"{tracking.TAG}dataset": cell.dataset,
                f"{tracking.TAG}ipc": cell.ipc_label,
                f"{tracking.TAG}seed": str(cell.seed),
                f"{tracking.TAG}eval_model": model_name,
                f"{tracking.TAG}labels": config.labels,
                f"{tracking.TAG}status": tracking.RUNNING,
            },
        ).info.run_id
        try:
            t0 = time.perf_counter()
            say(ctx, f"  {cell.key}: evaluating {model_name} x {len(cell.eval_seeds)} seeds, {config.epochs} epochs")
            tracking.log_params(
                c,
                child,
                tracking.flat_params(
                    "",
                    {
                        "eval_model": model_name,
                        "eval_seeds": ",".join(map(str, cell.eval_seeds)),
                        "eval": dict(cell.eval),
                    },
                ),
            )
            report = evaluate(syn, data, [(model_name, spec)], cell.eval_seeds, config, device, teacher=teacher)
            s = report.results[model_name]
            buf = tracking.MetricBuffer(c, child)
            for step, (seed, acc, val) in enumerate(zip(cell.eval_seeds, s.accs, s.val_accs)):
                buf.log("test_acc", acc, step)
                buf.log("val_acc", val, step)
                buf.log(f"test_acc_s{seed}", acc)
            buf.log_many(
                {
                    "test_acc_mean": s.mean,
                    "test_acc_std": s.std,
                    "test_acc_n": s.n,
                    "val_acc_mean": sum(s.val_accs) / len(s.val_accs),
                }
            )
            buf.log_many(
                {"storage_bytes": float(storage), "hard_storage_bytes": float(protocol_bytes(syn, "hard", None))}
            )
            tracking.log_text(
                c,
                child,
                json.dumps(
                    {
                        "classes": list(data.classes),
                        "eval_seeds": list(cell.eval_seeds),
                        "test_acc": s.to_dict()["class_accs"],
                    }
                ),
                PER_CLASS_ARTIFACT,
            )
            if config.labels == "teacher" or (config.labels == "set" and syn.soft_labels):
                # the hard-label accuracy that HLR needs, and the method's row under `hard`
                hard = dataclasses.replace(syn, labels=syn.hard_labels(), metadata=dict(syn.metadata))
                hard_config = dataclasses.replace(config, labels="hard")
                h = evaluate(hard, data, [(model_name, spec)], cell.eval_seeds, hard_config, device).results[model_name]
                for seed, acc in zip(cell.eval_seeds, h.accs):
                    buf.log(f"hard_test_acc_s{seed}", acc)
                buf.log("hard_test_acc_mean", h.mean)
            buf.log("eval_seconds", time.perf_counter() - t0)
            buf.flush()
            metrics.log_many({f"acc.{model_name}.mean": s.mean, f"acc.{model_name}.std": s.std})
            metrics.flush()
            tracking.set_tags(c, child, {f"{tracking.TAG}status": tracking.DONE})
            c.set_terminated(child, "FINISHED")
            accs[model_name] = s.mean
            say(ctx, f"  {cell.key}: {model_name} {s.mean:.2f} ± {s.std:.2f} (n={s.n})")
        except BaseException as exc:
            status = tracking.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else tracking.FAILED
            tracking.set_tags(
                c, child, {f"{tracking.TAG}status": status, f"{tracking.TAG}error": f"{type(exc).__name__}: {exc}"}
            )
            c.set_terminated(child, "KILLED" if status == tracking.INTERRUPTED else "FAILED")
            raise
    return CellResult(cell.key, "done", run_id, accuracies=accs)


def protocol_bytes(syn: Any, labels: str, teacher: Any) -> int:
    """Storage a label protocol needs: images, weights and lr always; then class indices
    (``hard``), the set's labels (``set``: soft labels cost N x K floats), or the teacher's
    parameters and buffers instead of labels (``teacher``)."""
    label_bytes = syn.labels.numel() * syn.labels.element_size()
    base = syn.nbytes() - label_bytes
    if labels == "hard":
        return base + syn.images.shape[0] * 8
    if labels == "teacher":
        return base + (teacher.nbytes if teacher is not None else 0)
    return base + label_bytes


def _safe_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata fit for a YAML file: long lists (e.g. indices) are summarised."""
    out = {}
    for k, v in meta.items():
        if isinstance(v, (list, tuple)) and len(v) > 50:
            out[k] = f"<{len(v)} items>"
        elif isinstance(v, (str, int, float, bool, type(None), list, tuple, dict)):
            out[k] = v
        else:
            out[k] = repr(v)
    return out
