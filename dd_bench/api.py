"""Names in, objects out: the calls the CLI and the suite runner share."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError, DataError
from .plugins import Registry
from .runtime import default_cache_dir, seeded_build
from .shards import distill_sharded
from .shards import plan as shard_plan
from .specs import DataRequest, DistillerSpec, DistillRequest, RealData
from .synthetic import SyntheticSet


def load_data(
    registry: Registry,
    dataset: str,
    root: str | Path | None = None,
    download: bool = False,
    resolution: int | None = None,
    test_crop_pct: float = 1.0,
) -> RealData:
    """Load a registered dataset; an explicit ``root`` must be a folder (``download`` may create it).
    A ``resolution`` or ``test_crop_pct`` the dataset does not deliver (a fixed-size one) is
    refused in one line."""
    spec = registry.dataset(dataset)
    folder = Path(root).expanduser() if root else None
    if folder is not None and (folder.is_file() or not (folder.exists() or download)):
        raise DataError(
            f"data root {folder} is {'a file' if folder.exists() else 'missing'}: give the folder that holds the"
            f" {dataset} files, pass --download to fetch them into a new one, or leave it out to use the default places"
        )
    data = spec.load(DataRequest(root=folder, download=download, resolution=resolution, test_crop_pct=test_crop_pct))
    if resolution is not None and (data.shape.height, data.shape.width) != (resolution, resolution):
        raise ConfigError(
            f"resolution={resolution} is not allowed for {dataset}: its images are {data.shape.height}x{data.shape.width}"
            " (only datasets read from image files of any size take one, e.g. image_folder)"
        )
    if data.test_crop_pct != test_crop_pct:
        raise ConfigError(
            f"test_crop_pct={test_crop_pct} is not allowed for {dataset}: its test images come preprocessed"
            " (only datasets read from image files take one, e.g. image_folder and imagenet1k; use 1 or the classic recipe)"
        )
    return data


def resolve_config(
    registry: Registry,
    method: str | DistillerSpec,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """A method's config (defaults, preset, overrides) with the names in it checked against the registry."""
    spec = method if isinstance(method, DistillerSpec) else registry.distiller(method)
    config = spec.resolve_config(preset, overrides or {})
    optimizer = getattr(config, "expert_optimizer", None)  # a trajectory matcher's: a registered expert optimizer
    if isinstance(optimizer, str):
        registry.optimizer(optimizer)
    teacher = getattr(config, "teacher_model", None)  # a decoupled method's: a registered teacher architecture
    if isinstance(teacher, str):
        registry.model(teacher)
    return config


def check_ipc(data: RealData, ipc: int) -> None:
    smallest = int(data.class_counts().min())
    if not 1 <= ipc <= smallest:
        raise ConfigError(
            f"ipc={ipc} is not allowed for {data.name}: use 1 <= ipc <= {smallest} (its smallest class has {smallest} training images)"
        )


def distill(
    registry: Registry,
    method: str | DistillerSpec,
    data: RealData,
    ipc: int,
    seed: int = 0,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: torch.device = torch.device("cpu"),
    cache_dir: Path | None = None,
    model: str = "convnet",
    log_metric: Any = None,
    progress: bool = True,
    resolution: int | None = None,
    shards: int = 1,
) -> SyntheticSet:
    """Run one distiller (a registered name, or a spec itself) on one dataset; the result is
    validated against the data. ``registry`` supplies the model and expert optimizers.
    ``resolution``: the one ``data`` was loaded at, recorded so evaluation loads it the same way.
    ``shards``: run a method that declares :class:`~dd_bench.specs.Sharding` as that many
    shards in turn (see :mod:`dd_bench.shards`); the set is the same for any count."""
    spec, request = _request(
        registry, method, data, ipc, seed, preset, overrides, device, cache_dir, model, log_metric, progress
    )
    started = time.perf_counter()
    if shard_plan(spec, request, shards):
        syn = distill_sharded(spec, request, shards, say=_progress_line if progress else lambda text: None)
    else:
        syn = spec.distill(request)
    if not isinstance(syn, SyntheticSet):
        raise DataError(f"distiller {spec.name!r} returned {type(syn).__name__}, not a SyntheticSet")
    syn.check_compatible(request.data)
    syn.metadata.setdefault("seed", seed)
    syn.metadata.setdefault("preset", preset)
    syn.metadata.setdefault("distill_model", model)
    if resolution is not None:
        syn.metadata["resolution"] = resolution
    syn.metadata.setdefault("distill_seconds", round(time.perf_counter() - started, 3))
    return syn


def distill_shard(
    registry: Registry,
    method: str,
    data: RealData,
    ipc: int,
    index: int,
    shards: int,
    seed: int = 0,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: torch.device = torch.device("cpu"),
    cache_dir: Path | None = None,
    model: str = "convnet",
    progress: bool = True,
) -> Path:
    """Distil shard ``index`` of ``shards`` of a cell into the cache (where :func:`distill`
    with the same arguments and ``shards`` finds it); the job of one Ray task."""
    from .shards import ensure_shard

    spec, request = _request(
        registry, method, data, ipc, seed, preset, overrides, device, cache_dir, model, None, progress
    )
    return ensure_shard(spec, request, shard_plan(spec, request, shards)[index])


def _request(
    registry: Registry,
    method: str | DistillerSpec,
    data: RealData,
    ipc: int,
    seed: int,
    preset: str | None,
    overrides: Mapping[str, Any] | None,
    device: torch.device,
    cache_dir: Path | None,
    model: str,
    log_metric: Any,
    progress: bool,
) -> tuple[DistillerSpec, DistillRequest]:
    spec = method if isinstance(method, DistillerSpec) else registry.distiller(method)
    check_ipc(data, ipc)
    config = resolve_config(registry, spec, preset, overrides)
    if spec.in_memory:
        streaming = sorted(name for name, d in registry.distillers.items() if not d.spec.in_memory)
        data = data.in_memory(
            f"{spec.name} holds the whole training split in memory; distil it with a method"
            f" that streams ({', '.join(streaming)}), or ask for a smaller --resolution"
        )
    model_spec = registry.model(model)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()

    def teacher(recipe: Any) -> Any:
        from .teachers import resolve_teacher

        return resolve_teacher(registry, data, recipe, cache, device, progress=progress)

    return spec, DistillRequest(
        data=data,
        ipc=ipc,
        seed=seed,
        config=config,
        device=device,
        model=model,
        build_model=lambda seed_: seeded_build(lambda: model_spec.build(data.shape), seed_, device),
        cache_dir=cache,
        log_metric=log_metric or (lambda name, value, step: None),
        progress=progress,
        expert_optimizer=registry.optimizer,
        teacher=teacher,
    )


def _progress_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def eval_teacher(
    registry: Registry,
    syn: SyntheticSet,
    data: RealData,
    config: Any,
    cache_dir: Path | None = None,
    device: torch.device = torch.device("cpu"),
    progress: bool = True,
) -> Any:
    """The teacher ``config`` (an ``EvalConfig``) evaluates ``syn`` with: None unless
    ``labels=teacher``; then the set's own (``metadata["teacher"]``) or the config's, checked
    (see :func:`dd_bench.teachers.set_teacher`)."""
    if config.labels != "teacher":
        return None
    from .teachers import set_teacher

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    return set_teacher(
        registry,
        syn.metadata,
        data,
        config.teacher_recipe(),
        cache,
        device,
        zca=syn.zca,
        progress=progress,
        method=f"the {syn.method} set",
    )
