"""A suite's cells: what one distillation is (method x dataset x IPC x seed), its config hash, and the plan
that turns a validated suite into cells (``--only`` filters included). Nothing here runs anything."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .suite import Suite, eval_config, stable_hash

PROTOCOL = 1
"""Bumped when the runner's protocol changes in a way that changes results."""

ONLY_KEYS = ("method", "dataset", "ipc", "seed")
DEVICE_TYPES = ("cpu", "cuda")


def hashed_eval(ev: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation config as the cell hash sees it: settings added after the first suites
    (the label protocol's, the named recipes') are left out while at their defaults, so the
    cells of suites written before them keep their hashes and their finished runs."""
    from .evaluate import EvalConfig

    defaults = {f.name: f.default for f in dataclasses.fields(EvalConfig) if f.name in LATER_KEYS}
    return {k: v for k, v in ev.items() if not (k in defaults and v == defaults[k])}


LATER_KEYS = (
    "labels",
    "temperature",
    "teacher_model",
    "teacher_epochs",
    "teacher_lr",
    "recipe",
    "optimizer",
    "schedule",
    "crop_flip",
    "test_crop_pct",
)


@dataclass(frozen=True, eq=False)
class Cell:
    """One unit of work; plain data, so it pickles to Ray workers."""

    suite: str
    suite_version: int
    method: str
    preset: str | None
    overrides: Mapping[str, Any]
    config: Mapping[str, Any]
    """The method's resolved config (defaults, preset, overrides) as a dict."""
    dataset: str
    ipc: int | None
    """``None`` for the upper reference (the whole training set)."""
    seed: int
    distill_model: str
    eval_models: tuple[str, ...]
    eval_seeds: tuple[int, ...]
    eval: Mapping[str, Any]
    """The resolved ``EvalConfig`` as a dict."""
    role: str = "method"
    """``method``, ``random`` (lower reference) or ``full`` (upper reference)."""
    device_type: str = "cpu"
    """``cpu`` or ``cuda``: part of the hash, so a GPU run never counts a CPU run's cell as done."""
    resolution: int | None = None
    """The suite's ``data.resolution`` (image-file datasets); in the hash only when set."""
    shards: int = 1
    """Class shards the set is distilled in; not in the hash: the set does not depend on it."""
    source: Mapping[str, Any] | None = None
    """A published set imported instead of distilled (``dd-bench import``'s options, ``path``
    and the ``sha256`` of its files); in the hash without the path, so moving it reruns nothing."""

    @property
    def ipc_label(self) -> str:
        return "all" if self.ipc is None else str(self.ipc)

    @property
    def key(self) -> str:
        return f"{self.method}/{self.dataset}/ipc{self.ipc_label}/seed{self.seed}"

    @property
    def config_hash(self) -> str:
        return stable_hash(
            {
                "protocol": PROTOCOL,
                "suite_version": self.suite_version,
                "method": self.method,
                "config": dict(self.config),
                "dataset": self.dataset,
                "ipc": self.ipc,
                "seed": self.seed,
                "distill_model": self.distill_model,
                "eval": hashed_eval(self.eval),
                "eval_seeds": list(self.eval_seeds),
                "device_type": self.device_type,
                **({"resolution": self.resolution} if self.resolution is not None else {}),
                **(
                    {"source": {k: v for k, v in self.source.items() if k != "path"}} if self.source is not None else {}
                ),
            }
        )

    def resolved(self) -> dict[str, Any]:
        """Everything the cell ran with, for the params and the ``config.yaml`` artifact."""
        return {
            "suite": self.suite,
            "suite_version": self.suite_version,
            "method": self.method,
            "preset": self.preset,
            "overrides": dict(self.overrides),
            "config": dict(self.config),
            "dataset": self.dataset,
            "ipc": self.ipc_label,
            "seed": self.seed,
            "distill_model": self.distill_model,
            "eval_models": list(self.eval_models),
            "eval_seeds": list(self.eval_seeds),
            "eval": dict(self.eval),
            "role": self.role,
            "device_type": self.device_type,
            **({"resolution": self.resolution} if self.resolution is not None else {}),
            "shards": self.shards,
            **({"source": dict(self.source)} if self.source is not None else {}),
            "config_hash": self.config_hash,
        }


@dataclass
class CellResult:
    key: str
    status: str
    """``done``, ``skipped`` or ``failed``."""
    run_id: str | None = None
    error: str | None = None
    accuracies: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def plan(suite: Suite, registry: Any, device_type: str = "cpu") -> list[Cell]:
    """Every cell of a validated suite (``methods: all`` already expanded) on ``device_type``."""
    from .interchange import source_files_hash

    cells = []
    for entry in suite.methods or ():
        if entry.source is not None:  # a published set: one cell per IPC, seed 0, nothing distilled
            options = {k: v for k, v in entry.source.items() if k not in ("paths", "dataset")}
            ev = jsonable(dataclasses.asdict(eval_config(suite.eval, entry.eval)))
            for dataset in [entry.source.get("dataset") or suite.datasets[0]]:
                for ipc, path in sorted(entry.source["paths"].items()):
                    source = {**options, "path": path, "sha256": source_files_hash(Path(path))}
                    cells.append(
                        Cell(
                            suite.name,
                            suite.version,
                            entry.name,
                            None,
                            {},
                            {},
                            dataset,
                            ipc,
                            0,
                            suite.distill_model,
                            tuple(suite.eval_models),
                            tuple(suite.eval_seeds),
                            ev,
                            device_type=device_type,
                            resolution=suite.resolution,
                            source=source,
                        )
                    )
            continue
        spec = registry.distiller(entry.name)
        ev = jsonable(dataclasses.asdict(eval_config(suite.eval, entry.eval)))
        shards = entry.shards or (suite.shards if spec.sharding is not None else 1)
        role = (
            "full" if entry.name == suite.full_method else "random" if entry.name == suite.random_method else "method"
        )
        ipcs: Sequence[int | None] = [None] if role == "full" else (entry.ipcs or suite.ipcs)
        for dataset in suite.datasets:
            for ipc in ipcs:
                preset = entry.preset_for(ipc)
                config = jsonable(dataclasses.asdict(spec.resolve_config(preset, entry.overrides)))
                for seed in entry.seeds or suite.seeds:
                    cells.append(
                        Cell(
                            suite=suite.name,
                            suite_version=suite.version,
                            method=entry.name,
                            preset=preset,
                            overrides=dict(entry.overrides),
                            config=config,
                            dataset=dataset,
                            ipc=ipc,
                            seed=seed,
                            distill_model=suite.distill_model,
                            eval_models=tuple(suite.eval_models),
                            eval_seeds=tuple(suite.eval_seeds),
                            eval=ev,
                            role=role,
                            device_type=device_type,
                            resolution=suite.resolution,
                            shards=shards,
                        )
                    )
    return cells


def parse_only(items: Iterable[str]) -> dict[str, set[str]]:
    """``["method=random,full", "ipc=1"]`` -> ``{"method": {"random", "full"}, "ipc": {"1"}}``."""
    only: dict[str, set[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        wanted = [v.strip() for v in values.split(",")]
        if not sep or key not in ONLY_KEYS or not all(wanted):
            raise ConfigError(
                f"--only {item!r} is not allowed: use KEY=V1,V2 (no empty value) with KEY one of {', '.join(ONLY_KEYS)}"
            )
        only.setdefault(key, set()).update(wanted)
    return only


def select(cells: Sequence[Cell], only: Mapping[str, set[str]]) -> list[Cell]:
    """The cells that match every ``--only`` filter; a value that matches nothing is an error."""

    def value(cell: Cell, key: str) -> str:
        return cell.ipc_label if key == "ipc" else str(getattr(cell, key))

    for key, wanted in only.items():
        present = {value(c, key) for c in cells}
        missing = sorted(wanted - present)
        if missing:
            raise ConfigError(
                f"--only {key}={','.join(missing)} matches no cell of the suite (it has: {', '.join(sorted(present))})"
            )
    return [c for c in cells if all(value(c, k) in v for k, v in only.items())]
