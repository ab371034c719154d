from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest
import torch

from dd_bench.errors import ConfigError, DataError, require_ints
from dd_bench.specs import DatasetSpec, DistillerSpec, ModelSpec, RealData, split_train_val


@dataclass(frozen=True)
class Cfg:
    iterations: int = 10
    lr: float = 0.1
    zca: bool = False
    init: Literal["real", "noise"] = "real"
    max_start: int | None = None
    strategy: str = "flip"


def spec(**kw):
    return DistillerSpec(name="m", config_cls=Cfg, distill=lambda r: None, presets={"smoke": {"iterations": 1}, **kw})


def test_resolve_config_layers_defaults_preset_and_overrides():
    s = spec()
    assert s.resolve_config() == Cfg()
    assert s.resolve_config("smoke").iterations == 1
    cfg = s.resolve_config(
        "smoke", {"iterations": "5", "lr": "1e-3", "zca": "true", "init": "noise", "max_start": "none"}
    )
    assert cfg == Cfg(iterations=5, lr=1e-3, zca=True, init="noise", max_start=None)
    assert s.resolve_config(overrides={"max_start": "7"}).max_start == 7


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"iteration": "5"}, ["iteration", "allowed", "iterations"]),
        ({"iterations": "five"}, ["iterations", "five", "int"]),
        ({"init": "zeros"}, ["init", "zeros", "real", "noise"]),
        ({"zca": "maybe"}, ["zca", "maybe"]),
    ],
)
def test_bad_overrides_name_field_value_and_allowed(overrides, words):
    with pytest.raises(ConfigError) as err:
        spec().resolve_config(overrides=overrides)
    for word in words:
        assert word in str(err.value)


def test_unknown_preset_lists_known():
    with pytest.raises(ConfigError, match="known: smoke"):
        spec().resolve_config("paper")


def test_distiller_needs_smoke_preset_and_valid_presets():
    with pytest.raises(ConfigError, match="smoke"):
        DistillerSpec(name="m", config_cls=Cfg, distill=print, presets={})
    with pytest.raises(ConfigError, match="bogus"):
        spec(fast={"bogus": 1})


@pytest.mark.parametrize("name", ["Bad", "1x", "a b", ""])
def test_spec_names_are_validated(name):
    with pytest.raises(ConfigError, match="name"):
        ModelSpec(name=name, build=print)
    with pytest.raises(ConfigError, match="name"):
        DatasetSpec(name=name, load=print)


def test_split_train_val_is_seeded_stratified_and_disjoint():
    x = torch.arange(200.0).view(200, 1, 1, 1)
    y = torch.arange(200) % 4
    tx, ty, vx, vy = split_train_val(x, y, 0.1, seed=3)
    tx2, _, vx2, _ = split_train_val(x, y, 0.1, seed=3)
    assert torch.equal(vx, vx2) and torch.equal(tx, tx2)
    assert torch.bincount(vy).tolist() == [5, 5, 5, 5]
    assert set(tx.flatten().tolist()).isdisjoint(vx.flatten().tolist())
    assert len(tx) + len(vx) == 200
    assert not torch.equal(split_train_val(x, y, 0.1, seed=4)[2], vx)


def test_real_data_validates_shapes():
    x, y = torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(DataError, match="train_x"):
        RealData("d", x[:, :, 0], y, x, y, x, y, (0.0,), (1.0,), ("a",))
    with pytest.raises(DataError, match="val_y"):
        RealData("d", x, y, x, y.float(), x, y, (0.0,), (1.0,), ("a",))


def test_integer_fields_refuse_bools_floats_and_small_values_in_one_line():
    from dd_bench_rded import RDEDConfig
    from dd_bench_sre2l import SRe2LConfig

    for config, field, bad in (
        (RDEDConfig, "crops", True),
        (RDEDConfig, "factor", 0),
        (SRe2LConfig, "group", 2.0),
        (SRe2LConfig, "jitter", -1),
    ):
        low = 0 if field == "jitter" else 1
        with pytest.raises(ConfigError, match=rf"^{field}={bad!r} is not allowed: use an integer >= {low}$"):
            config(**{field: bad})
    require_ints(SRe2LConfig(jitter=0), ("iterations", "group"))
    require_ints(SRe2LConfig(jitter=0), ("jitter",), minimum=0)


def test_reported_figures_are_checked_when_declared():
    from dd_bench.specs import ReportedResult as R

    with pytest.raises(ConfigError, match="percentage"):
        R("cifar10", 10, "convnet", 146.0, 0.5, "Table 1")
    with pytest.raises(ConfigError, match="where"):
        R("cifar10", 10, "convnet", 46.0, 0.5, " ")
    with pytest.raises(ConfigError, match="labels"):
        R("cifar10", 10, "convnet", 46.0, 0.5, "Table 1", labels="soft")
    twice = R.table("Table 1", "convnet", {("cifar10", 10): (46.0, 0.5)}) * 2
    with pytest.raises(ConfigError, match="twice"):
        dataclasses.replace(DistillerSpec("x", Cfg, lambda r: None, presets={"smoke": {}}), reported=twice)
