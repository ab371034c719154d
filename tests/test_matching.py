"""The trajectory-matching engine: gradients, buffers, the loop, resume and failure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dd_bench import api
from dd_bench.augment import DSA
from dd_bench.errors import ConfigError
from dd_bench.matching import ExpertRecipe, FlatModel, MatchingConfig, ensure_buffers, match
from dd_bench.matching import buffers as buffers_module
from dd_bench.runtime import seeded_build

TINY = dict(
    iterations=6,
    syn_steps=3,
    expert_epochs=1,
    max_start_epoch=2,
    num_experts=2,
    expert_train_epochs=2,
    lr_img=10.0,
    lr_lr=1e-5,
    checkpoint_every=3,
)


def tiny_problem(soft: bool):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.GroupNorm(3, 3),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 3),
    ).double()
    student = FlatModel(net)
    start = student.flatten()
    target = start + 0.05 * torch.randn_like(start)
    images = torch.randn(9, 1, 8, 8, dtype=torch.double, requires_grad=True)
    labels = torch.randn(9, 3, dtype=torch.double, requires_grad=True) if soft else torch.arange(3).repeat_interleave(3)
    lr = torch.tensor(0.1, dtype=torch.double, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randperm(9, generator=g)[:5] for _ in range(4)]
    return student, start, target, images, labels, lr, batches, [11, 12, 13, 14]


@pytest.mark.parametrize("soft", [False, True])
def test_constant_memory_gradients_equal_unrolled_autograd(soft):
    student, start, target, images, labels, lr, batches, seeds = tiny_problem(soft)
    grads = {}
    for constant_memory in (False, True):
        for t in (images, labels, lr):
            t.grad = None
        loss = match(student, start, target, images, labels, lr, batches, seeds, DSA(), constant_memory)
        grads[constant_memory] = [loss] + [t.grad.clone() for t in (images, lr) + ((labels,) if soft else ())]
    for unrolled, constant in zip(grads[False], grads[True]):
        torch.testing.assert_close(constant, unrolled, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("constant_memory", [False, True])
def test_gradients_match_finite_differences(constant_memory):
    student, start, target, images, labels, lr, batches, seeds = tiny_problem(soft=False)
    augment = DSA("flip_scale_rotate")
    match(student, start, target, images, labels, lr, batches, seeds, augment, constant_memory)

    def loss_at(x, alpha):
        with torch.enable_grad():
            return match(
                student,
                start,
                target,
                x.detach().requires_grad_(True),
                labels,
                alpha.detach().requires_grad_(True),
                batches,
                seeds,
                augment,
                False,
            ).item()

    eps = 1e-6
    direction = torch.randn(images.shape, dtype=torch.double, generator=torch.Generator().manual_seed(1))
    numeric = (loss_at(images + eps * direction, lr) - loss_at(images - eps * direction, lr)) / (2 * eps)
    assert (images.grad * direction).sum().item() == pytest.approx(numeric, rel=1e-5)
    numeric_lr = (loss_at(images, lr + eps) - loss_at(images, lr - eps)) / (2 * eps)
    assert lr.grad.item() == pytest.approx(numeric_lr, rel=1e-5)


def build_for(registry, data, model="convnet_w32"):
    spec = registry.model(model)
    return lambda seed: seeded_build(lambda: spec.build(data.shape), seed, torch.device("cpu"))


def test_snapshots_are_copies_and_buffers_are_cached_and_resumable(registry, toy, tmp_path, monkeypatch):
    recipe = ExpertRecipe(epochs=3, batch_size=64)
    build = build_for(registry, toy)
    calls = []
    real_train = buffers_module.train_expert
    monkeypatch.setattr(buffers_module, "train_expert", lambda *a, **k: calls.append(a[4]) or real_train(*a, **k))
    first = ensure_buffers(
        "convnet_w32", build, toy, toy.train_x, recipe, 2, tmp_path, torch.device("cpu"), progress=False
    )
    assert calls == [0, 1] and first.epochs == 3 and first.trained_seconds > 0
    for trajectory in first.trajectories:
        steps = (trajectory[1:] - trajectory[:-1]).abs().amax(dim=1)
        assert (steps > 0).all(), "consecutive snapshots must differ (no aliasing of live weights)"
    assert not torch.equal(first.trajectories[0][0], first.trajectories[1][0]), "experts are seeded differently"

    again = ensure_buffers(
        "convnet_w32", build, toy, toy.train_x, recipe, 2, tmp_path, torch.device("cpu"), progress=False
    )
    assert calls == [0, 1] and all(torch.equal(a, b) for a, b in zip(first.trajectories, again.trajectories))
    assert again.trained_seconds == 0.0, "a run that only loads experts built no cache"

    buffers_module.expert_path(first.directory, 1).unlink()  # as if killed while training expert 1
    resumed = ensure_buffers(
        "convnet_w32", build, toy, toy.train_x, recipe, 2, tmp_path, torch.device("cpu"), progress=False
    )
    assert calls == [0, 1, 1] and torch.equal(resumed.trajectories[1], first.trajectories[1])

    other = ensure_buffers(
        "convnet_w32",
        build,
        toy,
        toy.train_x,
        ExpertRecipe(epochs=3, batch_size=64, lr=0.02),
        1,
        tmp_path,
        torch.device("cpu"),
        progress=False,
    )
    assert other.directory != first.directory and calls[-1] == 0
    assert not list(tmp_path.rglob("*.tmp"))


def distill(registry, data, tmp_path, **overrides):
    return api.distill(
        registry,
        "mtt",
        data,
        ipc=2,
        seed=0,
        overrides={**TINY, **overrides},
        cache_dir=tmp_path,
        model="convnet_w32",
        progress=False,
    )


def test_mtt_distils_images_and_learns_lr(registry, toy, tmp_path):
    syn = distill(registry, toy, tmp_path)
    assert syn.images.shape == (8, 1, 8, 8) and syn.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert syn.lr is not None and syn.lr != pytest.approx(0.01, abs=0)
    assert syn.method == "mtt" and syn.metadata["matching_loss_last"] is not None
    random_init = api.distill(registry, "random", toy, ipc=2, seed=0)
    assert not torch.equal(syn.images, random_init.images)
    assert not list((tmp_path / "checkpoints").glob("*.pt")), "a finished run leaves no checkpoint"


def interrupt_at_iteration_4(registry, data, cache_dir):
    """An MTT run killed after its iteration-3 checkpoint (TINY checkpoints every 3)."""

    def interrupt(name, value, step):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.distill(
            registry,
            "mtt",
            data,
            ipc=2,
            seed=0,
            overrides=TINY,
            cache_dir=cache_dir,
            model="convnet_w32",
            log_metric=interrupt,
            progress=False,
        )


def test_interrupted_run_resumes_to_the_same_result(registry, toy, tmp_path, capsys):
    straight = distill(registry, toy, tmp_path / "a")
    interrupt_at_iteration_4(registry, toy, tmp_path / "b")
    assert len(list((tmp_path / "b" / "checkpoints").glob("*.pt"))) == 1
    capsys.readouterr()
    resumed = distill(registry, toy, tmp_path / "b")
    assert "resuming mtt from iteration 3" in capsys.readouterr().err
    torch.testing.assert_close(resumed.images, straight.images)
    assert resumed.lr == pytest.approx(straight.lr)


def test_an_unreadable_checkpoint_is_reported_and_the_run_starts_over(registry, toy, tmp_path, capsys):
    straight = distill(registry, toy, tmp_path / "a")
    interrupt_at_iteration_4(registry, toy, tmp_path / "b")
    (ckpt,) = (tmp_path / "b" / "checkpoints").glob("*.pt")
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # e.g. a disk that lost the file's tail
    capsys.readouterr()
    again = distill(registry, toy, tmp_path / "b")
    err = capsys.readouterr().err
    assert f"warning: ignoring checkpoint {ckpt}" in err and "starting over" in err and "resuming" not in err
    torch.testing.assert_close(again.images, straight.images)


def test_exploding_loss_stops_and_returns_the_last_good_set(registry, toy, tmp_path, capsys):
    syn = distill(registry, toy, tmp_path, lr_img=1e12, lr_lr=0.0, max_loss=2.0, iterations=20)
    assert "not finite or above max_loss=2.0" in capsys.readouterr().err
    stopped = syn.metadata["stopped_early"]
    assert stopped["iteration"] < 20 and stopped["kept_iteration"] == max(stopped["iteration"] - 1, 0)
    assert torch.isfinite(syn.images).all()
    assert not list((tmp_path / "checkpoints").glob("*.pt"))


@pytest.mark.parametrize(
    "overrides, match_text",
    [
        ({"min_start_epoch": 5, "max_start_epoch": 5}, "start-epoch window"),
        ({"max_start_epoch": 40, "expert_train_epochs": 10}, "needs experts trained for 41 epochs"),
        ({"syn_steps": 0}, "syn_steps=0"),
    ],
)
def test_bad_configs_are_rejected_up_front(overrides, match_text):
    with pytest.raises(ConfigError, match=match_text):
        MatchingConfig(**overrides)
