"""FTD: each mechanism that makes it more than MTT is active (GSAM experts, image EMA)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from dd_bench_ftd import ALTERNATE_KEY, GSAM, KIND_KEY, alternate_set
from torch import nn

from dd_bench import api
from dd_bench.cli import main
from dd_bench.errors import ConfigError, DataError
from dd_bench.matching import ExpertRecipe
from dd_bench.matching.buffers import buffer_dir
from dd_bench.synthetic import SyntheticSet

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


def one_step(optimizer_kind: str, rho: float = 0.05, alpha: float = 0.4, adaptive: bool = False, bn: bool = False):
    """Parameters and BN statistics after one step from the same weights on the same batch."""
    torch.manual_seed(0)
    layers = [nn.Linear(6, 8), nn.BatchNorm1d(8)] if bn else [nn.Linear(6, 8)]
    model = nn.Sequential(*layers, nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(16, 6, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    opt = base if optimizer_kind == "sgd" else GSAM(base, rho=rho, alpha=alpha, adaptive=adaptive, model=model)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    stats = [b.clone() for b in model.buffers()]
    return torch.cat([p.detach().flatten() for p in model.parameters()]), stats


@pytest.mark.parametrize("adaptive", [False, True])
def test_a_gsam_step_differs_from_sgd_and_reduces_to_it_without_perturbation(adaptive):
    sgd, _ = one_step("sgd")
    gsam, _ = one_step("gsam", adaptive=adaptive)
    assert not torch.allclose(gsam, sgd, atol=1e-6), "the sharpness-aware step must move differently"
    no_perturbation, _ = one_step("gsam", rho=0.0, adaptive=adaptive)
    torch.testing.assert_close(no_perturbation, sgd)
    # alpha only acts through the surrogate gap: with alpha = 0 the step is plain SAM
    sam, _ = one_step("gsam", alpha=0.0, adaptive=adaptive)
    assert not torch.allclose(sam, gsam, atol=1e-7)


@pytest.mark.parametrize("adaptive", [False, True])
def test_a_gsam_step_is_the_papers_formula(adaptive):
    """The fused (torch._foreach_*) step equals GSAM written out parameter by parameter."""
    rho, alpha, lr = 0.05, 0.4, 0.1
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(16, 6, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3
    w = [p.detach().clone() for p in model.parameters()]

    def grads_at(weights):
        for p, v in zip(model.parameters(), weights):
            p.data.copy_(v)
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        return [p.grad.clone() for p in model.parameters()]

    g = grads_at(w)
    scale = [wi.abs() * gi for wi, gi in zip(w, g)] if adaptive else g
    norm = torch.sqrt(sum((s**2).sum() for s in scale))
    e = [rho * gi * (wi**2 if adaptive else 1) / norm for wi, gi in zip(w, g)]
    gp = grads_at([wi + ei for wi, ei in zip(w, e)])
    coef = sum((a * b).sum() for a, b in zip(g, gp)) / sum((b**2).sum() for b in gp)
    want = torch.cat([(wi - lr * (b - alpha * (a - coef * b))).flatten() for wi, a, b in zip(w, g, gp)])
    got, _ = one_step("gsam", rho=rho, alpha=alpha, adaptive=adaptive)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_the_perturbed_pass_leaves_batchnorm_statistics_alone():
    _, sgd_stats = one_step("sgd", bn=True)
    _, gsam_stats = one_step("gsam", bn=True)
    for a, b in zip(sgd_stats, gsam_stats):
        torch.testing.assert_close(a, b)


def test_gsam_is_registered_as_an_expert_optimizer_and_cached_apart_from_sgd(registry, toy, tmp_path):
    spec = registry.optimizer("gsam")
    assert spec.defaults == {"rho": 0.01, "alpha": 0.4, "adaptive": True}
    sgd = buffer_dir(tmp_path, toy, "convnet_w32", ExpertRecipe(), zca=False)
    gsam = buffer_dir(
        tmp_path, toy, "convnet_w32", ExpertRecipe(optimizer="gsam", optimizer_options=spec.defaults), zca=False
    )
    other_rho = buffer_dir(
        tmp_path,
        toy,
        "convnet_w32",
        ExpertRecipe(optimizer="gsam", optimizer_options={**spec.defaults, "rho": 0.05}),
        zca=False,
    )
    assert len({sgd, gsam, other_rho}) == 3 and gsam.name.startswith("gsam-")


def test_buffer_command_trains_gsam_experts(tmp_path):
    code = main(
        [
            "buffer",
            "--dataset",
            "toy",
            "--model",
            "convnet_w32",
            "--experts",
            "1",
            "--epochs",
            "2",
            "--optimizer",
            "gsam",
            "--cache-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert list((tmp_path / "buffers" / "toy" / "convnet_w32").glob("gsam-*/expert_*.pt"))


def distill(registry, data, tmp_path, **overrides):
    return api.distill(
        registry,
        "ftd",
        data,
        ipc=2,
        seed=0,
        overrides={**TINY, **overrides},
        cache_dir=tmp_path,
        model="convnet_w32",
        progress=False,
    )


def test_ema_images_differ_from_raw_and_follow_the_recurrence(registry, toy, tmp_path):
    syn = distill(registry, toy, tmp_path, ema_decay=0.5)
    raw = syn.metadata[ALTERNATE_KEY]
    assert syn.metadata[KIND_KEY] == "ema" and syn.metadata["expert_optimizer"] == "gsam"
    assert "gsam-" in syn.metadata["buffers"]
    assert syn.metadata["expert_optimizer_options"] == {"rho": 0.01, "alpha": 0.4, "adaptive": True}
    assert not torch.allclose(syn.images, raw), "the EMA must lag the raw images"
    # decay 0: the EMA is the last raw image, so both kinds coincide
    assert torch.equal(distill(registry, toy, tmp_path, ema_decay=0.0).images, raw)
    # the raw images are MTT's on the same (GSAM) experts: FTD changes only what it claims
    no_ema = distill(registry, toy, tmp_path, use_ema=False, keep_alternate=False)
    assert torch.equal(no_ema.images, raw) and ALTERNATE_KEY not in no_ema.metadata


def test_both_kinds_are_saved_and_evaluated_as_sets_of_their_own(registry, toy, tmp_path):
    syn = distill(registry, toy, tmp_path)
    path = tmp_path / "ftd.pt"
    syn.save(path)
    loaded = SyntheticSet.load(path)  # the alternate images survive weights_only loading
    raw = alternate_set(loaded)
    assert raw.metadata[KIND_KEY] == "raw" and ALTERNATE_KEY not in raw.metadata
    assert torch.equal(raw.images, syn.metadata[ALTERNATE_KEY]) and raw.lr == syn.lr
    out = tmp_path / "raw.pt"
    run = subprocess.run(
        [sys.executable, "-m", "dd_bench_ftd", "alternate", str(path), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert torch.equal(SyntheticSet.load(out).images, raw.images)
    with pytest.raises(DataError, match="keep_alternate"):
        alternate_set(raw)


@pytest.mark.parametrize(
    ("overrides", "match_text"),
    [
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"expert_optimizer": "adam"}, "expert_optimizer"),
        ({"rho": -1.0}, "rho"),
    ],
)
def test_bad_ftd_configs_are_rejected(registry, overrides, match_text):
    with pytest.raises(ConfigError, match=match_text):
        registry.distiller("ftd").resolve_config("smoke", overrides)
