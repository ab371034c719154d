"""DM, IDM and M3D: shared draws, the model queue and class-aware term, partitioning and
expansion, the MMD and its bandwidth, presets."""

from __future__ import annotations

import math

import pytest
import torch
from dd_bench_dm import IDM_PRESETS, M3DConfig, mmd

from dd_bench import api
from dd_bench.errors import ConfigError
from dd_bench.synthetic import expand, pack

pytestmark = pytest.mark.usefixtures("one_thread")


def distill(registry, method, data, tmp_path, ipc=1, log_metric=None, model="convnet_w32", **overrides):
    return api.distill(
        registry,
        method,
        data,
        ipc=ipc,
        seed=0,
        preset="smoke",
        overrides=overrides,
        cache_dir=tmp_path,
        model=model,
        log_metric=log_metric,
        progress=False,
    )


@pytest.mark.parametrize("model", ["convnet_w32", "convnet_bn"])
def test_dm_compares_mean_embeddings_under_one_shared_draw(registry, digits_whole_classes, tmp_path, model):
    """Synthetic images that are the real class: under one shared draw the mean embeddings
    agree (loss 0), with a batch-norm network too (all classes in one batch)."""
    losses = []
    distill(
        registry,
        "dm",
        digits_whole_classes,
        tmp_path,
        ipc=3,
        iterations=1,
        model=model,
        log_metric=lambda name, value, step: losses.append(value),
    )
    assert losses[0] < 1e-8


def test_idm_model_queue_training_changes_the_result(registry, toy, tmp_path):
    trained = distill(registry, "idm", toy, tmp_path, ce_weight=0.0)
    untrained = distill(registry, "idm", toy, tmp_path, ce_weight=0.0, lr_net=0.0)  # same draws, the queue never learns
    assert not torch.equal(trained.images, untrained.images)


def test_idm_class_aware_term_changes_the_result_and_the_queue_is_bounded(registry, toy, tmp_path):
    plain = distill(registry, "idm", toy, tmp_path, ce_weight=0.0)
    regularised = distill(registry, "idm", toy, tmp_path, ce_weight=50.0)
    assert not torch.equal(plain.images, regularised.images)
    assert regularised.metadata["queue_size"] == 3  # net_num of the smoke preset
    refreshed = distill(registry, "idm", toy, tmp_path, net_num=5, net_generate_interval=1, iterations=4)
    assert refreshed.metadata["queue_size"] == 5


def test_expand_reads_each_patch_as_an_image_and_pack_is_its_reverse():
    quadrants = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).repeat_interleave(4, 0).repeat_interleave(4, 1)  # 8x8
    images = torch.stack([quadrants, -quadrants]).unsqueeze(1)  # two images
    out = expand(images, 2)
    assert out.shape == (8, 1, 8, 8)
    assert [float(x.unique()) for x in out] == [
        1.0,
        -1.0,
        2.0,
        -2.0,
        3.0,
        -3.0,
        4.0,
        -4.0,
    ]  # patch k of image i: row k*2+i
    torch.testing.assert_close(pack(out, 2), images)
    assert expand(images, 1) is images


@pytest.mark.parametrize("method", ["idm", "m3d"])
def test_a_factor_2_set_stores_ipc_images_and_trains_on_their_expansion(registry, toy, tmp_path, method):
    syn = distill(registry, method, toy, tmp_path, ipc=2, factor=2, iterations=2)
    assert syn.ipc == 2 and syn.factor == 2 and len(syn) == 4 * 2  # classes x ipc: what is stored
    decoded = syn.decoded()
    assert len(decoded) == 4 * 2 * 4 and decoded.factor == 1  # classes x ipc x factor**2: what training reads
    assert decoded.labels.tolist() == syn.labels.repeat(4).tolist()
    torch.testing.assert_close(decoded.images, expand(syn.images, 2))
    with pytest.raises(ConfigError, match="factor=9 is not allowed for 8x8 images"):
        distill(registry, method, toy, tmp_path, factor=9)


def test_mmd_equals_a_hand_computation():
    x, y = torch.zeros(1, 1), torch.ones(1, 1)  # squared distance 1
    assert mmd(x, y, kernels=1, bandwidth=1.0).item() == pytest.approx(2 - 2 * math.exp(-1))
    # bandwidths 0.5, 1, 2: k(d=1) = e^-2 + e^-1 + e^-0.5, k(0) = 3
    assert mmd(x, y, kernels=3, ratio=2.0, bandwidth=1.0).item() == pytest.approx(
        6 - 2 * (math.exp(-2) + math.exp(-1) + math.exp(-0.5))
    )
    # no bandwidth: the mean squared distance between distinct points (here 1)
    assert mmd(x, y, kernels=3).item() == pytest.approx(mmd(x, y, kernels=3, bandwidth=1.0).item())
    z = torch.randn(6, 4)
    assert mmd(z, z).item() == pytest.approx(0.0, abs=1e-6)


def test_m3d_kernel_bandwidth_matters(registry, toy, tmp_path):
    sets = [distill(registry, "m3d", toy, tmp_path, bandwidth=b).images for b in (None, 0.01, 100.0)]
    assert not torch.equal(sets[0], sets[1]) and not torch.equal(sets[0], sets[2]) and not torch.equal(sets[1], sets[2])


def test_m3d_stores_pixels_clamped_and_returns_normalised_images(registry, toy, tmp_path):
    syn = distill(registry, "m3d", toy, tmp_path, lr_img=1e3, iterations=3)
    pixels = syn.images * torch.tensor(toy.std).view(1, -1, 1, 1) + torch.tensor(toy.mean).view(1, -1, 1, 1)
    assert pixels.min() < -0.1 or pixels.max() > 1.1  # the last step moved them out of [0, 1] ...
    clamped = distill(registry, "m3d", toy, tmp_path, lr_img=1e3, iterations=3, clamp=False)
    assert not torch.equal(syn.images, clamped.images)  # ... but each iteration started clamped


def test_presets_and_bad_values(registry):
    assert IDM_PRESETS["cifar10-ipc1"]["batch_real"] == 5000 and IDM_PRESETS["cifar10-ipc50"]["ce_weight"] == 10.0
    assert registry.distiller("m3d").resolve_config("cifar10-ipc10").dsa_mode == "all"
    for bad, text in (
        ({"bandwidth": 0.0}, "bandwidth=0.0"),
        ({"factor": 0}, "factor=0"),
        ({"models_every": 0}, "models_every=0"),
    ):
        with pytest.raises(ConfigError, match=text):
            M3DConfig(**bad)
    with pytest.raises(ConfigError, match="fetch_net_num=-1"):
        registry.distiller("idm").resolve_config("smoke", {"fetch_net_num": "-1"})
