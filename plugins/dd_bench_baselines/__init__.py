"""Reference rows of every leaderboard: a seeded random real subset, and the full training set."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dd_bench.plugin import PER_CLASS, DistillerSpec, DistillRequest, SyntheticSet, hookimpl


@dataclass(frozen=True)
class RandomConfig:
    """The random subset has no knobs: the cell's seed decides which images are drawn."""


def random_subset(request: DistillRequest) -> SyntheticSet:
    """``ipc`` real training images per class, drawn without replacement from the seed and the class."""
    data = request.data
    picks = []
    for c in request.shard(data.num_classes):
        idx = data.indices_of_class(c)
        picks.append(idx[torch.randperm(len(idx), generator=request.unit_generator(c))[: request.ipc]])
    idx = torch.cat(picks)
    return SyntheticSet(
        images=data.train_x[idx].clone(),
        labels=data.train_y[idx].clone(),
        num_classes=data.num_classes,
        dataset=data.name,
        method="random",
        ipc=request.ipc,
        mean=data.mean,
        std=data.std,
        metadata={"train_indices": idx.tolist()},
    )


def full_training_set(request: DistillRequest) -> SyntheticSet:
    """The whole training split (``ipc`` is ignored): the upper reference row."""
    data = request.data
    return SyntheticSet(
        images=data.train_x.clone(),
        labels=data.train_y.clone(),
        num_classes=data.num_classes,
        dataset=data.name,
        method="full",
        ipc=int(data.class_counts().max()),
        mean=data.mean,
        std=data.std,
        metadata={"full": True},
    )


@hookimpl
def ddb_register_distillers() -> list[DistillerSpec]:
    return [
        DistillerSpec(
            name="random",
            config_cls=RandomConfig,
            distill=random_subset,
            presets={"smoke": {}, "demo": {}},  # no knobs: the demo's lower reference (random's own seed decides)
            description="seeded random subset of real training images, ipc per class",
            sharding=PER_CLASS,
        ),
        DistillerSpec(
            name="full",
            config_cls=RandomConfig,
            distill=full_training_set,
            presets={"smoke": {}, "demo": {}},
            description="the whole training set (upper reference; ignores ipc)",
            deterministic=True,
            ignores_ipc=True,
            in_memory=True,
        ),
    ]
