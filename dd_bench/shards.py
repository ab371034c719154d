"""Class-sharded distillation: one cell of a method whose units (classes, or batches of IPC
slots) are independent, run as shards of consecutive units and merged into one set.

A unit draws only from :meth:`~dd_bench.specs.DistillRequest.unit_generator`, so the merged
set does not depend on how many shards ran or where. With more than one shard, each shard's
set is written atomically to the cache (``shards/<cell key>/units-<a>-<b>.pt``) as soon as it
is done: a killed or failed shard is the only one run again, and Ray tasks on other machines
hand their shards to the merge through the same files. The files stay in the cache, like
teachers and expert buffers, until it is cleared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError, DataError
from .specs import DistillerSpec, DistillRequest, data_fingerprint
from .synthetic import CACHE_BUILD_SECONDS, SyntheticSet

SHARD_FORMAT_VERSION = 1


def partition(units: int, shards: int) -> list[range]:
    """``shards`` runs of consecutive units, as even as they go (the first ones one longer)."""
    size, extra = divmod(units, shards)
    bounds = [0]
    for i in range(shards):
        bounds.append(bounds[-1] + size + (i < extra))
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def check_count(spec: DistillerSpec, shards: int) -> None:
    """One line when ``shards`` is not a count ``spec`` allows (what the data allows: :func:`plan`)."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ConfigError(f"shards={shards!r} is not allowed: use an integer >= 1")
    if spec.sharding is None and shards > 1:
        raise ConfigError(
            f"shards={shards} is not allowed for {spec.name}: its classes are not declared independent"
            " (methods that shard: see `dd-bench plugins`); use shards=1"
        )


def plan(spec: DistillerSpec, request: DistillRequest, shards: int) -> list[range]:
    """The shards of ``request``'s cell (none for a method that does not shard), or one line
    saying why ``shards`` is not allowed."""
    check_count(spec, shards)
    if spec.sharding is None:
        return []
    units = spec.sharding.units(request)
    if shards > units:
        raise ConfigError(
            f"shards={shards} is not allowed for {spec.name} on {request.data.name} at ipc={request.ipc}:"
            f" it has {units} independent units; use 1 <= shards <= {units}"
        )
    return partition(units, shards)


def directory(spec: DistillerSpec, request: DistillRequest) -> Path:
    """Where the shards of ``request``'s cell are kept: keyed by everything that shapes them."""
    key = {
        "method": spec.name,
        "config": dataclasses.asdict(request.config),
        "data": data_fingerprint(request.data, False),
        "ipc": request.ipc,
        "seed": request.seed,
        "model": request.model,
        "format": SHARD_FORMAT_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return (
        Path(request.cache_dir)
        / "shards"
        / f"{spec.name}-{request.data.name}-ipc{request.ipc}-seed{request.seed}-{digest}"
    )


def shard_path(folder: Path, units: range) -> Path:
    return folder / f"units-{units.start}-{units.stop}.pt"


def run_shard(spec: DistillerSpec, request: DistillRequest, units: range) -> SyntheticSet:
    """One shard's set, with the seconds it took and when it started (the epoch time: shards
    may run on other machines, and the cell's wall time starts at the first) in its metadata."""
    began, started = time.time(), time.perf_counter()
    syn = spec.distill(dataclasses.replace(request, units=units))
    if not isinstance(syn, SyntheticSet):
        raise DataError(f"distiller {spec.name!r} returned {type(syn).__name__}, not a SyntheticSet")
    syn.metadata["shard_seconds"] = round(time.perf_counter() - started, 3)
    syn.metadata["shard_started"] = began
    return syn


def ensure_shard(spec: DistillerSpec, request: DistillRequest, units: range) -> Path:
    """Distil one shard into the cache unless it is there already (a Ray task's whole job)."""
    path = shard_path(directory(spec, request), units)
    if not path.exists():
        run_shard(spec, request, units).save(path)
    return path


def distill_sharded(
    spec: DistillerSpec, request: DistillRequest, shards: int, say: Callable[[str], None] = lambda text: None
) -> SyntheticSet:
    """The cell's set from ``shards`` shards run in turn (finished ones read back from the
    cache), merged and finished; one shard runs in memory and writes nothing."""
    ranges = plan(spec, request, shards)
    if len(ranges) == 1:
        parts = [run_shard(spec, request, ranges[0])]
    else:
        folder = directory(spec, request)
        parts = []
        for i, units in enumerate(ranges):
            path = shard_path(folder, units)
            if path.exists():
                say(
                    f"shard {i + 1}/{len(ranges)} (units {units.start}-{units.stop - 1}): done before, read from the cache"
                )
                parts.append(SyntheticSet.load(path))
                continue
            say(f"shard {i + 1}/{len(ranges)} (units {units.start}-{units.stop - 1})")
            syn = run_shard(spec, request, units)
            syn.save(path)
            parts.append(syn)
    syn = merge(parts)
    started = time.perf_counter()
    if spec.sharding is not None and spec.sharding.finish is not None:
        syn = spec.sharding.finish(syn, request)
    seconds = [float(p.metadata["shard_seconds"]) for p in parts] + [round(time.perf_counter() - started, 3)]
    began = min(float(p.metadata["shard_started"]) for p in parts)
    syn.metadata.pop("shard_seconds", None)
    syn.metadata.pop("shard_started", None)
    syn.metadata["distill_seconds"] = round(sum(seconds), 3)  # device-seconds: the shards' and the finish's
    if len(ranges) > 1:  # wall time from the first shard's start (a resumed cell's includes the pause)
        syn.metadata["distill_wall_seconds"] = round(time.time() - began, 3)
        syn.metadata["shards"] = {
            "count": len(ranges),
            "units": [[r.start, r.stop] for r in ranges],
            "seconds": seconds[:-1],
            "finish_seconds": seconds[-1],
        }
    return syn


def merge(parts: Sequence[SyntheticSet]) -> SyntheticSet:
    """One set from shards' sets (see :class:`~dd_bench.specs.Sharding` for the rules)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    images = torch.cat([p.images for p in parts])
    labels = torch.cat([p.labels for p in parts])
    weights = None if first.weights is None else torch.cat([p.weights for p in parts])
    hard = labels if labels.ndim == 1 else labels.argmax(1)
    order = torch.argsort(hard, stable=True)
    metadata: dict[str, Any] = {}
    for key, value in first.metadata.items():
        if isinstance(value, list):
            metadata[key] = [v for p in parts for v in p.metadata.get(key, [])]
        elif key == CACHE_BUILD_SECONDS:
            metadata[key] = round(sum(float(p.metadata.get(key, 0.0)) for p in parts), 3)
        else:
            metadata[key] = value
    return dataclasses.replace(
        first,
        images=images[order].contiguous(),
        labels=labels[order].contiguous(),
        weights=None if weights is None else weights[order].contiguous(),
        metadata=metadata,
    )
