"""dd-bench's built-in models, registered like any third-party plugin.

Registered names (``build(shape, **options)``; unknown options raise ``ConfigError``):

=============  ==========================================================================
convnet        DC/MTT/FTD/DATM ConvNet. width=128, depth=3, norm=instance|batch|layer|
               group|none, activation=relu|leakyrelu|sigmoid, pooling=avg|max|none
convnet_d4     convnet with depth=4 (the literature's Tiny-ImageNet network)
convnet_d5     convnet with depth=5 (needs >= 32x32 after the first conv)
convnet_bn     convnet with norm=batch
convnet_w64    convnet with width=64
convnet_w32    convnet with width=32 (CPU-sized distillation and expert buffers)
convnet_w32_bn convnet with width=32 and norm=batch (CPU-sized teacher for SRe2L/RDED)
mlp            3 linear layers, width=128 hidden
lenet          LeNet-5
alexnet        the DC literature's small-image AlexNet
vgg11          DC VGG11, norm=instance|batch (default instance)
vgg11_bn       vgg11 with norm=batch
resnet18       CIFAR-style ResNet18, norm=batch|instance (default batch), width=64
resnet18_in    resnet18 with norm=instance
=============  ==========================================================================

Namespaced names resolve on demand: ``timm:<arch>`` and ``tv:<arch>`` (see ``zoo``).

The ConvNets and ResNet18s declare ``compile_on_cpu`` (``benchmarks/eval_speed.py`` measured them
1.2-1.5x faster per epoch compiled at IPC 10); MLP, LeNet and AlexNet lost, VGG11 gained 1.06x.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from torch import nn

from dd_bench.plugin import ConfigError, DataShape, ModelSpec, hookimpl

from . import dc, zoo

__all__ = ["ddb_register_models", "ddb_resolve_model", "dc", "zoo"]


def _spec(
    name: str, builder: Callable[..., nn.Module], description: str, compile_on_cpu: bool = False, **defaults: object
) -> ModelSpec:
    """A ModelSpec whose build rejects unknown options by name and applies a variant's defaults."""
    allowed = [p.name for p in inspect.signature(builder).parameters.values() if p.kind is p.KEYWORD_ONLY]

    @functools.wraps(builder)
    def build(shape: DataShape, **options: object) -> nn.Module:
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ConfigError(
                f"model {name!r}: unknown option {', '.join(unknown)} (allowed: {', '.join(allowed) or 'none'})"
            )
        return builder(shape, **{**defaults, **options})

    return ModelSpec(name, build, description, compile_on_cpu=compile_on_cpu)


@hookimpl
def ddb_register_models() -> list[ModelSpec]:
    return [
        _spec(
            "convnet",
            dc.convnet,
            "ConvNet-3, width 128, instance norm, avg pool (DC/MTT/FTD/DATM default)",
            compile_on_cpu=True,
        ),
        _spec(
            "convnet_d4", dc.convnet, "ConvNet-4 (the literature's Tiny-ImageNet network)", depth=4, compile_on_cpu=True
        ),
        _spec(
            "convnet_d5",
            dc.convnet,
            "ConvNet-5 (needs images of at least 32x32 after the first conv)",
            depth=5,
            compile_on_cpu=True,
        ),
        _spec("convnet_bn", dc.convnet, "ConvNet-3 with batch norm", norm="batch", compile_on_cpu=True),
        _spec("convnet_w64", dc.convnet, "ConvNet-3 of width 64", width=64, compile_on_cpu=True),
        _spec(
            "convnet_w32", dc.convnet, "ConvNet-3 of width 32 (CPU-sized distillation)", width=32, compile_on_cpu=True
        ),
        _spec(
            "convnet_w32_bn",
            dc.convnet,
            "ConvNet-3 of width 32 with batch norm (CPU-sized teacher)",
            width=32,
            norm="batch",
            compile_on_cpu=True,
        ),
        _spec("mlp", dc.mlp, "MLP: 3 linear layers, 128 hidden units"),
        _spec("lenet", dc.lenet, "LeNet-5"),
        _spec("alexnet", dc.alexnet, "AlexNet for small images (DC literature)"),
        _spec("vgg11", dc.vgg11, "VGG11 with instance norm (DC literature)"),
        _spec("vgg11_bn", dc.vgg11, "VGG11 with batch norm (DC literature)", norm="batch"),
        _spec(
            "resnet18",
            dc.resnet18,
            "ResNet18 for small images, batch norm (DC literature's ResNet18BN)",
            compile_on_cpu=True,
        ),
        _spec(
            "resnet18_in", dc.resnet18, "ResNet18 for small images, instance norm", norm="instance", compile_on_cpu=True
        ),
    ]


@hookimpl
def ddb_resolve_model(name: str) -> ModelSpec | None:
    return zoo.resolve(name)
