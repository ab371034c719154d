"""Hook specifications: the whole contract between dd-bench and its plugins.

A plugin is any module or object with functions named like these hooks and decorated with
``dd_bench.hookimpl``. Distributions advertise plugins in the ``dd_bench`` entry-point
group; the built-in plugins are registered the same way.
"""

from __future__ import annotations

import pluggy

from . import PROJECT
from .formats import FormatSpec
from .specs import DatasetSpec, DistillerSpec, ModelSpec, OptimizerSpec

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def ddb_register_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin provides.

    Each ``DatasetSpec.load(request)`` returns a ``RealData`` whose images are normalised
    and whose validation split is a fixed, seeded slice of the training split.
    """


@hookspec
def ddb_register_models() -> list[ModelSpec]:
    """Return the model families this plugin provides.

    ``ModelSpec.build(shape, **options)`` returns a fresh ``nn.Module`` mapping
    ``[N, C, H, W]`` images to ``[N, num_classes]`` logits; it must not draw from the
    global RNG state in ways the caller cannot seed (the host seeds ``torch`` before
    building).
    """


@hookspec
def ddb_register_distillers() -> list[DistillerSpec]:
    """Return the distillation methods this plugin provides.

    ``DistillerSpec.distill(request)`` returns a ``SyntheticSet``; every distiller declares
    named presets, including ``smoke``.
    """


@hookspec
def ddb_register_optimizers() -> list[OptimizerSpec]:
    """Return optimizers for training expert trajectories (``dd-bench buffer --optimizer``).

    Plain SGD is built in; a plugin adds others (FTD's sharpness-aware GSAM). Buffers are
    cached per optimizer and options, so experts of different optimizers never mix.
    """


@hookspec
def ddb_register_formats() -> list[FormatSpec]:
    """Return the file formats this plugin reads (``dd-bench import NAME``) and writes (``export``).

    A method's plugin owns the formats its published code saves (DC's results files, MTT's and
    DATM's iteration folders, FTD's EMA sets). ``FormatSpec.read(path, request)`` returns a
    ``FormatRead`` as the files hold it; the host checks, converts and records it. The generic
    formats (``tensors``, ``image-folder``, ``dd-bench``) are the host's own.
    """


@hookspec(firstresult=True)
def ddb_resolve_model(name: str) -> ModelSpec | None:
    """Resolve a model name that no plugin registered verbatim.

    Used for namespaced families such as ``timm:resnet18`` or ``tv:vgg11``: return a
    ``ModelSpec`` if this plugin owns the name, else ``None``. The first non-``None``
    answer wins.
    """
