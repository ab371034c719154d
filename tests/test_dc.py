"""DC and DSA: the layer-wise gradient distance, the inner loop, siamese augmentation, presets."""

from __future__ import annotations

import math

import pytest
import torch
from dd_bench_dc import PRESETS, DCConfig, layerwise_distance

from dd_bench import api
from dd_bench.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_layerwise_distance_equals_a_hand_computation():
    conv_syn = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 1, 1, 2)  # 2 output channels, rows of 2
    conv_real = torch.tensor([[2.0, 0.0], [1.0, 1.0]]).view(2, 1, 1, 2)
    linear_syn, linear_real = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[-3.0, 0.0, 0.0]])
    bias_syn, bias_real = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])  # 1-D: not counted
    # conv: rows (1,0)/(2,0) agree (1 - 1 = 0), rows (0,1)/(1,1) are 45 degrees apart; linear: opposite (1 - -1 = 2)
    expected = 0.0 + (1 - 1 / math.sqrt(2)) + 2.0
    got = layerwise_distance([conv_syn, linear_syn, bias_syn], [conv_real, linear_real, bias_real])
    assert got.item() == pytest.approx(expected, abs=1e-5)
    # per output row, not over the flattened layer: flattened, the conv would give 1 - 3/sqrt(10)
    assert got.item() != pytest.approx(1 - 3 / math.sqrt(2 * 5) + 2.0, abs=1e-3)


def dc(registry, data, tmp_path, method="dc", ipc=1, model="convnet_w32", **overrides):
    settings = {"iterations": 2, "outer_loop": 2, "inner_loop": 1, "batch_real": 16, **overrides}
    return api.distill(
        registry, method, data, ipc=ipc, seed=0, overrides=settings, cache_dir=tmp_path, model=model, progress=False
    )


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_the_inner_loop_of_network_updates_changes_the_result(registry, toy, tmp_path, method):
    trained = dc(registry, toy, tmp_path, method)
    frozen = dc(registry, toy, tmp_path, method, lr_net=0.0)  # same draws, the network never moves
    assert not torch.equal(trained.images, frozen.images)
    assert torch.equal(
        dc(registry, toy, tmp_path, method, outer_loop=1).images,
        dc(registry, toy, tmp_path, method, outer_loop=1, lr_net=0.0).images,
    )


def test_dsa_compares_real_and_synthetic_gradients_under_one_shared_draw(registry, digits_whole_classes, tmp_path):
    """Synthetic images that are the real class: with one shared draw the gradients are equal,
    so the first loss is zero; independent draws would make it positive."""
    losses = []
    api.distill(
        registry,
        "dsa",
        digits_whole_classes,
        ipc=3,
        seed=0,
        overrides={"iterations": 1, "outer_loop": 1},
        cache_dir=tmp_path,
        model="convnet_w32",
        progress=False,
        log_metric=lambda name, value, step: losses.append(value),
    )
    assert losses[0] < 0.05  # not 0: the distance adds 1e-6 to each row norm product


def test_a_batch_norm_network_matches_with_frozen_statistics(registry, toy, tmp_path):
    syn = dc(registry, toy, tmp_path, "dsa", ipc=2, model="convnet_bn")
    assert torch.isfinite(syn.images).all() and syn.metadata["stopped_early"] is None


def test_presets_follow_the_papers_loops_and_bad_values_are_refused(registry):
    assert {name: (p["outer_loop"], p["inner_loop"]) for name, p in PRESETS.items() if name.startswith("cifar10")} == {
        "cifar10-ipc1": (1, 1),
        "cifar10-ipc10": (10, 50),
        "cifar10-ipc50": (50, 10),
    }
    assert registry.distiller("dc").resolve_config("cifar10-ipc10").init == "noise"
    assert registry.distiller("dsa").resolve_config("cifar10-ipc10").dsa is True
    for bad, text in (
        ({"outer_loop": 0}, "outer_loop=0"),
        ({"lr_net": -1.0}, "lr_net=-1.0"),
        ({"dsa_strategy": "spin"}, "spin"),
    ):
        with pytest.raises(ConfigError, match=text):
            DCConfig(**bad)
