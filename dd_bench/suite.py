"""Suite files: one YAML document that names everything a benchmark run needs.

A suite is validated as a whole before any work starts: every unknown name and every bad
value is collected and reported in one :class:`~dd_bench.errors.ConfigError`.

Schema (``dd_bench/suites/demo.yaml`` is a complete example)::

    name: demo                      # experiment name in MLflow; [a-z0-9_.-]
    version: 1                      # bump when the protocol changes; part of every cell's hash
    description: free text
    datasets: [digits]              # registered dataset names
    ipcs: [1, 10]                   # images per class (positive integers)
    methods: all                    # every registered distiller with `default_preset` (smoke where it lacks it); or a list
                                    # of names; or a mapping (an `all: {}` key adds every other
                                    # registered distiller with the default preset):
    methods:
      random: {}                    # preset defaults to `default_preset`
      mtt:
        preset: smoke
        overrides: {iterations: 50} # fields of the method's config dataclass
        eval: {epochs: 50}          # per-method evaluation overrides (e.g. the full-data row)
        seeds: [0]                  # per-method distillation seeds (default: the suite's)
        ipcs: [1]                   # per-method IPCs (default: the suite's)
        shards: 4                   # run each cell as 4 class shards (methods that declare them)
      mtt-published:                # a published set instead of a distiller: its own row,
        import:                     # "mtt-published (published set)"; one cell per IPC (seed 0)
          format: mtt               # dc, mtt, datm, image-folder or tensors (see `dd-bench import`)
          path: {10: sets/mtt-cifar10-ipc10}   # per IPC; relative to the suite file's folder
          dataset: cifar10          # needed when the suite has several datasets
          zca: true                 # and normalization, lr, experiment, method as `dd-bench import` takes them
    default_preset: smoke           # preset for methods that name none (default: none = defaults)
    distill_model: convnet          # the distillation architecture
    eval_models: [convnet, mlp]     # evaluation architectures (cross-architecture columns)
    seeds: [0, 1]                   # distillation seeds: one cell per seed
    eval_seeds: 2                   # fresh networks per eval architecture per cell (seeds 0..k-1)
    eval: {epochs: 300}             # EvalConfig overrides for every method
    references: {random: random, full: full}   # lower/upper reference rows (null: none)
    budget_hours: 0.2               # expected wall time; the runner warns when it is exceeded
    data: {root: null, download: false, resolution: null}   # resolution: N x N for image-file datasets
    shards: 1                       # class shards per cell for every method that declares them
                                    # (others run whole); not in the cell hash: the set is the same

The upper reference (``references.full``) ignores IPC: it gets one cell per dataset x seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, DDBenchError
from .limits import FLOAT_MAX, INT64_MAX, MAX_SEED, MAX_SEED_COUNT

SUITE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
TOP_LEVEL = {
    "name",
    "version",
    "description",
    "datasets",
    "ipcs",
    "methods",
    "default_preset",
    "distill_model",
    "eval_models",
    "seeds",
    "eval_seeds",
    "eval",
    "references",
    "budget_hours",
    "data",
    "shards",
}
METHOD_KEYS = {"preset", "overrides", "eval", "seeds", "ipcs", "shards", "import"}
IMPORT_KEYS = {"format", "path", "dataset", "normalization", "zca", "lr", "experiment", "method"}


@dataclass(frozen=True)
class MethodEntry:
    """One method of a suite: a registered distiller, a preset and overrides."""

    name: str
    preset: str | Mapping[int, str] | None = None
    """A preset name, or ``{ipc: preset}`` for methods whose papers tune per IPC."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    eval: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    ipcs: tuple[int, ...] | None = None
    shards: int | None = None
    """Class shards per cell (default: the suite's ``shards`` when the method declares them)."""
    source: Mapping[str, Any] | None = None
    """A published set instead of a distiller: ``dd-bench import``'s options, ``paths`` by IPC."""

    def preset_for(self, ipc: int | None) -> str | None:
        if isinstance(self.preset, Mapping):
            if ipc is None:
                raise ConfigError(f"method {self.name}: a per-IPC preset needs an IPC")
            return self.preset.get(ipc)
        return self.preset

    def presets(self) -> list[str | None]:
        return list(self.preset.values()) if isinstance(self.preset, Mapping) else [self.preset]


@dataclass(frozen=True)
class Suite:
    """A parsed suite file (not yet checked against the registry: see :func:`validate`)."""

    name: str
    version: int
    datasets: tuple[str, ...]
    ipcs: tuple[int, ...]
    methods: tuple[MethodEntry, ...] | None
    """``None`` means ``methods: all``: every registered distiller, resolved by :func:`expand`."""
    distill_model: str
    eval_models: tuple[str, ...]
    seeds: tuple[int, ...]
    eval_seeds: tuple[int, ...]
    eval: Mapping[str, Any] = field(default_factory=dict)
    default_preset: str | None = None
    references: Mapping[str, str | None] = field(default_factory=lambda: {"random": "random", "full": "full"})
    budget_hours: float | None = None
    data_root: str | None = None
    download: bool = False
    resolution: int | None = None
    description: str = ""
    path: Path | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    include_all: bool = False
    """``methods`` has an ``all`` key: the listed entries plus every other registered distiller."""
    shards: int = 1
    """Class shards per cell of every method that declares :class:`~dd_bench.specs.Sharding`."""
    problems: tuple[str, ...] = ()
    """Shape problems found by :func:`parse`; :func:`validate` reports them with the rest."""

    @property
    def random_method(self) -> str | None:
        return self.references.get("random")

    @property
    def full_method(self) -> str | None:
        return self.references.get("full")

    def method(self, name: str) -> MethodEntry:
        for m in self.methods or ():
            if m.name == name:
                return m
        raise ConfigError(f"suite {self.name}: method {name!r} is not in the suite")

    def primary_eval_model(self) -> str:
        """The eval architecture the fairness columns use: the distillation one if evaluated."""
        return self.distill_model if self.distill_model in self.eval_models else self.eval_models[0]


# ---------------------------------------------------------------------------- parsing


def _int_list(value: Any, key: str, errors: list[str], minimum: int, maximum: int = INT64_MAX) -> tuple[int, ...]:
    allowed = f"integers from {minimum} to {maximum}" if maximum < INT64_MAX else f"integers >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, (list, tuple, int)):
        errors.append(f"{key}={value!r} is not allowed: use a list of {allowed}")
        return ()
    items = [value] if isinstance(value, int) else list(value)
    bad = [v for v in items if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum]
    if bad or not items:
        errors.append(f"{key}={value!r} is not allowed: use a non-empty list of {allowed}")
        return ()
    if len(set(items)) != len(items):
        errors.append(f"{key}={value!r} has repeats")
        return ()
    return tuple(items)


def _name_list(value: Any, key: str, errors: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        errors.append(f"{key}={value!r} is not allowed: use a non-empty list of names")
        return ()
    if len(set(value)) != len(value):
        errors.append(f"{key}={value!r} has repeats")
    return tuple(value)


def _mapping(value: Any, key: str, errors: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append(f"{key}={value!r} is not allowed: use a mapping of key: value")
        return {}
    return dict(value)


def _shard_count(value: Any, where: str, errors: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT64_MAX:
        errors.append(f"{where}={value!r} is not allowed: use an integer >= 1")
        return None
    return value


def _import_source(
    body: Mapping[str, Any], where: str, suite_path: Path | None, errors: list[str]
) -> dict[str, Any] | None:
    """A method entry's ``import:`` mapping, checked for shape; paths resolved against the suite's folder."""
    spec = _mapping(body.get("import"), f"{where}.import", errors)
    bad = sorted(set(spec) - IMPORT_KEYS, key=repr)
    clash = sorted(set(body) & {"preset", "overrides", "shards", "seeds", "ipcs"})
    if bad:
        errors.append(
            f"{where}.import: unknown key {', '.join(map(repr, bad))} (allowed: {', '.join(sorted(IMPORT_KEYS))})"
        )
    if clash:
        errors.append(
            f"{where}: {', '.join(clash)} cannot go with import (a published set is not distilled; give path: {{ipc: path}})"
        )
    if not isinstance(spec.get("format"), str) or not spec.get("format"):
        errors.append(
            f"{where}.import.format={spec.get('format')!r} is not allowed: name a format (dd-bench plugins lists them)"
        )
    raw = spec.get("path")
    if (
        not isinstance(raw, Mapping)
        or not raw
        or not all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 1 and isinstance(v, str) and v
            for k, v in raw.items()
        )
    ):
        errors.append(f"{where}.import.path={raw!r} is not allowed: use {{ipc: path}}, e.g. {{10: sets/mtt-ipc10}}")
        return None
    for key, kind in (
        ("dataset", str),
        ("normalization", str),
        ("method", str),
        ("zca", bool),
        ("experiment", int),
        ("lr", (int, float)),
    ):
        value = spec.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
            errors.append(
                f"{where}.import.{key}={value!r} is not allowed: use a {'number' if key == 'lr' else getattr(kind, '__name__', kind)}"
            )
    base = suite_path.parent if suite_path is not None else Path.cwd()
    paths = {ipc: str(p if (p := Path(v).expanduser()).is_absolute() else base / p) for ipc, v in raw.items()}
    return {**{k: v for k, v in spec.items() if k != "path"}, "paths": paths}


def parse(doc: Any, path: Path | None = None) -> tuple[Suite | None, list[str]]:
    """A ``Suite`` from a YAML document and the list of problems found in its shape."""
    errors: list[str] = []
    if not isinstance(doc, Mapping):
        return None, [f"a suite must be a mapping of keys, got {type(doc).__name__}"]
    unknown = sorted(set(doc) - TOP_LEVEL, key=repr)  # YAML keys need not be strings
    if unknown:
        errors.append(f"unknown key {', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(TOP_LEVEL))})")
    for key in ("name", "datasets", "ipcs", "methods", "eval_models", "seeds"):
        if key not in doc:
            errors.append(f"missing key {key!r}")
    name = doc.get("name", "")
    if "name" in doc and (not isinstance(name, str) or not SUITE_NAME_RE.match(name)):
        errors.append(f"name={name!r} is not allowed: use lower-case letters, digits, '_', '-', '.'")
    version = doc.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        errors.append(f"version={version!r} is not allowed: use an integer >= 1")
    datasets = _name_list(doc["datasets"], "datasets", errors) if "datasets" in doc else ()
    ipcs = _int_list(doc["ipcs"], "ipcs", errors, 1) if "ipcs" in doc else ()
    seeds = _int_list(doc["seeds"], "seeds", errors, 0, MAX_SEED) if "seeds" in doc else ()
    eval_models = _name_list(doc["eval_models"], "eval_models", errors) if "eval_models" in doc else ()
    distill_model = doc.get("distill_model", "convnet")
    if not isinstance(distill_model, str) or not distill_model:
        errors.append(f"distill_model={distill_model!r} is not allowed: use a model name")
    raw_eval_seeds = doc.get("eval_seeds", 1)
    if isinstance(raw_eval_seeds, int) and not isinstance(raw_eval_seeds, bool):
        if not 1 <= raw_eval_seeds <= MAX_SEED_COUNT:
            errors.append(
                f"eval_seeds={raw_eval_seeds!r} is not allowed: use a count from 1 to {MAX_SEED_COUNT} or a list of seeds"
            )
            eval_seeds: tuple[int, ...] = ()
        else:
            eval_seeds = tuple(range(raw_eval_seeds))
    else:
        eval_seeds = _int_list(raw_eval_seeds, "eval_seeds", errors, 0, MAX_SEED)
    default_preset = doc.get("default_preset")
    if default_preset is not None and not isinstance(default_preset, str):
        errors.append(f"default_preset={default_preset!r} is not allowed: use a preset name")
        default_preset = None  # reported; the methods go on without it

    methods: tuple[MethodEntry, ...] | None = ()
    include_all = False
    raw_methods = doc.get("methods")
    if raw_methods == "all":
        methods = None
    elif isinstance(raw_methods, (list, tuple)) and all(isinstance(m, str) for m in raw_methods) and raw_methods:
        methods = tuple(MethodEntry(m, default_preset) for m in raw_methods)
        if len(set(raw_methods)) != len(raw_methods):
            errors.append(f"methods={raw_methods!r} has repeats")
    elif isinstance(raw_methods, Mapping) and raw_methods:
        entries = []
        include_all = False
        for mname, body in raw_methods.items():
            if mname == "all":
                include_all = True
                if body not in (None, {}):
                    errors.append(
                        "methods.all takes no settings: write `all: {}` and give per-method settings under their names"
                    )
                continue
            where = f"methods.{mname}"
            body = _mapping(body, where, errors)
            bad = sorted(set(body) - METHOD_KEYS, key=repr)
            if bad:
                errors.append(
                    f"{where}: unknown key {', '.join(map(repr, bad))} (allowed: {', '.join(sorted(METHOD_KEYS))})"
                )
            preset = body.get("preset", default_preset)
            per_ipc = (
                isinstance(preset, Mapping)
                and preset
                and all(
                    isinstance(k, int) and not isinstance(k, bool) and k >= 1 and isinstance(v, str)
                    for k, v in preset.items()
                )
            )
            if per_ipc:
                preset = dict(preset)
            elif preset is not None and not isinstance(preset, str):
                errors.append(f"{where}.preset={preset!r} is not allowed: use a preset name or {{ipc: preset name}}")
                preset = None  # reported; validation goes on without it
            m_seeds = (
                _int_list(body["seeds"], f"{where}.seeds", errors, 0, MAX_SEED)
                if body.get("seeds") is not None
                else None
            )
            m_ipcs = _int_list(body["ipcs"], f"{where}.ipcs", errors, 1) if body.get("ipcs") is not None else None
            m_shards = _shard_count(body.get("shards"), f"{where}.shards", errors)
            source = None
            if "import" in body:
                source = _import_source(body, where, path, errors)
                m_ipcs = tuple(sorted(source["paths"])) if source else m_ipcs
            entries.append(
                MethodEntry(
                    str(mname),
                    preset,
                    _mapping(body.get("overrides"), f"{where}.overrides", errors),
                    _mapping(body.get("eval"), f"{where}.eval", errors),
                    m_seeds,
                    m_ipcs,
                    m_shards,
                    source,
                )
            )
        methods = tuple(entries)
    elif "methods" in doc:
        errors.append(
            f"methods={raw_methods!r} is not allowed: use 'all', a list of names or a mapping name: {{preset, overrides}}"
        )

    references = {"random": "random", "full": "full"}
    raw_refs = _mapping(doc.get("references"), "references", errors)
    bad = sorted(set(raw_refs) - set(references), key=repr)
    if bad:
        errors.append(f"references: unknown key {', '.join(map(repr, bad))} (allowed: random, full)")
    for k in references:
        if k in raw_refs:
            if raw_refs[k] is not None and not isinstance(raw_refs[k], str):
                errors.append(f"references.{k}={raw_refs[k]!r} is not allowed: use a method name or null")
            references[k] = raw_refs[k]
    budget = doc.get("budget_hours")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= FLOAT_MAX
    ):
        errors.append(f"budget_hours={budget!r} is not allowed: use a finite number > 0")
    data = _mapping(doc.get("data"), "data", errors)
    bad = sorted(set(data) - {"root", "download", "resolution"}, key=repr)
    if bad:
        errors.append(f"data: unknown key {', '.join(map(repr, bad))} (allowed: root, download, resolution)")
    resolution = data.get("resolution")
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1):
        errors.append(f"data.resolution={resolution!r} is not allowed: use an integer >= 1 or null")
        resolution = None
    if data.get("root") is not None and not isinstance(data["root"], str):
        errors.append(f"data.root={data['root']!r} is not allowed: use a folder path or null")
    if not isinstance(data.get("download", False), bool):
        errors.append(f"data.download={data.get('download')!r} is not allowed: use true or false")
    description = doc.get("description", "")
    suite = Suite(
        name=name if isinstance(name, str) else "",
        version=version if isinstance(version, int) else 1,
        datasets=datasets,
        ipcs=ipcs,
        methods=methods,
        distill_model=distill_model if isinstance(distill_model, str) else "convnet",
        eval_models=eval_models,
        seeds=seeds,
        eval_seeds=eval_seeds,
        eval=_mapping(doc.get("eval"), "eval", errors),
        default_preset=default_preset if isinstance(default_preset, str) else None,
        references=references,
        budget_hours=float(budget) if isinstance(budget, (int, float)) and not isinstance(budget, bool) else None,
        data_root=data["root"] if isinstance(data.get("root"), str) and data["root"] else None,
        download=bool(data.get("download", False)),
        resolution=resolution,
        description=str(description or "").strip(),
        path=path,
        raw=dict(doc),
        include_all=include_all,
        shards=_shard_count(doc.get("shards"), "shards", errors) or 1,
        problems=tuple(errors),
    )
    return suite, errors


SHIPPED_SUITES = Path(__file__).resolve().parent / "suites"


def find_suite(name_or_path: str | Path) -> Path:
    """A suite file: a path, or a name looked up in ``./suites`` (which overrides) and then in the suites
    dd-bench ships (``dd_bench/suites/``, package data, so a wheel has them)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.suffix not in (".yaml", ".yml") and p.parent == Path("."):
        for folder in (Path.cwd() / "suites", SHIPPED_SUITES):
            for suffix in (".yaml", ".yml"):
                if (folder / f"{p.name}{suffix}").is_file():
                    return folder / f"{p.name}{suffix}"
    raise ConfigError(
        f"suite {str(name_or_path)!r} not found (give a path, a name in ./suites/, or one of the shipped suites: "
        f"{', '.join(sorted(p.stem for p in SHIPPED_SUITES.glob('*.yaml')))})"
    )


def load_suite(name_or_path: str | Path, strict: bool = False) -> Suite:
    """Read and parse a suite file.

    Shape problems are kept on the suite for :func:`validate` to report together with
    unknown names; ``strict`` raises them here.
    """
    import yaml

    path = find_suite(name_or_path)
    try:
        doc = yaml.load(path.read_text(), Loader=_unique_keys_loader())
    except DuplicateKeyError as exc:
        raise ConfigError(f"suite {path}: {exc}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"suite {path}: not readable YAML ({exc})".replace("\n", " ")) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"suite {path}: not readable YAML (nested too deeply)") from None
    suite, errors = parse(doc, path)
    if suite is None or (strict and errors):
        raise SuiteError(path, errors)
    return suite


class DuplicateKeyError(ValueError):
    """A mapping of a suite names one key twice."""


def _unique_keys_loader() -> type:
    """PyYAML's safe loader, refusing a mapping that names a key twice at any depth.

    PyYAML keeps the last value silently, so a suite edited in two places runs with whichever
    came last; here the user gets both line numbers instead.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may be overridden, as YAML says
                    continue
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base loader says so
                    continue
                if first is not None:
                    where = f"lines {first} and {line}" if first != line else f"line {line}"
                    raise DuplicateKeyError(f"key {key!r} appears twice ({where}): keep one")
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return Loader


class SuiteError(ConfigError):
    """Every problem of a suite in one message."""

    def __init__(self, where: Any, errors: Sequence[str]):
        self.errors = list(errors)
        n = len(self.errors)
        super().__init__(f"suite {where}: {n} problem{'s' if n != 1 else ''}: " + "; ".join(self.errors))


# ---------------------------------------------------------------------------- validation


def _all_preset(spec: Any, default_preset: str | None) -> str | None:
    """The preset ``methods: all`` gives a method: ``default_preset``, or ``smoke`` (which every distiller
    declares) when the method has no preset of that name, so a plugin without a ``demo`` preset still runs."""
    return default_preset if default_preset is None or default_preset in spec.presets else "smoke"


def expand(suite: Suite, registry: Any) -> Suite:
    """``methods: all`` replaced by every registered distiller, sorted by name."""
    if suite.methods is not None and not suite.include_all:
        return suite
    listed = {m.name: m for m in suite.methods or ()}
    extra = [
        MethodEntry(name, _all_preset(registry.distillers[name].spec, suite.default_preset))
        for name in sorted(registry.distillers)
        if name not in listed
    ]
    methods = tuple(sorted([*listed.values(), *extra], key=lambda m: m.name))
    return dataclasses.replace(suite, methods=methods, include_all=False)


def check_eval_overrides(values: Mapping[str, Any], where: str, errors: list[str]) -> None:
    from .evaluate import EvalConfig
    from .specs import check_value

    before = len(errors)
    hints = typing.get_type_hints(EvalConfig)
    known = {f.name for f in dataclasses.fields(EvalConfig)}
    unknown = sorted(map(str, set(values) - known))
    if unknown:
        errors.append(f"{where}: unknown setting {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
        return
    for key, value in values.items():
        try:
            check_value(hints[key], value, f"{where}.{key}")
        except DDBenchError as exc:
            errors.append(str(exc))
    if len(errors) == before:
        try:
            eval_config(values)
        except DDBenchError as exc:
            errors.append(f"{where}: {exc}")


def eval_config(*layers: Mapping[str, Any]) -> Any:
    """``EvalConfig`` of the named ``recipe`` the layers give (default classic), then each layer of overrides in turn."""
    from .evaluate import EvalConfig

    values: dict[str, Any] = {}
    for layer in layers:
        values.update(layer)
    if isinstance(values.get("lr"), int):
        values["lr"] = float(values["lr"])
    return EvalConfig.named(values.pop("recipe", "classic"), **values)


def validate(suite: Suite, registry: Any, *, check_data: bool = True, data_cache: dict | None = None) -> Suite:
    """Check every name and value against the registry (and the data, for IPCs).

    Returns the suite with ``methods: all`` expanded. Raises one :class:`SuiteError` listing
    every problem. With ``check_data`` each dataset is loaded once (before any work) so that
    an IPC larger than a class, or a missing data file, fails here.
    """
    from . import api
    from .errors import UnknownNameError
    from .shards import check_count

    errors: list[str] = list(suite.problems)
    suite = expand(suite, registry)
    for ds in suite.datasets:
        if ds not in registry.datasets:
            errors.append(str(UnknownNameError("dataset", ds, registry.datasets)))
    for where, name in [("distill_model", suite.distill_model)] + [("eval_models", m) for m in suite.eval_models]:
        try:
            registry.model(name)
        except DDBenchError as exc:
            errors.append(f"{where}: {exc}")
    check_eval_overrides(suite.eval, "eval", errors)
    teachers = [("eval.teacher_model", suite.eval.get("teacher_model"))] + [
        (f"methods.{e.name}.eval.teacher_model", e.eval.get("teacher_model")) for e in suite.methods or ()
    ]
    for where, name in teachers:
        if isinstance(name, str):
            try:
                registry.model(name)
            except DDBenchError as exc:
                errors.append(f"{where}: {exc}")
    for entry in suite.methods or ():
        if entry.source is not None:
            from .interchange import import_formats

            if entry.source["format"] not in import_formats(registry):
                errors.append(
                    f"methods.{entry.name}.import.format={entry.source['format']!r} is not allowed: use one of"
                    f" {', '.join(import_formats(registry))}"
                )
            if not SUITE_NAME_RE.match(entry.name):
                errors.append(
                    f"methods.{entry.name}: an imported row's name must use lower-case letters, digits, '_', '-', '.'"
                )
            dataset = entry.source.get("dataset")
            if dataset is None and len(suite.datasets) > 1:
                errors.append(
                    f"methods.{entry.name}.import: name its dataset (the suite has {', '.join(suite.datasets)})"
                )
            elif dataset is not None and dataset not in suite.datasets:
                errors.append(
                    f"methods.{entry.name}.import.dataset={dataset!r} is not one of the suite's datasets ({', '.join(suite.datasets)})"
                )
            for ipc, where in entry.source["paths"].items():
                if not Path(where).exists():
                    errors.append(f"methods.{entry.name}.import.path of ipc {ipc}: {where} does not exist")
            if entry.eval:
                check_eval_overrides({**suite.eval, **entry.eval}, f"methods.{entry.name}.eval", errors)
            continue
        if entry.name not in registry.distillers:
            errors.append(f"methods: {UnknownNameError('method', entry.name, registry.distillers)}")
            continue
        for preset in entry.presets():
            try:
                api.resolve_config(registry, entry.name, preset, entry.overrides)
            except DDBenchError as exc:
                errors.append(f"methods.{entry.name}: {exc}")
        if entry.shards is not None:
            try:
                check_count(registry.distiller(entry.name), entry.shards)
            except DDBenchError as exc:
                errors.append(f"methods.{entry.name}: {exc}")
        if isinstance(entry.preset, Mapping):
            if entry.name == suite.full_method:
                errors.append(f"methods.{entry.name}.preset: the upper reference ignores IPC, give one preset name")
            else:
                lacking = sorted(set(entry.ipcs or suite.ipcs) - set(entry.preset))
                if lacking:
                    errors.append(f"methods.{entry.name}.preset names no preset for ipc {', '.join(map(str, lacking))}")
        if entry.eval:
            check_eval_overrides({**suite.eval, **entry.eval}, f"methods.{entry.name}.eval", errors)
    names = {m.name for m in suite.methods or ()}
    for role, ref in suite.references.items():
        if ref is not None and ref not in names:
            errors.append(f"references.{role}={ref!r} is not one of the suite's methods ({', '.join(sorted(names))})")
    if not suite.methods:
        errors.append("methods: no methods to run")
    if check_data and not errors:
        cache = data_cache if data_cache is not None else {}
        for ds in suite.datasets:
            try:
                data = cache.get(ds) or api.load_data(registry, ds, suite.data_root, suite.download, suite.resolution)
                cache[ds] = data
            except DDBenchError as exc:
                errors.append(f"dataset {ds}: {exc}")
                continue
            ipcs = set(suite.ipcs)
            for entry in suite.methods or ():
                if entry.name != suite.full_method:
                    ipcs |= set(entry.ipcs or ())
            for model in dict.fromkeys((suite.distill_model, *suite.eval_models)):
                try:
                    registry.model(model).build(data.shape)
                except Exception as exc:  # a plugin's own error is still a bad suite
                    errors.append(f"model {model} on {ds}: {exc}")
            for ipc in sorted(ipcs):
                try:
                    api.check_ipc(data, ipc)
                except DDBenchError as exc:
                    errors.append(str(exc))
    if errors:
        raise SuiteError(suite.path or suite.name, errors)
    return suite


def stable_hash(obj: Any) -> str:
    """A short hash of a JSON-able object, independent of key order."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
