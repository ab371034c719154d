"""The plugin manager and the registries built from it, with provenance for every name.

Plugins come from the ``dd_bench`` entry-point group, built-ins included (dd-bench's own
distribution advertises them). ``DD_BENCH_DISABLE_PLUGIN_AUTOLOAD=1`` keeps only the
entry points of dd-bench itself; ``DD_BENCH_BLOCK_PLUGINS=a,b`` skips named entry points.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import Distribution, entry_points
from typing import Any, Generic, TypeVar

import pluggy

from . import PROJECT, hookspecs
from .errors import ConfigError, UnknownNameError
from .formats import FormatSpec
from .specs import DatasetSpec, DistillerSpec, ModelSpec, OptimizerSpec

SELF_DISTRIBUTION = "dd-bench"
AUTOLOAD_ENV = "DD_BENCH_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "DD_BENCH_BLOCK_PLUGINS"

S = TypeVar("S", DatasetSpec, ModelSpec, DistillerSpec, OptimizerSpec, FormatSpec)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that failed to import or register, and was skipped."""

    name: str
    distribution: str | None
    version: str | None
    error: str

    def line(self) -> str:
        dist = f"{self.distribution} {self.version or ''}".strip() if self.distribution else "unpackaged"
        return (
            f"plugin {self.name!r} (distribution {dist}) failed to load ({self.error}) and is skipped;"
            f" fix or uninstall it, or set {BLOCK_ENV}={self.name} to skip it quietly"
        )


_BROKEN: dict[str, BrokenPlugin] = {}
"""Plugins skipped in this process, by entry-point name: each is warned about once."""


def broken_plugins() -> list[BrokenPlugin]:
    """The plugins this process skipped because they failed to load."""
    return list(_BROKEN.values())


def _skip(name: str, dist: Distribution | None, exc: BaseException) -> None:
    if name in _BROKEN:
        return
    reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}".rstrip(": ")
    broken = BrokenPlugin(name, dist.name if dist else None, dist.version if dist else None, reason)
    _BROKEN[name] = broken
    print(f"dd-bench: warning: {broken.line()}", file=sys.stderr)


def get_plugin_manager(
    plugins: Iterable[Any] = (), *, autoload: bool | None = None, block: Iterable[str] = ()
) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, the entry-point plugins and ``plugins``.

    ``autoload=None`` reads ``DD_BENCH_DISABLE_PLUGIN_AUTOLOAD``; when autoload is off only
    dd-bench's own (built-in) entry points load.

    Entry points load one by one: one that raises on import (or that pluggy refuses) is skipped
    with a one-line warning on stderr, once per process, so that one broken third-party plugin
    does not take every command down. Commands that never ask for its names work as before;
    one that does gets the usual unknown-name error, which names the skipped plugin.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if autoload is None:
        autoload = not _env_flag(AUTOLOAD_ENV)
    blocked = set(block) | {b.strip() for b in os.environ.get(BLOCK_ENV, "").split(",") if b.strip()}
    for name in blocked:
        pm.set_blocked(name)
    dists: dict[str, Distribution | None] = {}
    for ep in entry_points(group=PROJECT):
        own = ep.dist is not None and ep.dist.name == SELF_DISTRIBUTION
        if not (autoload or own) or pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        dists[ep.name] = ep.dist
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:
            if pm.has_plugin(ep.name):
                pm.unregister(name=ep.name)
            _skip(ep.name, ep.dist, exc)
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        pm.register(plugin, name=name if pm.get_plugin(name) is None else f"{name}-{id(plugin)}")
    while True:  # a hook implementation no spec knows: skip an entry point's plugin, fail on a given one
        try:
            pm.check_pending()
            return pm
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin)
            if name not in dists:
                raise
            pm.unregister(name=name)
            _skip(name, dists[name], exc)


def _distributions_by_module() -> dict[str, Distribution]:
    """Which installed distribution advertises each plugin module in our entry-point group."""
    return {ep.value: ep.dist for ep in entry_points(group=PROJECT) if ep.dist is not None}


@dataclass(frozen=True)
class Registered(Generic[S]):
    """A spec and where it came from."""

    spec: S
    plugin: str
    distribution: str | None
    version: str | None


class Registry:
    """Datasets, models, distillers, expert optimizers and file formats by name, each with the
    plugin that supplied it."""

    def __init__(self, pm: pluggy.PluginManager | None = None):
        self.pm = pm if pm is not None else get_plugin_manager()
        dists = _distributions_by_module()
        self.datasets = self._collect(self.pm.hook.ddb_register_datasets, DatasetSpec, dists)
        self.models = self._collect(self.pm.hook.ddb_register_models, ModelSpec, dists)
        self.distillers = self._collect(self.pm.hook.ddb_register_distillers, DistillerSpec, dists)
        self.optimizers = self._collect(self.pm.hook.ddb_register_optimizers, OptimizerSpec, dists)
        self.formats = self._collect(self.pm.hook.ddb_register_formats, FormatSpec, dists)

    def _collect(self, hook: Any, kind: type[S], dists: dict[str, Distribution]) -> dict[str, Registered[S]]:
        found: dict[str, Registered[S]] = {}
        label = kind.__name__.removesuffix("Spec").lower()
        for impl in reversed(hook.get_hookimpls()):  # registration order
            dist = dists.get(getattr(impl.plugin, "__name__", None))
            if impl.plugin_name in _BROKEN:
                continue
            try:
                specs = impl.function() or []
            except Exception as exc:
                if dist is None:  # a plugin given in Python, not installed: its caller sees the error
                    raise
                _skip(impl.plugin_name, dist, exc)  # an installed plugin's bug: skip it as if it failed to import
                continue
            for spec in specs:
                if not isinstance(spec, kind):
                    raise ConfigError(
                        f"plugin {impl.plugin_name!r} returned {spec!r} from {hook.name}; expected {kind.__name__}"
                    )
                if spec.name in found:
                    raise ConfigError(
                        f"{label} {spec.name!r} is registered twice: by plugin {found[spec.name].plugin!r}"
                        f" and by plugin {impl.plugin_name!r}"
                    )
                found[spec.name] = Registered(
                    spec,
                    impl.plugin_name,
                    dist.name if dist is not None else None,
                    dist.version if dist is not None else None,
                )
        return found

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise _unknown("dataset", name, self.datasets)
        return self.datasets[name].spec

    def distiller(self, name: str) -> DistillerSpec:
        if name not in self.distillers:
            raise _unknown("method", name, self.distillers)
        return self.distillers[name].spec

    def optimizer(self, name: str) -> OptimizerSpec | None:
        """An expert optimizer by name; ``sgd`` is built in (None: plain SGD of the recipe)."""
        if name == "sgd":
            return None
        if name not in self.optimizers:
            raise _unknown("expert optimizer", name, ["sgd", *self.optimizers])
        return self.optimizers[name].spec

    def format(self, name: str) -> FormatSpec:
        """A file format a plugin registered (the host's generic ones are ``dd_bench.interchange``'s)."""
        if name not in self.formats:
            raise _unknown("format", name, self.formats)
        return self.formats[name].spec

    def model(self, name: str) -> ModelSpec:
        """A registered model, or a namespaced one (``timm:x``) resolved by a plugin."""
        if name in self.models:
            return self.models[name].spec
        spec = self.pm.hook.ddb_resolve_model(name=name)
        if spec is None:
            raise _unknown("model", name, self.models)
        return spec


def _unknown(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """The unknown-name error, naming the plugins skipped because they failed to load (one may hold ``name``)."""
    exc = UnknownNameError(kind, name, known)
    if _BROKEN:
        skipped = ", ".join(f"{b.name!r} ({b.distribution or 'unpackaged'})" for b in _BROKEN.values())
        exc.args = (f"{exc.args[0]}; skipped because they failed to load, and may provide it: {skipped}",)
    return exc
