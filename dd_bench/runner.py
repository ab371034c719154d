"""From a validated suite to tracked cells: plan, skip, resume, isolate failures, execute (one cell's run
is ``dd_bench.tracked_cell``; the executors and ``run_suite`` are here).

A *cell* is one distillation: method x dataset x IPC x seed (the upper reference ignores
IPC: one cell per dataset x seed). The cell's seed seeds the distillation; the cell then
trains ``eval_seeds`` fresh networks (seeds 0..k-1, the same in every cell) per evaluation
architecture, each in a nested MLflow run.

Each cell has a *config hash* over everything that decides its result (suite version,
method, its resolved config, dataset, IPC, seed, distillation architecture, the resolved
evaluation config and eval seeds). Evaluation architectures are not in the hash: a run of
a cell is finished when every architecture the suite asks for has a finished nested run,
so adding an architecture to a suite evaluates only the new one.

Re-running a suite skips finished cells, resumes interrupted or failed ones (the
synthetic set is reloaded from the run's artifacts when it was saved; finished
architectures are kept) and starts the rest. A cell that raises is recorded as failed with
its error and traceback, and the suite goes on.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import tracking
from .cells import Cell, CellResult, parse_only, plan, select
from .errors import ConfigError, DDBenchError
from .suite import Suite
from .tracked_cell import DATA_CACHE, RunContext, cell_data, default_registry, record_failure, run_cell, say

# ---------------------------------------------------------------------------- executors


def run_local(
    cells: Sequence[Cell],
    ctx: RunContext,
    registry: Any = None,
    on_result: Callable[[Cell, CellResult], None] | None = None,
) -> list[CellResult]:
    """One cell after another in this process."""
    results = []
    for i, cell in enumerate(cells, 1):
        say(ctx, f"[{i}/{len(cells)}] {cell.key}")
        result = run_cell(cell, ctx, registry)
        results.append(result)
        if on_result:
            on_result(cell, result)
    return results


def _ray_cell(cell: Cell, ctx: RunContext, threads: int, *shards_done: Any) -> CellResult:  # runs in a Ray worker
    """A cell in a Ray worker: its device is checked here, not on the driver, and Ray's
    ``OMP_NUM_THREADS=1`` is replaced by the CPUs the task reserved. ``shards_done``: the
    results of its shard tasks (Ray starts the cell only once they are in; it merges them)."""
    _ray_worker_setup(ctx, threads)
    return run_cell(cell, ctx)


def _ray_shard(cell: Cell, ctx: RunContext, threads: int, index: int) -> str:  # runs in a Ray worker
    """Shard ``index`` of a cell distilled into the cache, where the cell's merge finds it."""
    from . import api
    from .runtime import resolve_device

    _ray_worker_setup(ctx, threads)
    registry = default_registry()
    data = cell_data(registry, ctx, cell.dataset)
    path = api.distill_shard(
        registry,
        cell.method,
        data,
        cell.ipc if cell.ipc is not None else 1,
        index,
        cell.shards,
        seed=cell.seed,
        preset=cell.preset,
        overrides=cell.overrides,
        device=resolve_device(ctx.device),
        cache_dir=Path(ctx.cache_dir) if ctx.cache_dir else None,
        model=cell.distill_model,
        progress=not ctx.quiet,
    )
    return str(path)


def _ray_worker_setup(ctx: RunContext, threads: int) -> None:
    import torch

    from .runtime import set_deterministic

    torch.set_num_threads(threads)
    if ctx.deterministic:
        set_deterministic(True)


def _set_saved(cell: Cell, ctx: RunContext) -> bool:
    """Whether a cell's set is already in the store (its shards need not run)."""
    c = tracking.client(ctx.tracking_uri)
    runs = tracking.search(
        c,
        tracking.experiment_id(c, ctx.experiment, ctx.tracking_uri),
        tracking.tag_filter(kind="cell", hash=cell.config_hash),
    )
    return bool(runs) and tracking.tags_of(runs[0]).get("synthetic") == tracking.SAVED


def ray_device_type(device: str, cluster_gpus: float) -> str:
    """The device type cells get on a Ray cluster: ``cuda`` when asked for (or ``auto``) and the cluster has GPUs."""
    from .runtime import parse_device

    parsed = parse_device(device)
    if parsed is None:
        return "cuda" if cluster_gpus else "cpu"
    if parsed.type == "cuda" and not cluster_gpus:
        raise ConfigError(f"device={device!r} asked for, but the Ray cluster has no GPUs: use --device cpu or auto")
    return parsed.type


def run_ray(
    cells: Sequence[Cell],
    ctx: RunContext,
    address: str | None = None,
    on_result: Callable[[Cell, CellResult], None] | None = None,
    num_cpus: int | None = None,
    cpus_per_task: int | None = None,
) -> list[CellResult]:
    """Every cell as a Ray task: one GPU per task when the cells run on CUDA, none for ``--device cpu``.

    ``address=None`` joins a running cluster if ``RAY_ADDRESS`` names one, else starts a
    local Ray instance. Workers build their own registry from the installed plugins, so
    every node needs dd-bench and the suite's plugins installed, and a tracking URI they
    can all reach (a server, or a SQLite file on shared storage). A GPU task reserves the
    cluster's CPUs per GPU (``cpus_per_task`` overrides), a CPU task one CPU; each uses as
    many threads as it reserved. The cells' device type is set here from the cluster.
    """
    if cpus_per_task is not None and cpus_per_task < 1:
        raise ConfigError(f"ray cpus_per_task={cpus_per_task} is not allowed: use an integer >= 1")
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'dd-bench[ray]'") from None
    if tracking.sqlite_path(ctx.tracking_uri) is not None and address not in (None, "local"):
        say(ctx, "warning: a SQLite tracking store must be on storage every Ray node shares; prefer a tracking server")
    own = not ray.is_initialized()
    if own:
        kwargs: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": not ctx.quiet}
        if num_cpus is not None and address in (None, "local"):
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
    try:
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        device_type = ray_device_type(ctx.device, gpus)
        on_gpu = device_type == "cuda"
        threads = cpus_per_task or (max(1, int(resources.get("CPU", 1) // gpus)) if on_gpu else 1)
        most = max((cell.shards for cell in cells), default=1)
        if on_gpu and most > gpus:
            raise ConfigError(
                f"shards={most} is not allowed on this Ray cluster: it has {int(gpus)} GPUs and a shard takes one;"
                f" use shards <= {int(gpus)} or a larger cluster"
            )
        worker_ctx = dataclasses.replace(ctx, device=device_type)  # a worker sees its one GPU as cuda
        cells = [dataclasses.replace(cell, device_type=device_type) for cell in cells]
        options = {"num_cpus": threads, "num_gpus": 1 if on_gpu else 0, "max_retries": 0}
        task, shard_task = ray.remote(**options)(_ray_cell), ray.remote(**options)(_ray_shard)
        pending = {}
        for cell in cells:
            shard_refs = (
                [shard_task.remote(cell, worker_ctx, threads, i) for i in range(cell.shards)]
                if cell.shards > 1 and not _set_saved(cell, ctx)
                else []
            )
            pending[task.remote(cell, worker_ctx, threads, *shard_refs)] = cell
        say(
            ctx,
            f"submitted {len(pending)} cells to Ray ({device_type}: {1 if on_gpu else 0} GPU and {threads} CPUs per task; cluster {int(gpus)} GPUs)",
        )
        results: dict[str, CellResult] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died: record it from here
                    result = CellResult(cell.key, "failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
                    _record_lost_cell(cell, ctx, result.error or "")
                results[cell.key] = result
                say(ctx, f"[{len(results)}/{len(cells)}] {cell.key}: {result.status}")
                if on_result:
                    on_result(cell, result)
        return [results[c.key] for c in cells]
    finally:
        if own:
            ray.shutdown()


def _record_lost_cell(cell: Cell, ctx: RunContext, error: str) -> None:
    c = tracking.client(ctx.tracking_uri)
    exp = tracking.experiment_id(c, ctx.experiment, ctx.tracking_uri)
    runs = tracking.search(c, exp, tracking.tag_filter(kind="cell", hash=cell.config_hash))
    if runs and runs[0].info.status == "RUNNING":
        record_failure(c, runs[0].info.run_id, error, error)


# ---------------------------------------------------------------------------- suite


@dataclass
class SuiteRun:
    suite: Suite
    cells: list[Cell]
    results: list[CellResult]
    seconds: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


def run_suite(
    suite: Suite,
    *,
    registry: Any = None,
    tracking_uri: str | None = None,
    executor: str = "local",
    only: Iterable[str] = (),
    device: str = "auto",
    deterministic: bool = False,
    cache_dir: str | None = None,
    quiet: bool = False,
    ray_address: str | None = None,
    ray_num_cpus: int | None = None,
    ray_cpus_per_task: int | None = None,
) -> SuiteRun:
    """Validate (everything, before any work), plan, and execute a suite.

    The device is checked here for the local executor and in each worker for Ray (whose
    driver may have no GPU). ``deterministic`` asks for deterministic GPU kernels.
    """
    from .runtime import DOWNLOAD_ENV, parse_device, resolve_device, set_deterministic
    from .suite import validate

    if executor not in ("local", "ray"):
        raise ConfigError(f"executor={executor!r} is not allowed: use local or ray")
    if registry is None:
        registry = default_registry()
    if executor == "local":  # a bad device fails before any work
        device_type = resolve_device(device, say=None if quiet else lambda text: print(text, file=sys.stderr)).type
    if deterministic:
        set_deterministic(True)
    else:
        parse_device(device)
        device_type = "cpu"  # run_ray sets the cluster's
    filters = parse_only(only)
    if suite.download:  # pretrained weights too, not only datasets
        os.environ[DOWNLOAD_ENV] = "1"
    data_cache: dict[str, Any] = {}
    suite = validate(suite, registry, data_cache=data_cache)
    cells = select(plan(suite, registry, device_type), filters)
    uri = tracking.normalise_uri(tracking_uri)
    tracking.check_reachable(uri)
    ctx = RunContext(
        tracking_uri=uri,
        experiment=suite.name,
        device=device,
        deterministic=deterministic,
        data_root=suite.data_root,
        download=suite.download,
        resolution=suite.resolution,
        cache_dir=cache_dir,
        quiet=quiet,
        suite_path=str(suite.path) if suite.path else None,
    )
    tracking.experiment_id(tracking.client(uri), suite.name, uri)  # store and experiment exist before workers start
    for name, data in data_cache.items():  # validation loaded them: keep them for the cells
        DATA_CACHE[(id(registry), name, ctx.data_root, ctx.download, ctx.resolution)] = data
    say(ctx, f"suite {suite.name} v{suite.version}: {len(cells)} cells, executor {executor}, tracking {uri}")
    started = time.perf_counter()
    if executor == "ray":
        results = run_ray(cells, ctx, ray_address, num_cpus=ray_num_cpus, cpus_per_task=ray_cpus_per_task)
    else:
        results = run_local(cells, ctx, registry)
    seconds = time.perf_counter() - started
    out = SuiteRun(suite, cells, results, seconds)
    say(
        ctx,
        f"suite {suite.name}: {out.count('done')} done, {out.count('skipped')} skipped, {out.count('failed')} failed in {seconds:.0f}s",
    )
    for r in results:
        if r.status == "failed":
            say(ctx, f"  failed: {r.key}: {r.error}")
    if suite.budget_hours and seconds > suite.budget_hours * 3600:
        say(ctx, f"warning: the suite took {seconds / 3600:.2f} h, over its budget of {suite.budget_hours} h")
    return out


__all__ = [
    "Cell",
    "CellResult",
    "RunContext",
    "SuiteRun",
    "plan",
    "run_cell",
    "run_local",
    "run_ray",
    "run_suite",
    "select",
    "parse_only",
    "DDBenchError",
]
