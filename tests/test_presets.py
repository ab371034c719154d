"""Every built-in distiller's ``smoke`` preset runs end to end on digits, every preset resolves, and
every built-in has the ``demo`` preset the demo suite names."""

from __future__ import annotations

import pytest

from dd_bench import api
from dd_bench.suite import load_suite
from dd_bench.testing import make_registry

REGISTRY = make_registry()


@pytest.mark.parametrize("method", sorted(REGISTRY.distillers))
def test_smoke_preset_runs_on_digits(method, digits, tmp_path):
    syn = api.distill(
        REGISTRY, method, digits, ipc=1, seed=0, preset="smoke", cache_dir=tmp_path, model="convnet_w32", progress=False
    )
    syn.check_compatible(digits)
    assert syn.method == method and syn.dataset == "digits"
    if method != "full":
        assert len(syn) == digits.num_classes


@pytest.mark.parametrize("method", sorted(REGISTRY.distillers))
def test_every_preset_resolves_to_a_valid_config(method):
    spec = REGISTRY.distiller(method)
    for preset in spec.presets:
        spec.resolve_config(preset)


@pytest.mark.parametrize("method", sorted(REGISTRY.distillers))
def test_every_builtin_has_a_demo_preset_that_resolves(method):
    """The demo suite runs every registered distiller with ``default_preset: demo``; the preset is
    a plain dict, so it resolves (names checked against the registry) whatever the dataset."""
    assert load_suite("demo").default_preset == "demo"
    assert "demo" in REGISTRY.distiller(method).presets
    api.resolve_config(REGISTRY, method, "demo")
