"""The fresh-network matching engine (``dd_bench.fresh``) in the shared loop: penultimate features
of any model, shared DSA draws, resumable checkpoints and the loss guard, for a minimal method and
for every built-in one (dc, dsa, dm, idm, m3d)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from dd_bench import api
from dd_bench.errors import ConfigError
from dd_bench.fresh import FreshConfig, FreshMatcher, penultimate
from dd_bench.runtime import seeded_build
from dd_bench.specs import DataShape, DistillerSpec, DistillRequest

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = DataShape(1, 16, 16, 10)


# ---------------------------------------------------------------------------- penultimate features


def test_penultimate_features_are_the_classifier_input(registry):
    x = torch.randn(5, 1, 16, 16)
    convnet = seeded_build(lambda: registry.model("convnet_w32").build(SHAPE), 0, torch.device("cpu"))
    features = penultimate(convnet)(x)
    torch.testing.assert_close(features, convnet.features(x).flatten(1))
    torch.testing.assert_close(convnet.classifier(features), convnet(x))
    mlp = seeded_build(lambda: registry.model("mlp").build(SHAPE), 0, torch.device("cpu"))
    features, logits = penultimate(mlp).with_logits(x)
    torch.testing.assert_close(features, mlp[:-1](x))  # the last linear layer's input, not the first's
    torch.testing.assert_close(logits, mlp(x))


class Embeds(nn.Module):
    """A third-party model that says where its features are."""

    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 10, 1)

    def embed(self, x):
        return self.body(x).mean((2, 3))

    def forward(self, x):
        return self.head(self.body(x)).mean((2, 3))


def test_a_model_may_provide_embed_and_one_without_a_linear_layer_is_refused():
    x = torch.randn(3, 1, 8, 8)
    model = Embeds()
    torch.testing.assert_close(penultimate(model)(x), model.embed(x))
    with pytest.raises(ConfigError, match="no nn.Linear classifier and no embed\\(x\\) method"):
        penultimate(model.head)


# ---------------------------------------------------------------------------- a minimal method


@dataclass(frozen=True)
class MeanConfig(FreshConfig):
    nan_at: int = -1
    """Return NaN as the loss of this iteration (the guard's test)."""


class MeanMatch(FreshMatcher):
    """DM reduced to its skeleton: the host's services and nothing else."""

    method = "meanmatch"

    def step(self, iteration):
        embed = penultimate(self.fresh_network().requires_grad_(False))
        loss = sum((embed(r).mean(0) - embed(s).mean(0)).square().sum() for _, r, s in self.class_batches())
        self.update_images(loss)
        return float("nan") if iteration == self.config.nan_at else loss.item()


SPEC = DistillerSpec("meanmatch", MeanConfig, lambda request: MeanMatch(request).run(), {"smoke": {}})
TINY = dict(iterations=6, batch_real=8, lr_img=1.0, checkpoint_every=2)


def meanmatch(registry, data, cache, **overrides):
    return api.distill(
        registry,
        SPEC,
        data,
        ipc=2,
        seed=0,
        overrides={**TINY, **overrides},
        cache_dir=cache,
        model="convnet_w32",
        progress=False,
    )


def request(registry, data, tmp_path, **overrides):
    spec = registry.model("convnet_w32")
    return DistillRequest(
        data=data,
        ipc=3,
        seed=0,
        config=SPEC.resolve_config(None, {**TINY, **overrides}),
        device=torch.device("cpu"),
        model="convnet_w32",
        cache_dir=tmp_path,
        progress=False,
        build_model=lambda seed: seeded_build(lambda: spec.build(data.shape), seed, torch.device("cpu")),
    )


def test_real_and_synthetic_batches_share_each_dsa_draw(registry, digits, tmp_path):
    matcher = MeanMatch(request(registry, digits, tmp_path))
    real = digits.train_x[:6]
    seen = set()
    for _ in range(4):
        real_aug, syn_aug = matcher.augment_pair(real, real[[4, 1]].clone())
        torch.testing.assert_close(syn_aug, real_aug[[4, 1]])  # one transform for both batches ...
        assert not torch.equal(real_aug, real)
        seen.add(real_aug.sum().item())
    assert len(seen) == 4  # ... and a new draw for every pair
    plain = MeanMatch(request(registry, digits, tmp_path, dsa=False))
    assert plain.augment_pair(real, real[:2])[0] is real


def test_the_loop_logs_each_loss_and_a_finished_run_leaves_no_checkpoint(registry, toy, tmp_path):
    logged = []
    syn = api.distill(
        registry,
        SPEC,
        toy,
        ipc=2,
        seed=0,
        overrides=TINY,
        cache_dir=tmp_path,
        model="convnet_w32",
        log_metric=lambda *row: logged.append(row),
        progress=False,
    )
    assert [(name, step) for name, _, step in logged] == [("matching_loss", i) for i in range(6)]
    assert syn.metadata["matching_loss_last"] == logged[-1][1] and syn.metadata["stopped_early"] is None
    assert syn.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert not list(tmp_path.rglob("*.pt"))


def test_a_nan_loss_stops_the_run_with_the_set_the_last_good_iteration_started_from(registry, toy, tmp_path, capsys):
    syn = meanmatch(registry, toy, tmp_path / "a", nan_at=3)
    assert "meanmatch stopped at iteration 3" in capsys.readouterr().err
    assert syn.metadata["stopped_early"] == {"iteration": 3, "loss": "nan", "kept_iteration": 2}
    two = meanmatch(registry, toy, tmp_path / "b", iterations=2)  # the set iteration 2 started from
    torch.testing.assert_close(syn.images, two.images)
    assert not list((tmp_path / "a").rglob("*.pt"))
    capped = meanmatch(registry, toy, tmp_path / "c", max_loss=1e-9)
    assert capped.metadata["stopped_early"]["kept_iteration"] == 0  # the first loss was too high: the initial set


# ---------------------------------------------------------------------------- every built-in method

METHODS = ["meanmatch", "dc", "dsa", "dm", "idm", "m3d"]


def run(registry, method, data, cache, **kwargs):
    spec = SPEC if method == "meanmatch" else registry.distiller(method)
    overrides = {"iterations": 6, "checkpoint_every": 2}  # idm and m3d at their smoke presets' factor 2
    return api.distill(
        registry,
        spec,
        data,
        ipc=2,
        seed=0,
        preset="smoke",
        overrides=overrides,
        cache_dir=cache,
        model="convnet_w32",
        progress=False,
        **kwargs,
    )


@pytest.mark.parametrize("method", METHODS)
def test_a_crashed_run_resumes_from_its_checkpoint_to_the_uninterrupted_result(registry, toy, tmp_path, capsys, method):
    straight = run(registry, method, toy, tmp_path / "a")

    def crash(name, value, step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(registry, method, toy, tmp_path / "b", log_metric=crash)
    assert len(list((tmp_path / "b" / "checkpoints").glob("*.pt"))) == 1
    assert not list((tmp_path / "b" / "checkpoints").glob(".*"))  # no half-written file beside it
    capsys.readouterr()
    resumed = run(registry, method, toy, tmp_path / "b")
    assert f"resuming {method} from iteration 2" in capsys.readouterr().err
    assert torch.equal(resumed.images, straight.images) and torch.equal(resumed.labels, straight.labels)


def test_an_exploding_method_keeps_its_last_good_set(registry, toy, tmp_path):
    syn = api.distill(
        registry,
        "dm",
        toy,
        ipc=2,
        seed=0,
        preset="smoke",
        overrides={"lr_img": 1e30},
        cache_dir=tmp_path,
        model="convnet_w32",
        progress=False,
    )
    assert syn.metadata["stopped_early"] is not None and torch.isfinite(syn.images).all()
