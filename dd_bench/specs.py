"""Frozen spec objects that plugins return from the registration hooks.

A spec is a name, a description and the callable that does the work. The host validates
specs when they are made, so a broken plugin fails at registration, naming the field.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, DataError, UnknownNameError
from .limits import FLOAT_MAX, INT64_MAX
from .streaming import Images, is_streamed, materialize

NAME_RE = re.compile(r"^[a-z][a-z0-9_.\-]*(:[A-Za-z0-9_.\-]+(@\S+)?)?$")


def _check_name(owner: str, name: str) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(
            f"{owner}.name={name!r} is not allowed: use lower-case letters, digits, '_', '-', '.'"
            " (optionally 'namespace:name', and '@weights' after a namespaced name)"
        )


@dataclass(frozen=True)
class DataShape:
    """What a model factory needs to know about the data."""

    channels: int
    height: int
    width: int
    num_classes: int

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.height, self.width)


@dataclass(frozen=True, eq=False)
class RealData:
    """A dataset, already normalised with ``mean``/``std``; val is a seeded slice of train.

    Each ``*_x`` is a float32 tensor or, for data too large to hold, a streamed split read from
    disk on demand (:class:`dd_bench.streaming.StreamedImages`); both answer ``shape``, ``len``
    and indexing, and :func:`dd_bench.streaming.batches` iterates either. Labels are always tensors.
    """

    name: str
    train_x: Images
    train_y: torch.Tensor
    val_x: Images
    val_y: torch.Tensor
    test_x: Images
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    test_crop_pct: float = 1.0
    """How the test images were preprocessed: their centre crop's share of the resized shorter
    side (``DataRequest.test_crop_pct``; 1 for every dataset that does not read image files)."""
    names: tuple[str, ...] | None = None
    """Human names of the classes, where ``classes`` are ids (ImageNet's wnids): what a
    text prompt says (read :meth:`class_name`)."""

    def __post_init__(self) -> None:
        c = len(self.mean)
        if self.names is not None and len(self.names) != len(self.classes):
            raise DataError(f"{self.name}: {len(self.names)} class names for {len(self.classes)} classes")
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.ndim != 4 or x.shape[1] != c:
                raise DataError(f"{self.name}: {split}_x must be [N,{c},H,W], got {list(x.shape)}")
            if y.shape != (x.shape[0],) or y.dtype != torch.long:
                raise DataError(f"{self.name}: {split}_y must be a long tensor of shape [{x.shape[0]}]")
            if x.shape[2:] != self.train_x.shape[2:]:
                raise DataError(f"{self.name}: {split}_x image size differs from train_x")
        if len(self.std) != c:
            raise DataError(f"{self.name}: mean has {c} channels but std has {len(self.std)}")

    @property
    def shape(self) -> DataShape:
        _, c, h, w = self.train_x.shape
        return DataShape(c, h, w, len(self.classes))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_name(self, c: int) -> str:
        """Class ``c`` in words: its human name, else its label."""
        return (self.names or self.classes)[c]

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.train_y, minlength=self.num_classes)

    def indices_of_class(self, c: int) -> torch.Tensor:
        """Positions in the training split of class ``c``'s images (ascending; do not modify)."""
        return self._class_indices[c]

    @functools.cached_property
    def _class_indices(self) -> tuple[torch.Tensor, ...]:
        order = torch.argsort(self.train_y, stable=True)
        return tuple(order.split(self.class_counts().tolist()))

    def class_batch(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` training images of class ``c`` (all of them if it has fewer): a seeded draw without replacement."""
        idx = self.indices_of_class(c)
        return self.train_x[idx[torch.randperm(len(idx), generator=generator)[:n]]]

    @property
    def streamed(self) -> bool:
        """Whether any split is read from disk on demand rather than held in memory."""
        return any(is_streamed(x) for x in (self.train_x, self.val_x, self.test_x))

    def in_memory(self, who: str) -> RealData:
        """This data with every split loaded whole as tensors; ``who`` says what needs them (the
        end of the one-line error when a split would not fit, :func:`dd_bench.streaming.materialize`)."""
        if not self.streamed:
            return self
        return dataclasses.replace(
            self,
            **{
                f"{s}_x": materialize(getattr(self, f"{s}_x"), f"{self.name} {s} split", who)
                for s in ("train", "val", "test")
            },
        )


def split_train_val(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Carve a fixed, seeded, per-class validation slice out of a training split."""
    keep, val = train_val_positions(y, val_fraction, seed)
    return x[keep], y[keep], x[val], y[val]


def train_val_positions(y: torch.Tensor, val_fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The ascending positions of :func:`split_train_val`'s train and validation images."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction} is not allowed: use 0 <= value < 1")
    g = torch.Generator().manual_seed(seed)
    val_idx = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c, as_tuple=True)[0]
        idx = idx[torch.randperm(len(idx), generator=g)]
        val_idx.append(idx[: int(round(len(idx) * val_fraction))])
    val = torch.cat(val_idx).sort().values if val_idx else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[val] = False
    return torch.nonzero(keep, as_tuple=True)[0], val


def data_fingerprint(data: RealData, zca: bool) -> dict[str, Any]:
    """Identity of a training split for cache keys (content hash, not just its name); ``zca``:
    whether the cached thing saw it whitened."""
    digest = hashlib.sha256()
    digest.update(data.train_x[:: max(1, len(data.train_x) // 512)].contiguous().numpy().tobytes())
    digest.update(data.train_y.numpy().tobytes())
    return {
        "dataset": data.name,
        "shape": list(data.train_x.shape),
        "mean": list(data.mean),
        "std": list(data.std),
        "zca": zca,
        "content": digest.hexdigest()[:16],
    }


@dataclass(frozen=True)
class DataRequest:
    """Where a dataset loader may look for files, and whether it may download them."""

    root: Path | None = None
    download: bool = False
    val_fraction: float = 0.1
    seed: int = 0
    resolution: int | None = None
    """Square side the images are resized and centre-cropped to, for datasets read from image files
    of any size (``image_folder``, ImageNet); ``None``: their own size."""
    test_crop_pct: float = 1.0
    """Datasets read from image files at a ``resolution``: resize the test images' shorter side to
    ``resolution / test_crop_pct`` before the centre crop (0.875: 256 then 224, the ImageNet
    evaluation's); 1 crops at the resolution itself, as the training images are."""

    def __post_init__(self) -> None:
        if self.resolution is not None and (
            isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 1
        ):
            raise ConfigError(f"resolution={self.resolution!r} is not allowed: use an integer >= 1 or none")
        if not 0 < self.test_crop_pct <= 1:
            raise ConfigError(f"test_crop_pct={self.test_crop_pct!r} is not allowed: use a fraction in (0, 1]")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: ``load(request) -> RealData``.

    ``balanced=False`` declares that the classes have very different sizes (SVHN), so
    ``dd-bench check-plugin`` does not require the largest to be at most 1.5 times the smallest.
    """

    name: str
    load: Callable[[DataRequest], RealData]
    description: str = ""
    balanced: bool = True

    def __post_init__(self) -> None:
        _check_name("DatasetSpec", self.name)
        if not callable(self.load):
            raise ConfigError(f"DatasetSpec({self.name}).load must be callable")


@dataclass(frozen=True)
class ModelSpec:
    """A classifier family: ``build(shape, **options) -> nn.Module`` returning logits.

    ``functional=False`` declares that the network does not work under
    ``torch.func.functional_call`` (which the trajectory-matching engine needs), so
    ``dd-bench check-plugin`` does not try it. ``compile_on_cpu=True`` declares that
    ``torch.compile`` trains it faster on the CPU (measure with ``benchmarks/eval_speed.py``:
    normalised ConvNets and ResNets gain 1.2-1.6x an epoch at IPC 10-50, max-pooling LeNet loses), so long evaluations
    compile it (:func:`dd_bench.training.compile_wanted`).
    """

    name: str
    build: Callable[..., nn.Module]
    description: str = ""
    functional: bool = True
    compile_on_cpu: bool = False

    def __post_init__(self) -> None:
        _check_name("ModelSpec", self.name)
        if not callable(self.build):
            raise ConfigError(f"ModelSpec({self.name}).build must be callable")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer for expert training: ``build(model, recipe) -> torch.optim.Optimizer``.

    ``recipe`` is the ``ExpertRecipe`` (lr, momentum, weight decay, ``optimizer_options``);
    ``defaults`` are the options used when the user gives none (and are part of the buffer
    cache key). ``step(closure)`` may call the closure more than once (sharpness-aware).
    """

    name: str
    build: Callable[..., Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("OptimizerSpec", self.name)
        if not callable(self.build):
            raise ConfigError(f"OptimizerSpec({self.name}).build must be callable")


def sgd_only(name: str) -> OptimizerSpec | None:
    """The expert-optimizer lookup of a request made without a registry: only the built-in sgd."""
    if name != "sgd":
        raise UnknownNameError("expert optimizer", name, ["sgd"])
    return None


def _no_teacher(recipe: Any) -> Any:
    raise ConfigError("this DistillRequest has no teacher service: build requests with dd_bench.api.distill")


@dataclass(frozen=True, eq=False)
class DistillRequest:
    """Everything a distiller gets: data, budget, seed, resolved config and host services."""

    data: RealData
    ipc: int
    seed: int
    config: Any
    device: torch.device
    model: str
    """Name of the distillation architecture."""
    build_model: Callable[[int], nn.Module]
    """``build_model(seed)``: a fresh, seeded instance of ``model`` for this data, on ``device``."""
    cache_dir: Path
    log_metric: Callable[[str, float, int], None] = lambda name, value, step: None
    progress: bool = True
    expert_optimizer: Callable[[str], OptimizerSpec | None] = sgd_only
    """``expert_optimizer(name)``: a registered expert optimizer, None for the built-in sgd."""
    teacher: Callable[[Any], Any] = _no_teacher
    """``teacher(recipe)``: the cached, seeded :class:`dd_bench.teachers.Teacher` that a
    :class:`dd_bench.teachers.TeacherRecipe` names for this data, trained on first use. Record
    ``teacher.ref()`` as ``metadata["teacher"]`` so evaluation can find it again."""
    units: range | None = None
    """A sharded method's part of the cell (see :class:`Sharding`): the units (classes, or
    batches of IPC slots) this run distils; None: all of them (read it with :meth:`shard`)."""

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the cell's seed; ``offset`` separates streams."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)

    def shard(self, total: int) -> range:
        """The units this run distils: the host's shard, or all ``total`` when it gave none."""
        return range(total) if self.units is None else self.units

    def unit_generator(self, unit: int) -> torch.Generator:
        """A CPU generator for one unit (class or batch) of a sharded method, seeded from the
        cell's seed and the unit alone, so a unit's draws do not depend on which shard ran it."""
        digest = hashlib.sha256(f"dd-bench unit {self.seed} {unit}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)

    def checkpoint_path(self, method: str) -> Path:
        """Where a resumable distiller keeps its checkpoint: under the cache, keyed by everything
        that shapes the run (method, resolved config, data, IPC, seed, model)."""
        key = {
            "method": method,
            "config": dataclasses.asdict(self.config),
            "dataset": self.data.name,
            "ipc": self.ipc,
            "seed": self.seed,
            "model": self.model,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return Path(self.cache_dir) / "checkpoints" / f"{method}-{self.data.name}-{digest}.pt"


@dataclass(frozen=True)
class Sharding:
    """A method's declaration that its work splits into independent units, each drawing from
    :meth:`DistillRequest.unit_generator`: the host may then run a cell as shards of
    consecutive units (in turn, or one Ray task each) and merge them into one set that is the
    same, bit for bit on a CPU, however many shards ran.

    ``units(request)``: how many units a request has (classes, or recovery batches).
    A shard's set holds its units' images class-major; the host concatenates the shards' sets
    in order and sorts them stably by class (so shards of IPC slots interleave into class-major
    order), concatenates list-valued metadata in shard order (per-unit lists), takes every other
    metadata value from the first shard and sums ``CACHE_BUILD_SECONDS``. ``finish(set, request)``,
    when given, runs once on the merged set with the whole cell's request: aggregates over all
    units, or labels that need every image (it runs on an unsharded cell too)."""

    units: Callable[[DistillRequest], int]
    finish: Callable[[Any, DistillRequest], Any] | None = None


def _classes(request: DistillRequest) -> int:
    return request.data.num_classes


PER_CLASS = Sharding(units=_classes)
"""The usual declaration: every class is distilled independently of the others."""


@dataclass(frozen=True)
class ReportedResult:
    """A figure a method's paper reports: test accuracy (%) of ``model`` trained on the method's
    set of ``dataset`` at ``ipc`` (mean ± ``std`` over the paper's runs, ``std`` None where it
    gives none), evaluated under the ``labels`` protocol (``teacher``: the decoupled papers'
    relabelling). ``where`` names the paper and the table; ``note`` the settings a reader needs
    to judge the comparison (ZCA, resolution, epochs). Leaderboards show it beside the measured
    entry of the same dataset, IPC, architecture and protocol."""

    dataset: str
    ipc: int
    model: str
    accuracy: float
    std: float | None
    where: str
    labels: str = "set"
    note: str = ""

    def __post_init__(self) -> None:
        what = f"ReportedResult({self.dataset!r}, ipc {self.ipc!r}, {self.model!r})"
        for key in ("dataset", "model"):
            if not isinstance(getattr(self, key), str) or not NAME_RE.match(getattr(self, key)):
                raise ConfigError(f"{what}.{key} is not a dataset or model name")
        if isinstance(self.ipc, bool) or not isinstance(self.ipc, int) or self.ipc < 1:
            raise ConfigError(f"{what}.ipc must be an integer >= 1")
        if (
            isinstance(self.accuracy, bool)
            or not isinstance(self.accuracy, (int, float))
            or not 0 <= self.accuracy <= 100
        ):
            raise ConfigError(f"{what}.accuracy={self.accuracy!r} is not allowed: use a percentage in [0, 100]")
        if self.std is not None and (
            isinstance(self.std, bool) or not isinstance(self.std, (int, float)) or not 0 <= self.std <= 100
        ):
            raise ConfigError(f"{what}.std={self.std!r} is not allowed: use a percentage in [0, 100] or none")
        if self.labels not in ("hard", "set", "teacher"):
            raise ConfigError(f"{what}.labels={self.labels!r} is not allowed: use hard, set or teacher")
        if not isinstance(self.where, str) or not self.where.strip():
            raise ConfigError(f"{what}.where must say where in which paper the figure is")

    @classmethod
    def table(
        cls,
        where: str,
        model: str,
        figures: Mapping[tuple[str, int], tuple[float, float | None]],
        labels: str = "set",
        note: str = "",
    ) -> tuple[ReportedResult, ...]:
        """One paper table's figures for one architecture: ``{(dataset, ipc): (accuracy, std)}``."""
        return tuple(cls(ds, ipc, model, acc, std, where, labels, note) for (ds, ipc), (acc, std) in figures.items())

    def text(self) -> str:
        return f"{self.accuracy:.1f}" + (f" ± {self.std:.1f}" if self.std is not None else "")


@dataclass(frozen=True)
class DistillerSpec:
    """A distillation method: a config dataclass, named presets and ``distill(request)``.

    ``presets`` maps a preset name to overrides of ``config_cls`` fields; every distiller
    has a ``smoke`` preset that runs end to end on ``digits`` in seconds. Two declarations
    tell ``dd-bench check-plugin`` what to expect: ``deterministic=True``, the result does
    not depend on the seed (so different seeds must give the same set); ``ignores_ipc=True``,
    the result does not depend on the IPC either (the whole training set). ``in_memory=True``:
    the method holds the whole training split as one tensor (trajectory matching, ZCA), so a
    streamed dataset is loaded whole before it runs, or refused in one line when it would not
    fit; other methods get the data as the dataset returns it and read it through the
    interface of :class:`RealData`. ``sharding``: the method's classes (or batches) are
    independent (:class:`Sharding`), so ``--shards N`` may split a cell; without it, ``--shards``
    above 1 is refused. ``reported``: the figures the method's paper reports
    (:class:`ReportedResult`), shown beside the measured ones wherever a suite runs their setting.
    """

    name: str
    config_cls: type
    distill: Callable[[DistillRequest], Any]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    deterministic: bool = False
    ignores_ipc: bool = False
    in_memory: bool = False
    sharding: Sharding | None = None
    reported: tuple[ReportedResult, ...] = ()

    def __post_init__(self) -> None:
        _check_name("DistillerSpec", self.name)
        if not isinstance(self.reported, tuple) or not all(isinstance(r, ReportedResult) for r in self.reported):
            raise ConfigError(f"DistillerSpec({self.name}).reported must be a tuple of ReportedResult")
        settings = [(r.dataset, r.ipc, r.model, r.labels) for r in self.reported]
        repeated = sorted({s for s in settings if settings.count(s) > 1})
        if repeated:
            raise ConfigError(
                f"DistillerSpec({self.name}).reported gives {repeated[0]} (dataset, ipc, model, labels) twice"
            )
        if not dataclasses.is_dataclass(self.config_cls):
            raise ConfigError(f"DistillerSpec({self.name}).config_cls must be a dataclass")
        if "smoke" not in self.presets:
            raise ConfigError(f"DistillerSpec({self.name}) must declare a 'smoke' preset")
        for preset, overrides in self.presets.items():
            check_overrides(self.config_cls, overrides, f"{self.name} preset {preset!r}")

    def resolve_config(self, preset: str | None = None, overrides: Mapping[str, Any] = ()) -> Any:
        """Defaults, then the preset, then the user's overrides (strings are parsed)."""
        values: dict[str, Any] = {}
        if preset is not None:
            if preset not in self.presets:
                raise ConfigError(
                    f"unknown preset {preset!r} for {self.name} (known: {', '.join(sorted(self.presets))})"
                )
            values.update(self.presets[preset])
        overrides = dict(overrides)
        check_overrides(self.config_cls, overrides, self.name)
        hints = typing.get_type_hints(self.config_cls)
        for key, value in overrides.items():
            values[key] = check_value(
                hints[key], parse_value(hints[key], value, key) if isinstance(value, str) else value, key
            )
        try:
            return self.config_cls(**values)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{self.name}: {exc}") from exc


def check_overrides(config_cls: type, overrides: Mapping[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(map(str, set(overrides) - known))  # YAML keys need not be strings
    if unknown:
        raise ConfigError(f"{where}: unknown setting {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")


def describe(hint: Any) -> str:
    """A type hint in a user's words: 'an integer', 'a number or none', 'one of a, b'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        words = [describe(a) for a in args if a is not type(None)]
        return " or ".join(words + (["none"] if type(None) in args else []))
    if origin in (tuple, list) or hint in (tuple, list):
        return f"a list of {describe(args[0]) if args else 'values'}"
    return {bool: "true or false", int: "a 64-bit integer", float: "a finite number", str: "text"}.get(hint, str(hint))


def check_value(hint: Any, value: Any, key: str) -> Any:
    """``value`` unchanged if it is of the type a config field declares, else ConfigError.

    Integers pass for float fields (as YAML writes ``1000``), but ``true`` is no integer, a
    float must be finite, and an integer must fit in 64 bits (torch's limit; larger values
    are typos, not budgets). Types this function does not know pass unchecked.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        ok = any(type(value) is type(a) and value == a for a in args)
    elif origin in (typing.Union, types.UnionType):
        if value is None:
            ok = type(None) in args
        else:
            for option in args:
                if option is not type(None):
                    try:
                        return check_value(option, value, key)
                    except ConfigError:
                        pass
            ok = False
    elif hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and -INT64_MAX <= value <= INT64_MAX
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= FLOAT_MAX
    elif hint is str:
        ok = isinstance(value, str)
    elif origin in (tuple, list) or hint in (tuple, list):
        ok = isinstance(value, (tuple, list))
        if ok and args:
            for item in value:
                check_value(args[0], item, key)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: use {describe(hint)}")
    return value


def parse_value(hint: Any, text: str, key: str) -> Any:
    """Parse a ``--set key=value`` string into the type the config field declares."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        for allowed in args:
            if str(allowed) == text:
                return allowed
        raise ConfigError(f"{key}={text!r} is not allowed (allowed: {', '.join(map(str, args))})")
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        for option in args:
            if option is not type(None):
                try:
                    return parse_value(option, text, key)
                except ConfigError:
                    pass
        raise ConfigError(f"{key}={text!r} is not a valid {hint}")
    if hint is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={text!r} is not a boolean (use true/false)")
    if hint in (int, float, str):
        try:
            return hint(text)
        except ValueError:
            raise ConfigError(f"{key}={text!r} is not a valid {hint.__name__}") from None
    if hint in (tuple, list) or origin in (tuple, list):
        item = args[0] if args else str
        kind = origin or hint
        return kind(parse_value(item, part.strip(), key) for part in text.split(",") if part.strip())
    raise ConfigError(f"{key}: cannot parse a value of type {hint} from the command line")
