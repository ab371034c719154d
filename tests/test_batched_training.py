"""Networks of one architecture train together (vmap) exactly as they would one after another."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dd_bench.augment import DSA
from dd_bench.evaluate import EvalConfig, eval_splits, evaluate_model
from dd_bench.runtime import seeded_build
from dd_bench.synthetic import SyntheticSet
from dd_bench.training import TrainRecipe, can_train_batched, train_classifiers

SEEDS = (0, 1, 2)


def trained(registry, data, arch, batched, soft=False, weighted=False):
    spec = registry.model(arch)
    models = [seeded_build(lambda: spec.build(data.shape), s, torch.device("cpu")) for s in SEEDS]
    g = torch.Generator().manual_seed(5)
    x, y = data.train_x[:30], data.train_y[:30]
    labels = torch.randn(30, data.num_classes, generator=g) if soft else y
    weights = torch.rand(30, generator=g) if weighted else None
    train_classifiers(
        models,
        x,
        labels,
        TrainRecipe(epochs=4, batch_size=8, decay_at=0.5),
        [torch.Generator().manual_seed(s) for s in SEEDS],
        weights=weights,
        augment=DSA(),
        batched=batched,
    )
    return [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in models]


@pytest.mark.parametrize("arch,soft,weighted", [("convnet_w32", False, False), ("mlp", True, True)])
def test_batched_training_equals_sequential(registry, toy, arch, soft, weighted, one_thread):
    sequential = trained(registry, toy, arch, batched=False, soft=soft, weighted=weighted)
    batched = trained(registry, toy, arch, batched=True, soft=soft, weighted=weighted)
    for a, b in zip(batched, sequential):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])  # each network kept its own seed


def test_evaluation_accuracies_are_those_of_sequential_training(registry, toy, one_thread):
    syn = SyntheticSet(
        images=toy.train_x[:20].clone(),
        labels=toy.train_y[:20].clone(),
        num_classes=toy.num_classes,
        dataset=toy.name,
        method="test",
        ipc=2,
        mean=toy.mean,
        std=toy.std,
    )
    config = EvalConfig(epochs=5, batch_size=8)
    splits = eval_splits(syn, toy)
    spec = registry.model("convnet_w32")
    batched = evaluate_model(syn, toy, spec, SEEDS, config, torch.device("cpu"), splits, batched=True)
    sequential = evaluate_model(syn, toy, spec, SEEDS, config, torch.device("cpu"), splits, batched=False)
    assert batched == sequential


def test_networks_with_buffers_or_dropout_train_one_after_another():
    assert can_train_batched(nn.Sequential(nn.Linear(2, 2), nn.GroupNorm(1, 2)))
    assert not can_train_batched(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    assert not can_train_batched(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
