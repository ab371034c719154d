"""Every built-in distiller's ``smoke`` preset runs end to end on digits, and every preset resolves."""

from __future__ import annotations

import pytest

from dd_bench import api
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
