"""Expert trajectories: parameters at init and after every epoch of training on real data.

Buffers live in a cache folder keyed by everything that shapes them (dataset and its
normalisation, ZCA, model, optimizer recipe, seeds), so a second distillation reuses them
and a changed recipe never silently reuses the wrong ones. Each expert is one file, written
atomically; an interrupted run resumes from the experts already finished.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..augment import DEFAULT_STRATEGY, DSA
from ..errors import ConfigError, DataError
from ..runtime import cache_lock
from ..specs import RealData, data_fingerprint
from ..synthetic import atomic_torch_save, atomic_write_text
from ..training import TrainRecipe, compile_wanted, train_classifier
from .student import FlatModel

BUFFER_FORMAT_VERSION = 1

OptimizerFactory = Callable[[nn.Module, "ExpertRecipe"], torch.optim.Optimizer]


@dataclass(frozen=True)
class ExpertRecipe:
    """How experts are trained: the literature's defaults (SGD lr 0.01, no momentum, batch 256, DSA)."""

    epochs: int = 50
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    dsa: bool = True
    dsa_strategy: str = DEFAULT_STRATEGY
    optimizer: str = "sgd"
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    """Options of a plugin optimizer (e.g. GSAM's rho and alpha); part of the cache key."""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"expert epochs={self.epochs} is not allowed: use an integer >= 1")
        TrainRecipe(self.epochs, self.lr, self.momentum, self.weight_decay, self.batch_size, None)

    def train_recipe(self) -> TrainRecipe:
        return TrainRecipe(self.epochs, self.lr, self.momentum, self.weight_decay, self.batch_size, decay_at=None)


def buffer_dir(cache_dir: Path, data: RealData, model: str, recipe: ExpertRecipe, zca: bool) -> Path:
    key = {
        "data": data_fingerprint(data, zca),
        "model": model,
        "recipe": asdict(recipe),
        "format": BUFFER_FORMAT_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    safe_model = model.replace(":", "-").replace("/", "-")
    return Path(cache_dir) / "buffers" / data.name / safe_model / f"{recipe.optimizer}-{digest}"


@dataclass
class ExpertBuffers:
    """Trajectories ``[epochs + 1, num_params]`` (float32, on the CPU), one per expert."""

    trajectories: list[torch.Tensor]
    directory: Path
    trained_seconds: float = 0.0
    """Time this call spent training missing experts (0 when all came from the cache)."""
    trained: list[int] = field(default_factory=list)
    """The experts this call trained (the others came from the cache or another process)."""
    device_types: list[str] = field(default_factory=list)
    """The device type each expert was trained on (``unknown`` for buffers older than the record)."""
    compiled: list[bool] = field(default_factory=list)
    """Whether each expert's network ran compiled (equal to eager training to float tolerance only)."""
    imported: dict[str, Any] | None = None
    """Experts read from another tool's files (:func:`import_replay_buffers`): the files and their SHA-256."""

    @property
    def epochs(self) -> int:
        return self.trajectories[0].shape[0] - 1


def expert_path(directory: Path, index: int) -> Path:
    return directory / f"expert_{index:04d}.pt"


def train_expert(
    build_model: Callable[[int], nn.Module],
    data: RealData,
    train_x: torch.Tensor,
    recipe: ExpertRecipe,
    seed: int,
    device: torch.device,
    optimizer_factory: OptimizerFactory | None = None,
    progress: Callable[[int], None] | None = None,
    compile: bool = False,
) -> torch.Tensor:
    """Train one expert; returns a stack of parameter copies at init and after each epoch."""
    model = build_model(seed)
    flat = FlatModel(model)
    snapshots = [flat.flatten().cpu()]  # a copy: ``flatten`` never returns a view of live weights
    optimizer = optimizer_factory(model, recipe) if optimizer_factory is not None else None
    train_classifier(
        model,
        train_x.to(device),
        data.train_y.to(device),
        recipe.train_recipe(),
        torch.Generator().manual_seed(seed),
        augment=DSA(recipe.dsa_strategy) if recipe.dsa else None,
        optimizer=optimizer,
        on_epoch_end=lambda epoch, m: snapshots.append(flat.flatten(m).cpu()),
        progress=progress,
        compile=compile,
    )
    return torch.stack(snapshots)


def ensure_buffers(
    model_name: str,
    build_model: Callable[[int], nn.Module],
    data: RealData,
    train_x: torch.Tensor,
    recipe: ExpertRecipe,
    num_experts: int,
    cache_dir: Path,
    device: torch.device,
    zca: bool = False,
    optimizer_factory: OptimizerFactory | None = None,
    progress: bool = True,
) -> ExpertBuffers:
    """Load ``num_experts`` experts from the cache, training (and saving) any that are missing.

    ``build_model(seed)`` returns a fresh seeded network on ``device``; ``train_x`` is the
    training split in the space the experts see (ZCA-whitened if ``zca``). Expert ``k`` is
    seeded with ``k``, so the k-th expert is the same whoever trains it (to float tolerance where
    one ran compiled and the other not: :func:`dd_bench.training.compile_wanted`).
    """
    if num_experts < 1:
        raise ConfigError(f"num_experts={num_experts} is not allowed: use an integer >= 1")
    if recipe.optimizer != "sgd" and optimizer_factory is None:
        raise ConfigError(f"expert optimizer {recipe.optimizer!r} needs an optimizer factory")
    directory = buffer_dir(cache_dir, data, model_name, recipe, zca)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "recipe.json"
    if not manifest.exists():
        atomic_write_text(
            manifest,
            json.dumps({"model": model_name, "recipe": asdict(recipe), "data": data_fingerprint(data, zca)}, indent=2),
        )
    missing = [k for k in range(num_experts) if not expert_path(directory, k).exists()]
    compile = compile_wanted(device, len(missing) * recipe.train_recipe().steps(train_x.shape[0]))
    if missing:
        how = " (compiling the network first)" if compile else ""
        print(f"training {len(missing)} expert(s) into {directory}{how}", file=sys.stderr)
    trained, trained_seconds = [], 0.0
    # Concurrent callers (Ray cells) share the work: first the experts nobody is training, then wait for the rest.
    for wait in (False, True):
        for k in missing:
            path = expert_path(directory, k)
            with cache_lock(path, wait) as held:
                if not held or path.exists():
                    continue
                started = time.perf_counter()
                with tqdm(
                    total=recipe.epochs,
                    desc=f"expert {k}",
                    unit="epoch",
                    disable=None if progress else True,
                    file=sys.stderr,
                ) as bar:
                    trajectory = train_expert(
                        build_model, data, train_x, recipe, k, device, optimizer_factory, bar.update, compile
                    )
                blob = {
                    "format_version": BUFFER_FORMAT_VERSION,
                    "trajectory": trajectory,
                    "device_type": torch.device(device).type,
                    "compiled": compile,
                }
                atomic_torch_save(blob, path)
                trained.append(k)
                trained_seconds += time.perf_counter() - started
    trajectories, device_types, compiled = [], [], []
    for k in range(num_experts):
        path = expert_path(directory, k)
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            trajectories.append(blob["trajectory"])
        except Exception as exc:
            raise DataError(f"expert buffer {path} is unreadable ({exc}); delete it to retrain that expert") from None
        device_types.append(blob.get("device_type", "unknown"))
        compiled.append(bool(blob.get("compiled", False)))
    return ExpertBuffers(trajectories, directory, trained_seconds, trained, device_types, compiled)


def read_replay_buffers(paths: list[Path], model: nn.Module) -> list[torch.Tensor]:
    """Experts as MTT's, FTD's and DATM's ``buffer.py`` save them, as this engine's trajectories.

    Each ``replay_buffer_<n>.pt`` holds a list of trajectories; a trajectory is a list of
    per-epoch parameter lists (init first), each in ``model.parameters()`` order. Returns one
    ``[epochs + 1, num_params]`` float32 tensor per trajectory (the layout of :class:`ExpertBuffers`),
    checked against ``model``'s parameter shapes: a file of another architecture is one line."""
    shapes = [tuple(p.shape) for p in model.parameters()]
    trajectories: list[torch.Tensor] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path} does not exist")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [""])[0]
            raise DataError(f"{path} is not a readable replay buffer ({type(exc).__name__}: {reason})") from None
        if not isinstance(blob, list) or not blob or not all(isinstance(t, list) and len(t) >= 2 for t in blob):
            raise DataError(
                f"{path} is not a replay buffer: expected a list of trajectories, each a list of >= 2 epochs'"
                " parameter lists"
            )
        for i, trajectory in enumerate(blob):
            epochs = []
            for e, params in enumerate(trajectory):
                got = (
                    [tuple(p.shape) for p in params]
                    if isinstance(params, (list, tuple)) and all(isinstance(p, torch.Tensor) for p in params)
                    else None
                )
                if got != shapes:
                    where = f"{path} trajectory {i} epoch {e}"
                    if got is None:
                        raise DataError(f"{where} is not a list of parameter tensors")
                    first = next((k for k, (a, b) in enumerate(zip(got, shapes)) if a != b), min(len(got), len(shapes)))
                    raise DataError(
                        f"{where} does not match the architecture: {len(got)} parameters, the network has"
                        f" {len(shapes)}; parameter {first} is {list(got[first]) if first < len(got) else 'missing'},"
                        f" the network's {list(shapes[first]) if first < len(shapes) else 'absent'}"
                    )
                epochs.append(torch.cat([p.detach().reshape(-1).float() for p in params]))
            trajectories.append(torch.stack(epochs))
    if len({t.shape[0] for t in trajectories}) > 1:
        raise DataError(
            f"the replay buffers hold trajectories of {sorted({t.shape[0] - 1 for t in trajectories})} epochs: use one length"
        )
    return trajectories


REPLAY_BUFFER = "replay_buffer_{}.pt"


def replay_buffer_files(folder: Path) -> list[Path]:
    """``replay_buffer_<n>.pt`` in ``folder``, in the order of ``n``."""
    if not Path(folder).is_dir():
        return []
    found = [(p, p.stem.removeprefix("replay_buffer_")) for p in Path(folder).glob("replay_buffer_*.pt")]
    return [p for p, n in sorted(found, key=lambda item: int(item[1])) if n.isdigit()]


def import_replay_buffers(folder: Path, model: nn.Module, num_experts: int) -> ExpertBuffers:
    """The first ``num_experts`` trajectories of the ``replay_buffer_<n>.pt`` files MTT's, FTD's or DATM's
    ``buffer.py`` wrote into ``folder``, as this engine's experts (checked against ``model``)."""
    folder = Path(folder)
    paths = replay_buffer_files(folder)
    if not paths:
        raise DataError(
            f"expert_files={str(folder)!r}: no replay_buffer_<n>.pt files there (give the folder buffer.py wrote)"
        )
    trajectories = read_replay_buffers(paths, model)
    if len(trajectories) < num_experts:
        raise ConfigError(
            f"num_experts={num_experts} is not allowed with expert_files={str(folder)!r}: its files hold"
            f" {len(trajectories)} trajectories"
        )
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    n = num_experts
    imported = {
        "format": "replay_buffer",
        "folder": str(folder),
        "files": [p.name for p in paths],
        "sha256": digest.hexdigest(),
    }
    return ExpertBuffers(
        trajectories[:n], folder, device_types=["imported"] * n, compiled=[False] * n, imported=imported
    )


def export_replay_buffers(buffers: ExpertBuffers, model: nn.Module, out: Path) -> Path:
    """Write ``buffers`` as MTT's ``buffer.py`` does (``replay_buffer_0.pt``: a list of trajectories, each a list
    of per-epoch parameter lists in ``model``'s order) into the new folder ``out``, for MTT, FTD and DATM."""
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists: give a new folder (an export never replaces anything)")
    flat = FlatModel(model)
    if buffers.trajectories[0].shape[1] != flat.num_params:
        raise ConfigError(
            f"the experts have {buffers.trajectories[0].shape[1]} parameters, the model {flat.num_params}"
        )
    blob = [[[p.clone() for p in flat.unflatten(epoch).values()] for epoch in t] for t in buffers.trajectories]
    out.mkdir(parents=True)
    atomic_torch_save(blob, out / REPLAY_BUFFER.format(0))
    return out
