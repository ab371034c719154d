"""Teachers: one trained classifier per (data, architecture, recipe), cached like expert buffers.

The decoupled methods (SRe2L, RDED, D4M's evaluation) lean on a network trained on the full
training split: it scores or recovers images, and under the ``teacher`` label protocol it
labels every augmented batch the student sees. A teacher is seeded, trained with the host's
one training loop, keyed by everything that shapes it (content fingerprint of the data, ZCA,
architecture, recipe, file format) and written atomically under a cache lock, so concurrent
cells train it once and a changed recipe never silently reuses the wrong weights. Its
validation accuracy is recorded with it.

A synthetic set names its teacher in ``metadata["teacher"]`` (see :meth:`Teacher.ref`); the
evaluation rebuilds or loads exactly that teacher and refuses one whose key differs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from . import distributed
from .augment import DEFAULT_STRATEGY, DSA, parse_strategy
from .errors import ConfigError, DataError
from .runtime import cache_lock
from .specs import RealData, data_fingerprint
from .streaming import Images, is_streamed
from .synthetic import CACHE_BUILD_SECONDS, atomic_torch_save, atomic_write_text
from .training import TrainRecipe, accuracy, compile_wanted, train_classifier

TEACHER_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TeacherRecipe:
    """How a teacher is trained: SGD momentum 0.9, weight decay 5e-4, x0.1 at half, DSA, seed 0."""

    model: str
    """A registered model name; no default: the method or the evaluation that needs a teacher says which."""
    epochs: int = 30
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    decay_at: float | None = 0.5
    dsa: bool = True
    dsa_strategy: str = DEFAULT_STRATEGY
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"teacher model={self.model!r} is not allowed: use a registered model name")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(
                f"teacher epochs={self.epochs!r} is not allowed: use an integer >= 1 (or 0 with pretrained weights)"
            )
        if self.epochs == 0 and "@" not in self.model:
            raise ConfigError(
                f"teacher epochs=0 is not allowed for {self.model}: 0 uses pretrained weights as they are;"
                " name them (e.g. tv:resnet18@IMAGENET1K_V1) or train the teacher (epochs >= 1)"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"teacher seed={self.seed!r} is not allowed: use an integer >= 0")
        self.train_recipe()
        parse_strategy(self.dsa_strategy)

    def train_recipe(self) -> TrainRecipe:
        """The training loop's recipe (one epoch stands in for a pretrained teacher's none, for validation)."""
        return TrainRecipe(
            max(1, self.epochs), float(self.lr), self.momentum, self.weight_decay, self.batch_size, self.decay_at
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TeacherRecipe:
        """A recipe from a set's metadata; unknown keys are an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(
                f"teacher recipe has unknown setting {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**dict(values))


def teacher_key(data: RealData, recipe: TeacherRecipe, zca: bool = False) -> str:
    """The cache key: a hash of the data's content fingerprint, ZCA, the recipe and the file format."""
    key = {"data": data_fingerprint(data, zca), "recipe": asdict(recipe), "format": TEACHER_FORMAT_VERSION}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def teacher_path(cache_dir: Path, data: RealData, recipe: TeacherRecipe, zca: bool = False) -> Path:
    safe_model = recipe.model.replace(":", "-").replace("/", "-")
    return Path(cache_dir) / "teachers" / data.name / safe_model / f"teacher-{teacher_key(data, recipe, zca)}.pt"


@dataclass(eq=False)
class Teacher:
    """A trained network in eval mode, with what identifies it."""

    model: nn.Module
    recipe: TeacherRecipe
    key: str
    path: Path
    val_acc: float
    zca: bool = False
    trained_seconds: float = 0.0
    """Time this call spent training it (0 when it came from the cache)."""

    @property
    def nbytes(self) -> int:
        """Storage of its parameters and buffers (what the ``teacher`` protocol must ship)."""
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        return sum(t.numel() * t.element_size() for t in tensors)

    def set_metadata(self, seconds: float) -> dict[str, Any]:
        """What a distilling set records about its teacher: ``ref()`` (so the evaluation finds it
        again), its validation accuracy, and ``seconds`` spent getting it, of which training it
        was a cache build later cells reuse."""
        return {
            "teacher": self.ref(),
            "teacher_val_acc": self.val_acc,
            CACHE_BUILD_SECONDS: round(self.trained_seconds, 3),
            "teacher_seconds": round(seconds, 3),
        }

    def ref(self) -> dict[str, Any]:
        """What a synthetic set records in ``metadata["teacher"]`` (JSON-able)."""
        return {
            "key": self.key,
            "recipe": asdict(self.recipe),
            "zca": self.zca,
            "val_acc": self.val_acc,
            "bytes": self.nbytes,
        }

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Logits in eval mode (running BN statistics), batched, on the teacher's device."""
        device = next(self.model.parameters()).device
        self.model.eval()
        return torch.cat(
            [self.model(x[s : s + batch_size].to(device)).float() for s in range(0, x.shape[0], batch_size)]
        )


def train_teacher(
    build: Callable[[int], nn.Module],
    data: RealData,
    train_x: Images,
    recipe: TeacherRecipe,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
    compile: bool = False,
) -> nn.Module:
    """Train one seeded teacher on the whole training split ``train_x`` (in the space it will see);
    with ``epochs=0`` the network's pretrained weights are the teacher as they are."""
    model = build(recipe.seed)
    if recipe.epochs == 0:
        return model.eval()
    train_classifier(
        model,
        train_x if is_streamed(train_x) else train_x.to(device),
        data.train_y.to(device),
        recipe.train_recipe(),
        torch.Generator().manual_seed(recipe.seed),
        augment=DSA(recipe.dsa_strategy) if recipe.dsa else None,
        progress=progress,
        compile=compile,
    )
    model.eval()
    return model


def ensure_teacher(
    build: Callable[[int], nn.Module],
    data: RealData,
    recipe: TeacherRecipe,
    cache_dir: Path,
    device: torch.device,
    *,
    zca: bool = False,
    train_x: Images | None = None,
    progress: bool = True,
) -> Teacher:
    """Load the teacher ``recipe`` names for ``data`` from the cache, training and saving it if missing.

    ``build(seed)`` returns a fresh seeded ``recipe.model`` on ``device``; ``train_x`` is the
    training split in the space the teacher sees (ZCA-whitened if ``zca``; default
    ``data.train_x``). The file is written atomically under a lock, so two processes never
    train the same teacher, and a reader never sees half of one.
    """
    key = teacher_key(data, recipe, zca)
    path = teacher_path(cache_dir, data, recipe, zca)
    train_x = data.train_x if train_x is None else train_x
    trained_seconds = 0.0
    if distributed.world_size() > 1 or not path.exists():
        # data-parallel processes train one teacher together: the first holds the lock and decides for all
        with cache_lock(path) if distributed.is_main() else contextlib.nullcontext():
            if distributed.agree(not path.exists()):  # another process may have trained it while we waited
                compile = recipe.epochs > 0 and compile_wanted(device, recipe.train_recipe().steps(train_x.shape[0]))
                how = ", compiling the network first" if compile else ""
                progress = progress and distributed.is_main()
                if distributed.is_main():
                    print(f"training teacher {recipe.model} ({recipe.epochs} epochs{how}) into {path}", file=sys.stderr)
                started = time.perf_counter()
                with tqdm(
                    total=recipe.epochs,
                    desc="teacher",
                    unit="epoch",
                    disable=None if progress else True,
                    file=sys.stderr,
                ) as bar:
                    model = train_teacher(build, data, train_x, recipe, device, bar.update, compile)
                val_x = data.val_x
                if zca:
                    from .zca import fitted_zca

                    val_x = fitted_zca(data).transform(val_x)
                val_acc = accuracy(model, val_x, data.val_y) if len(data.val_y) else float("nan")
                trained_seconds = time.perf_counter() - started
                blob = {
                    "format_version": TEACHER_FORMAT_VERSION,
                    "key": key,
                    "recipe": asdict(recipe),
                    "data": data_fingerprint(data, zca),
                    "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                    "val_acc": float(val_acc),
                    "trained_seconds": trained_seconds,
                    "device_type": torch.device(device).type,
                    "compiled": compile,
                }
                if distributed.is_main():
                    atomic_torch_save(blob, path)
                    atomic_write_text(
                        path.with_suffix(".json"),
                        json.dumps({k: v for k, v in blob.items() if k != "state_dict"}, indent=2),
                    )
        distributed.barrier()
    return load_teacher(build, path, recipe, key, device, zca, trained_seconds)


def load_teacher(
    build: Callable[[int], nn.Module],
    path: Path,
    recipe: TeacherRecipe,
    key: str,
    device: torch.device,
    zca: bool = False,
    trained_seconds: float = 0.0,
) -> Teacher:
    """The cached teacher at ``path``; a file of another key or format is an error, never used."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(
            f"teacher {path} is unreadable ({type(exc).__name__}); delete it to retrain the teacher"
        ) from None
    if blob.get("format_version") != TEACHER_FORMAT_VERSION or blob.get("key") != key:
        raise DataError(
            f"teacher {path} holds key {blob.get('key')!r} (format {blob.get('format_version')!r}), not {key!r}; delete it to retrain"
        )
    model = build(recipe.seed)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return Teacher(model, recipe, key, path, float(blob["val_acc"]), zca, trained_seconds)


def resolve_teacher(
    registry: Any,
    data: RealData,
    recipe: TeacherRecipe,
    cache_dir: Path,
    device: torch.device,
    *,
    zca: bool = False,
    progress: bool = True,
) -> Teacher:
    """``ensure_teacher`` with the architecture looked up in ``registry`` (the host's service)."""
    from .runtime import seeded_build

    spec = registry.model(recipe.model)
    train_x = None
    if zca:
        from .zca import fitted_zca

        train_x = fitted_zca(data).transform(data.train_x)
    return ensure_teacher(
        lambda seed: seeded_build(lambda: spec.build(data.shape), seed, device),
        data,
        recipe,
        cache_dir,
        device,
        zca=zca,
        train_x=train_x,
        progress=progress,
    )


def set_teacher(
    registry: Any,
    metadata: Mapping[str, Any],
    data: RealData,
    wanted: TeacherRecipe | None,
    cache_dir: Path,
    device: torch.device,
    *,
    zca: bool = False,
    progress: bool = True,
    method: str = "the set",
) -> Teacher:
    """The teacher a set is to be evaluated with under the ``teacher`` label protocol.

    A set that names a teacher (``metadata["teacher"]``) gets exactly that one, rebuilt or
    loaded from the cache, and the rebuilt key must equal the recorded one (same data, same
    recipe); ``wanted`` (the evaluation's teacher) must then be the same recipe, or the call
    fails: a set's teacher is never silently replaced. A set that names none gets ``wanted``;
    with neither it is one clear error.
    """
    ref = metadata.get("teacher")
    if ref is None:
        if wanted is None:
            raise ConfigError(
                f"labels=teacher needs a teacher, but {method} names none in its metadata and the evaluation names none:"
                " set eval teacher_model (--teacher-model at the command line, e.g. convnet_bn), or use labels=hard or set"
            )
        return resolve_teacher(registry, data, wanted, cache_dir, device, zca=zca, progress=progress)
    if (
        not isinstance(ref, Mapping)
        or not isinstance(ref.get("recipe"), Mapping)
        or not isinstance(ref.get("key"), str)
    ):
        raise DataError(f"{method}: metadata['teacher'] must be a mapping with 'key' and 'recipe', got {ref!r:.200}")
    recipe = TeacherRecipe.from_dict(ref["recipe"])
    if wanted is not None and wanted != recipe:
        raise ConfigError(
            f"labels=teacher: {method} was made with teacher {recipe.model} (key {ref['key']}, {recipe.epochs} epochs, lr {recipe.lr}),"
            f" but the evaluation names teacher {wanted.model} ({wanted.epochs} epochs, lr {wanted.lr}): make them agree"
            " (or leave eval teacher_model unset to use the set's)"
        )
    set_zca = bool(ref.get("zca", False))
    if teacher_key(data, recipe, set_zca) != ref["key"]:
        raise DataError(
            f"{method} names teacher key {ref['key']}, but its recipe on this data gives key {teacher_key(data, recipe, set_zca)}:"
            " the set was distilled on other data (or an older teacher format); re-distil it"
        )
    return resolve_teacher(registry, data, recipe, cache_dir, device, zca=set_zca, progress=progress)


CPU_TEACHER: dict[str, Any] = {"teacher_model": "convnet_w32_bn", "teacher_epochs": 10, "teacher_lr": 0.01}
"""The CPU suites' teacher (``TeacherSettings`` values): the decoupled methods' ``cpu`` presets
and the suites' evaluations share it, so one cached teacher serves every row."""


@dataclass(frozen=True)
class TeacherSettings:
    """Config fields of a method that uses a teacher (inherit them in its config dataclass).

    The three settings pick the teacher's architecture and training; the rest of the recipe is
    ``TeacherRecipe``'s defaults. A suite that shows a method under the ``teacher`` protocol
    gives the evaluation the same three settings (``eval.teacher_model`` ...), so every row is
    relabelled by one teacher; the evaluation refuses a mismatch.
    """

    teacher_model: str
    """The teacher's architecture (a registered model); each method declares its default, for its own reasons."""
    teacher_epochs: int = 30
    teacher_lr: float = 0.01

    def teacher_recipe(self) -> TeacherRecipe:
        return TeacherRecipe(model=self.teacher_model, epochs=self.teacher_epochs, lr=float(self.teacher_lr))
