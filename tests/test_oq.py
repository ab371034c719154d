"""The optimal-quantization baseline (plugins/dd_bench_oq): algorithm, latents, cache, labels, plumbing."""

from __future__ import annotations

import sys

import dd_bench_oq
import pytest
import torch
from dd_bench_oq import latents as oq_latents
from dd_bench_oq.quantize import clvq, kmeans_plus_plus, lloyd, quantization_error

from dd_bench import api
from dd_bench.errors import ConfigError
from dd_bench.evaluate import EvalConfig, evaluate
from dd_bench.synthetic import CACHE_BUILD_SECONDS, SyntheticSet


def blobs(n=600, d=5, centres=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = 4 * torch.randn(centres, d, generator=g)
    return mu[torch.randint(centres, (n,), generator=g)] + torch.randn(n, d, generator=g)


def run(registry, data, ipc, tmp_path, seed=0, preset="smoke", **overrides):
    return api.distill(
        registry, "oq", data, ipc, seed=seed, preset=preset, overrides=overrides, cache_dir=tmp_path, progress=False
    )


# ------------------------------------------------------------------------------------ the algorithm


def test_lloyd_decreases_the_objective_monotonically():
    x = blobs()
    init = kmeans_plus_plus(x, 8, torch.Generator().manual_seed(1))
    # independent check: the error (recomputed from scratch) after t update steps from the same seeds
    errors = [
        quantization_error(x, lloyd(x, 8, torch.Generator(), iterations=t, tol=0.0, init=init).codes)["error"]
        for t in range(8)
    ]
    assert all(b <= a * (1 + 1e-9) for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < errors[0]
    q = lloyd(x, 8, torch.Generator(), iterations=50, tol=0.0, init=init)
    assert all(b <= a * (1 + 1e-9) for a, b in zip(q.history, q.history[1:]))
    assert q.error == pytest.approx(quantization_error(x, q.codes)["error"], rel=1e-6)
    assert q.masses.sum().item() == pytest.approx(1.0) and (q.masses >= 0).all()


def test_lloyd_restarts_keep_the_best_and_clvq_comes_close():
    x = blobs(seed=3)
    one = lloyd(x, 6, torch.Generator().manual_seed(0), restarts=1)
    best = lloyd(x, 6, torch.Generator().manual_seed(0), restarts=4)
    assert best.error <= one.error + 1e-9
    mini = clvq(x, 6, torch.Generator().manual_seed(0), iterations=100, batch_size=64)
    assert mini.error < 1.5 * best.error
    assert mini.masses.sum().item() == pytest.approx(1.0)


def test_quantization_error_is_per_class_with_priors():
    x = torch.tensor([[0.0], [2.0], [10.0], [10.0], [12.0], [14.0]])
    y = torch.tensor([0, 0, 1, 1, 1, 1])
    codes, code_y = torch.tensor([[1.0], [10.0]]), torch.tensor([0, 1])
    out = quantization_error(x, codes, y, code_y)
    assert out["per_class"] == pytest.approx([1.0, (0 + 0 + 4 + 16) / 4])
    assert out["error"] == pytest.approx((2 * 1.0 + 4 * 5.0) / 6)
    assert out["masses"].tolist() == pytest.approx([2 / 6, 4 / 6])


# ------------------------------------------------------------------------------------ the distiller


def test_end_to_end_through_registry_round_trip_keeps_weights(registry, digits, tmp_path):
    syn = run(registry, digits, 3, tmp_path)
    assert (
        syn.method == "oq"
        and syn.images.shape == (30, 1, 16, 16)
        and syn.labels.tolist() == sorted(syn.labels.tolist())
    )
    back = SyntheticSet.load(syn.save(tmp_path / "oq.pt"))
    assert torch.equal(back.weights, syn.weights) and torch.equal(back.images, syn.images)
    assert back.metadata["quantization_error"] == syn.metadata["quantization_error"]
    assert back.metadata["latent"] == "pca" and back.metadata["latent_dim"] == 16


def test_weights_are_cell_shares_summing_to_the_class_share(registry, digits, tmp_path):
    syn = run(registry, digits, 5, tmp_path)
    assert (syn.weights >= 0).all()
    share = digits.class_counts().double() / len(digits.train_y)
    per_class = torch.zeros(digits.num_classes, dtype=torch.float64).index_add_(0, syn.labels, syn.weights.double())
    assert torch.allclose(per_class, share, atol=1e-6)
    assert syn.weights.sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("latent", ["pixel", "pca"])
def test_oq_error_is_below_random_subsets_of_the_same_size(registry, digits, tmp_path, latent):
    ipc = 5
    syn = run(registry, digits, ipc, tmp_path, latent=latent, iterations=50)
    oq_pixel = dd_bench_oq.set_quantization_error(syn.images, syn.labels, digits)["error"]
    assert oq_pixel == pytest.approx(syn.metadata["quantization_error_pixel"], rel=1e-5)
    space = dd_bench_oq.build_latent(
        dd_bench_oq.OQConfig(latent=latent, pca_components=16), digits, torch.device("cpu"), tmp_path
    )
    oq_latent = dd_bench_oq.set_quantization_error(syn.images, syn.labels, digits, space)["error"]
    for seed in range(3):
        rnd = api.distill(registry, "random", digits, ipc, seed=seed)
        assert oq_pixel < dd_bench_oq.set_quantization_error(rnd.images, rnd.labels, digits)["error"]
        assert oq_latent < dd_bench_oq.set_quantization_error(rnd.images, rnd.labels, digits, space)["error"]


def test_medoids_are_real_training_images(registry, digits, tmp_path):
    syn = run(registry, digits, 4, tmp_path, medoid=True)
    idx = torch.tensor(syn.metadata["medoid_train_indices"])
    assert torch.equal(syn.images, digits.train_x[idx])
    assert torch.equal(digits.train_y[idx], syn.labels)
    flat = digits.train_x.flatten(1)
    assert all((flat == img.flatten()).all(1).any() for img in syn.images)


def test_same_seed_same_set_other_seed_other_set(registry, digits, tmp_path):
    a, b = run(registry, digits, 3, tmp_path, seed=4), run(registry, digits, 3, tmp_path, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.weights, b.weights)
    c = run(registry, digits, 3, tmp_path, seed=5)
    assert not torch.equal(a.images, c.images)


# ------------------------------------------------------------------------------------ latents


def test_pixel_and_pca_latents_round_trip(digits):
    x = digits.train_x[:50]
    pixel = dd_bench_oq.build_latent(dd_bench_oq.OQConfig(latent="pixel"), digits, torch.device("cpu"), None)
    assert torch.equal(pixel.decode(pixel.encode(x)), x)
    full = dd_bench_oq.build_latent(
        dd_bench_oq.OQConfig(latent="pca", pca_components=256), digits, torch.device("cpu"), None
    )
    assert torch.allclose(full.decode(full.encode(x)), x, atol=1e-3)
    assert full.info["pca_explained_variance"] == pytest.approx(1.0)
    small = dd_bench_oq.build_latent(
        dd_bench_oq.OQConfig(latent="pca", pca_components=8), digits, torch.device("cpu"), None
    )
    assert small.encode(x).shape == (50, 8) and 0 < small.info["pca_explained_variance"] < 1


def test_ae_latent_is_trained_once_then_reused(registry, toy, tmp_path, monkeypatch):
    kw = dict(latent="ae", ae_epochs=1, ae_hidden=8, ae_batch=64)
    first = run(registry, toy, 2, tmp_path, **kw)
    assert first.metadata["ae_trained_now"] is True and first.metadata["latent_dim"] == 4 * 2 * 2
    assert first.metadata[CACHE_BUILD_SECONDS] > 0
    path = first.metadata["ae_cache"]
    mtime = oq_latents.Path(path).stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the cached autoencoder should have been reused")

    monkeypatch.setattr(oq_latents, "_train_autoencoder", no_training)
    second = run(registry, toy, 2, tmp_path, **kw)
    assert second.metadata["ae_trained_now"] is False and second.metadata["ae_cache"] == path
    assert second.metadata[CACHE_BUILD_SECONDS] == 0.0
    assert oq_latents.Path(path).stat().st_mtime_ns == mtime
    assert torch.equal(first.images, second.images)
    with pytest.raises(AssertionError, match="reused"):  # a changed recipe is a different cache entry
        run(registry, toy, 2, tmp_path, **{**kw, "ae_epochs": 2})
    assert not list(oq_latents.Path(path).parent.glob("*.tmp"))


def test_vae_without_diffusers_is_a_clean_config_error(registry, toy, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="vae=None"):
        run(registry, toy, 1, tmp_path, latent="vae")
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError
    with pytest.raises(ConfigError, match="diffusers"):
        run(registry, toy, 1, tmp_path, latent="vae", vae="/nonexistent/sd-vae")


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"latent": "wavelet"}, ["latent", "wavelet", "pixel", "pca", "ae", "vae"]),
        ({"iterations": "0"}, ["iterations", "0", ">= 1"]),
        ({"labels": "soft"}, ["labels", "soft", "hard", "teacher"]),
        ({"ae_lr": "-1"}, ["ae_lr", "-1"]),
        ({"vae_size": "30"}, ["vae_size", "30", "multiple of 8"]),
    ],
)
def test_config_errors_name_field_value_and_allowed(registry, overrides, words):
    with pytest.raises(ConfigError) as err:
        registry.distiller("oq").resolve_config("smoke", overrides)
    for word in words:
        assert word in str(err.value)
    with pytest.raises(ConfigError, match="restarts"):
        dd_bench_oq.OQConfig(restarts=0)


# ------------------------------------------------------------------------------------ labels and evaluation


def test_soft_labels_from_the_host_s_cached_teacher(registry, toy, tmp_path):
    from dd_bench.teachers import resolve_teacher

    overrides = {"labels": "teacher", "teacher_model": "mlp", "teacher_epochs": 1, "label_temperature": 2.0}
    syn = api.distill(
        registry,
        "oq",
        toy,
        2,
        seed=0,
        preset="smoke",
        overrides=overrides,
        cache_dir=tmp_path,
        model="convnet_w32",
        progress=False,
    )
    assert syn.soft_labels and syn.labels.shape == (8, toy.num_classes) and syn.labels.dtype == torch.float32
    assert syn.metadata["class_labels"] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert 0.0 <= syn.metadata["teacher_agreement"] <= 1.0
    assert list((tmp_path / "teachers").rglob("teacher-*.pt")), "the teacher went through the host's cache"
    recipe = dd_bench_oq.OQConfig(**overrides).teacher_recipe()
    teacher = resolve_teacher(registry, toy, recipe, tmp_path, torch.device("cpu"), progress=False)
    assert syn.metadata["teacher"]["key"] == teacher.key, "the set names its teacher, as SRe2L's do"
    assert torch.allclose(syn.labels, teacher.logits(syn.images) / 2.0), "the labels are that teacher's logits / T"
    back = SyntheticSet.load(syn.save(tmp_path / "soft.pt"))
    assert torch.equal(back.labels, syn.labels) and torch.equal(back.weights, syn.weights)


def test_weighted_and_unweighted_evaluation_both_run(registry, toy, tmp_path):
    syn = run(registry, toy, 3, tmp_path)
    mlp = [("mlp", registry.model("mlp"))]
    for use_weights in (True, False):
        report = evaluate(syn, toy, mlp, [0], EvalConfig(epochs=2, dsa=False, use_weights=use_weights))
        assert 0.0 <= report.results["mlp"].mean <= 100.0


def test_cli_distill_with_overrides(tmp_path):
    from dd_bench.cli import main

    out = tmp_path / "oq.pt"
    argv = [
        "distill",
        "--method",
        "oq",
        "--dataset",
        "digits",
        "--ipc",
        "2",
        "--preset",
        "smoke",
        "--set",
        "latent=pixel",
        "--set",
        "medoid=true",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    syn = SyntheticSet.load(out)
    assert syn.metadata["latent"] == "pixel" and syn.metadata["config"]["medoid"] is True and syn.weights is not None


@pytest.mark.cuda
def test_runs_on_gpu_with_the_same_objective(registry, digits, tmp_path):
    cpu = run(registry, digits, 3, tmp_path, latent="pixel")
    gpu = api.distill(
        registry,
        "oq",
        digits,
        3,
        seed=0,
        preset="smoke",
        overrides={"latent": "pixel"},
        device=torch.device("cuda"),
        cache_dir=tmp_path,
        progress=False,
    )
    assert gpu.images.device.type == "cpu"
    assert gpu.metadata["quantization_error"] == pytest.approx(cpu.metadata["quantization_error"], rel=0.05)


def test_lloyd_moves_an_empty_cells_code_onto_the_worst_served_point():
    from dd_bench_oq.quantize import lloyd

    x = torch.cat([torch.zeros(5, 2), torch.full((5, 2), 5.0)])
    x[:5] += torch.linspace(0, 0.1, 5).unsqueeze(1)
    far = torch.tensor([[0.0, 0.0], [100.0, 100.0]])  # the second code serves no point at the start
    q = lloyd(x, 2, torch.Generator().manual_seed(0), iterations=10, init=far)
    assert (q.masses > 0).all(), "the empty cell was reseeded"
    assert q.error < 1e-2, "one code per cluster"
