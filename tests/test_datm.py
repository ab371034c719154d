"""DATM: each mechanism that makes it more than MTT is active (growing window, correct-sample
init, learned soft labels, the threshold rule) and it runs in the constant-memory mode."""

from __future__ import annotations

import pytest
import torch
from dd_bench_datm import DATM, PRESETS, DATMConfig

from dd_bench import api
from dd_bench.errors import ConfigError, UnknownNameError
from dd_bench.runtime import seeded_build
from dd_bench.specs import DistillRequest

TINY = dict(
    iterations=6,
    syn_steps=3,
    expert_epochs=1,
    min_start_epoch=0,
    current_max_start_epoch=1,
    max_start_epoch=3,
    expansion_end_epoch=4,
    num_experts=2,
    expert_train_epochs=3,
    lr_img=10.0,
    lr_lr=1e-5,
    lr_y=5.0,
    checkpoint_every=3,
    threshold=None,
)


def request(registry, data, tmp_path, **overrides):
    spec = registry.model("convnet_w32")
    return DistillRequest(
        data=data,
        ipc=2,
        seed=0,
        config=registry.distiller("datm").resolve_config(None, {**TINY, **overrides}),
        device=torch.device("cpu"),
        model="convnet_w32",
        cache_dir=tmp_path,
        progress=False,
        expert_optimizer=registry.optimizer,
        build_model=lambda seed: seeded_build(lambda: spec.build(data.shape), seed, torch.device("cpu")),
    )


def test_the_start_epoch_window_grows_linearly_to_max_start_epoch():
    cfg = DATMConfig(
        current_max_start_epoch=10, max_start_epoch=20, expansion_end_epoch=1000, num_experts=1, expert_train_epochs=50
    )
    assert [cfg.upper_start_epoch(i) for i in (0, 99, 100, 500, 999, 1000, 5000)] == [10, 10, 11, 15, 19, 20, 20]
    fixed = DATMConfig(sequential_generation=False, min_start_epoch=5, max_start_epoch=20, expert_train_epochs=50)
    assert {fixed.upper_start_epoch(i) for i in (0, 500, 5000)} == {20}


def test_the_loop_draws_start_epochs_from_the_growing_window(registry, toy, tmp_path):
    matcher = DATM(request(registry, toy, tmp_path))
    seen = []
    original = matcher.start_epoch_bounds
    matcher.start_epoch_bounds = lambda it: seen.append(original(it)) or seen[-1]
    matcher.run()
    assert seen == [(0, 1), (0, 1), (0, 2), (0, 2), (0, 3), (0, 3)]


@pytest.mark.parametrize(
    ("overrides", "match_text"),
    [
        # the reference's older Tiny IPC 50 config: sequential from current_max 20 with min 40
        (
            {"min_start_epoch": 40, "max_start_epoch": 60, "current_max_start_epoch": 20, "expert_train_epochs": 100},
            "empty",
        ),
        ({"current_max_start_epoch": 30, "max_start_epoch": 20, "expert_train_epochs": 50}, "shrink"),
        ({"lr_y": -1.0}, "lr_y"),
        ({"threshold": -0.5}, "threshold"),
    ],
)
def test_bad_windows_and_values_are_rejected_up_front(registry, overrides, match_text):
    with pytest.raises(ConfigError, match=match_text):
        registry.distiller("datm").resolve_config(None, overrides)


def test_expert_optimizers_are_looked_up_in_the_registry_before_any_work(registry, toy, tmp_path):
    assert DATM(request(registry, toy, tmp_path, expert_optimizer="gsam")).expert_optimizer is registry.optimizer(
        "gsam"
    )
    with pytest.raises(UnknownNameError, match=r"unknown expert optimizer 'adam' \(known: gsam, sgd\)"):
        DATM(request(registry, toy, tmp_path, expert_optimizer="adam"))
    assert not (tmp_path / "buffers").exists()


def test_every_preset_has_a_non_empty_window_throughout(registry):
    for name in PRESETS:
        cfg = registry.distiller("datm").resolve_config(name)
        for it in (0, cfg.iterations // 2, cfg.iterations - 1):
            assert cfg.min_start_epoch < cfg.upper_start_epoch(it) <= cfg.max_start_epoch, name


def test_initial_images_are_real_samples_the_expert_classifies_correctly(registry, toy, tmp_path):
    matcher = DATM(request(registry, toy, tmp_path))
    matcher.buffers = matcher.load_buffers()
    images = matcher.init_images()
    assert matcher.init_info["init_not_correct"] == 0
    classes = torch.arange(toy.num_classes).repeat_interleave(2)
    right = torch.stack(
        [matcher.expert_logits(theta, images).argmax(1) == classes for theta in matcher.expert_params()]
    )
    assert right.any(0).all(), "each image is classified correctly by an expert (expert 0 first, then the next)"
    plain = DATM(request(registry, toy, tmp_path, pix_init="real"))
    plain.buffers = matcher.buffers
    wrong = [plain.expert_logits(theta, plain.init_images()).argmax(1) != classes for theta in matcher.expert_params()]
    assert torch.stack(wrong).all(0).any(), "a plain real draw of the same seed includes samples no expert gets right"
    rows = (toy.train_x.flatten(1)[None] == images.flatten(1)[:, None]).all(-1)
    assert rows.any(1).all(), "every initial image is a real training image"


def test_soft_labels_come_from_the_experts_and_are_learned(registry, toy, tmp_path):
    matcher = DATM(request(registry, toy, tmp_path))
    syn = matcher.run()
    matcher_init = DATM(request(registry, toy, tmp_path / "again"))
    matcher_init.buffers = matcher_init.load_buffers()
    initial = matcher_init.init_labels(matcher_init.init_images())
    assert syn.labels.shape == (8, toy.num_classes) and syn.labels.dtype == torch.float32
    assert torch.equal(initial.argmax(1), torch.arange(toy.num_classes).repeat_interleave(2))
    assert not torch.allclose(syn.labels, initial), "soft labels must move during distillation"
    hard = api.distill(
        registry,
        "datm",
        toy,
        ipc=2,
        seed=0,
        overrides={**TINY, "soft_label": False},
        cache_dir=tmp_path,
        model="convnet_w32",
        progress=False,
    )
    assert hard.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_the_threshold_skips_every_update_above_it(registry, toy, tmp_path):
    matcher = DATM(request(registry, toy, tmp_path, threshold=0.0))
    syn = matcher.run()
    assert syn.metadata["skipped_updates"] == TINY["iterations"]
    fresh = DATM(request(registry, toy, tmp_path, threshold=0.0))
    fresh.buffers = fresh.load_buffers()
    torch.testing.assert_close(syn.images, fresh.init_images())
    assert syn.lr == pytest.approx(0.01)


def test_constant_memory_gives_the_same_set(registry, toy, tmp_path):
    unrolled = DATM(request(registry, toy, tmp_path)).run()
    constant = DATM(request(registry, toy, tmp_path, constant_memory=True)).run()
    torch.testing.assert_close(constant.images, unrolled.images, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(constant.labels, unrolled.labels, rtol=1e-4, atol=1e-4)
