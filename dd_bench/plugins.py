"""The plugin manager and the registries built from it, with provenance for every name.

Plugins come from the ``dd_bench`` entry-point group, built-ins included (dd-bench's own
distribution advertises them). ``DD_BENCH_DISABLE_PLUGIN_AUTOLOAD=1`` keeps only the
entry points of dd-bench itself; ``DD_BENCH_BLOCK_PLUGINS=a,b`` skips named entry points.
"""

from __future__ import annotations

import os
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


def get_plugin_manager(
    plugins: Iterable[Any] = (), *, autoload: bool | None = None, block: Iterable[str] = ()
) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, the entry-point plugins and ``plugins``.

    ``autoload=None`` reads ``DD_BENCH_DISABLE_PLUGIN_AUTOLOAD``; when autoload is off only
    dd-bench's own (built-in) entry points load.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if autoload is None:
        autoload = not _env_flag(AUTOLOAD_ENV)
    blocked = set(block) | {b.strip() for b in os.environ.get(BLOCK_ENV, "").split(",") if b.strip()}
    for name in blocked:
        pm.set_blocked(name)
    if autoload:
        pm.load_setuptools_entrypoints(PROJECT)
    else:
        for ep in entry_points(group=PROJECT):
            if ep.dist is not None and ep.dist.name == SELF_DISTRIBUTION and not pm.is_blocked(ep.name):
                pm.register(ep.load(), name=ep.name)
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        pm.register(plugin, name=name if pm.get_plugin(name) is None else f"{name}-{id(plugin)}")
    pm.check_pending()
    return pm


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
            for spec in impl.function() or []:
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
            raise UnknownNameError("dataset", name, self.datasets)
        return self.datasets[name].spec

    def distiller(self, name: str) -> DistillerSpec:
        if name not in self.distillers:
            raise UnknownNameError("method", name, self.distillers)
        return self.distillers[name].spec

    def optimizer(self, name: str) -> OptimizerSpec | None:
        """An expert optimizer by name; ``sgd`` is built in (None: plain SGD of the recipe)."""
        if name == "sgd":
            return None
        if name not in self.optimizers:
            raise UnknownNameError("expert optimizer", name, ["sgd", *self.optimizers])
        return self.optimizers[name].spec

    def format(self, name: str) -> FormatSpec:
        """A file format a plugin registered (the host's generic ones are ``dd_bench.interchange``'s)."""
        if name not in self.formats:
            raise UnknownNameError("format", name, self.formats)
        return self.formats[name].spec

    def model(self, name: str) -> ModelSpec:
        """A registered model, or a namespaced one (``timm:x``) resolved by a plugin."""
        if name in self.models:
            return self.models[name].spec
        spec = self.pm.hook.ddb_resolve_model(name=name)
        if spec is None:
            raise UnknownNameError("model", name, self.models)
        return spec
