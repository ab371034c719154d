from __future__ import annotations

import inspect
from dataclasses import dataclass

import pytest

from dd_bench import hookimpl, hookspecs
from dd_bench.errors import ConfigError, UnknownNameError
from dd_bench.plugins import Registry, get_plugin_manager
from dd_bench.specs import DistillerSpec, ModelSpec
from dd_bench.testing import make_registry


@dataclass(frozen=True)
class NoConfig:
    pass


class DistillerPlugin:
    @hookimpl
    def ddb_register_distillers(self):
        return [DistillerSpec(name="mine", config_cls=NoConfig, distill=lambda r: None, presets={"smoke": {}})]


class ClashingPlugin:
    @hookimpl
    def ddb_register_distillers(self):
        return [DistillerSpec(name="random", config_cls=NoConfig, distill=lambda r: None, presets={"smoke": {}})]


class ResolverPlugin:
    @hookimpl
    def ddb_resolve_model(self, name):
        if name.startswith("toyzoo:"):
            return ModelSpec(name=name, build=lambda shape: None)
        return None


def test_builtins_come_from_the_dd_bench_distribution():
    reg = make_registry()
    for table in (reg.datasets, reg.models, reg.distillers):
        assert table, "built-in plugins registered nothing"
        for entry in table.values():
            assert entry.distribution == "dd-bench" and entry.version
    assert reg.distillers["random"].plugin == "baselines"


def test_inline_plugin_is_usable_by_name(ddb_registry_factory):
    reg = ddb_registry_factory(DistillerPlugin())
    assert reg.distiller("mine").name == "mine"
    assert reg.distillers["mine"].distribution is None  # not installed: no distribution


def test_duplicate_names_are_an_error_naming_both_plugins():
    with pytest.raises(ConfigError) as err:
        make_registry(ClashingPlugin())
    assert "'random'" in str(err.value) and "baselines" in str(err.value) and "ClashingPlugin" in str(err.value)


def test_unknown_names_suggest_the_closest():
    reg = make_registry()
    with pytest.raises(UnknownNameError, match="did you mean 'random'"):
        reg.distiller("randm")
    with pytest.raises(UnknownNameError, match="unknown model 'toyzoo:x'"):
        reg.model("toyzoo:x")


def test_resolve_hook_handles_namespaced_models():
    reg = make_registry(ResolverPlugin())
    assert reg.model("toyzoo:tiny").name == "toyzoo:tiny"


def test_wrong_spec_type_is_reported():
    class Broken:
        @hookimpl
        def ddb_register_models(self):
            return ["convnet"]

    with pytest.raises(ConfigError, match="expected ModelSpec"):
        make_registry(Broken())


def test_block_list_skips_an_entry_point(monkeypatch):
    monkeypatch.setenv("DD_BENCH_BLOCK_PLUGINS", "baselines")
    reg = Registry(get_plugin_manager())
    assert "random" not in reg.distillers and reg.datasets


def test_every_hook_is_documented_and_implemented_by_a_builtin():
    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("ddb_")]
    assert specs
    pm = get_plugin_manager(autoload=False)
    for name in specs:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 40, f"hook {name} is not documented"
        assert getattr(pm.hook, name).get_hookimpls(), f"no built-in plugin implements {name}"


def test_the_built_ins_reported_figures_name_registered_datasets_and_models():
    from dd_bench.plugins import Registry

    registry = Registry()
    figures = [(name, r) for name, reg in registry.distillers.items() for r in reg.spec.reported]
    assert {name for name, _ in figures} >= {"dc", "dsa", "dm", "mtt", "ftd", "datm", "d4m", "sre2l", "rded"}
    for name, r in figures:
        assert r.dataset in registry.datasets, (name, r)
        registry.model(r.model)  # resolves (namespaced names through their plugins)
        assert "20" in r.where and r.labels == ("teacher" if name in ("d4m", "sre2l", "rded") else "set"), (name, r)
