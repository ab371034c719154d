"""A complete dd-bench plugin: one dataset, one model and one distiller."""

from dataclasses import dataclass

import torch
from torch import nn

from dd_bench.plugin import DatasetSpec, DistillerSpec, ModelSpec, RealData, SyntheticSet, hookimpl, split_train_val


def load_stripes(request):
    """Two classes of 8x8 images: horizontal or vertical stripes, with seeded noise.

    The first 300 images are the training split; its mean and std normalise every split.
    """
    g = torch.Generator().manual_seed(1234)
    y = torch.arange(400) % 2
    stripes = (torch.arange(8) % 2).float().view(1, 8) * torch.ones(8, 1)
    x = torch.stack([stripes if c == 0 else stripes.T for c in y.tolist()]).unsqueeze(1)
    x = x + 0.3 * torch.randn(x.shape, generator=g)
    mean, std = x[:300].mean().item(), x[:300].std().item()
    x = (x - mean) / std
    train_x, train_y, val_x, val_y = split_train_val(x[:300], y[:300], request.val_fraction, request.seed)
    return RealData(
        "stripes", train_x, train_y, val_x, val_y, x[300:], y[300:], (mean,), (std,), ("horizontal", "vertical")
    )


def build_tiny_mlp(shape, hidden=32):
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(shape.channels * shape.height * shape.width, hidden),
        nn.ReLU(),
        nn.Linear(hidden, shape.num_classes),
    )


@dataclass(frozen=True)
class ClassMeanConfig:
    pool: int = 20  # real images averaged into each synthetic image


def class_means(request):
    """Each synthetic image is the mean of `pool` random real images of its class."""
    data, g, pool = request.data, request.generator(), request.config.pool
    images, labels = [], []
    for c in range(data.num_classes):
        idx = data.indices_of_class(c)
        for _ in range(request.ipc):
            pick = idx[torch.randperm(len(idx), generator=g)[:pool]]
            images.append(data.train_x[pick].mean(0))
            labels.append(c)
    return SyntheticSet(
        images=torch.stack(images),
        labels=torch.tensor(labels),
        num_classes=data.num_classes,
        dataset=data.name,
        method="class_means",
        ipc=request.ipc,
        mean=data.mean,
        std=data.std,
    )


@hookimpl
def ddb_register_datasets():
    return [DatasetSpec(name="stripes", load=load_stripes, description="toy stripes, 2 classes")]


@hookimpl
def ddb_register_models():
    return [ModelSpec(name="tiny_mlp", build=build_tiny_mlp, description="one hidden layer")]


@hookimpl
def ddb_register_distillers():
    return [
        DistillerSpec(
            name="class_means",
            config_cls=ClassMeanConfig,
            distill=class_means,
            presets={"smoke": {"pool": 5}, "default": {}},
            description="means of random real images per class",
        )
    ]
