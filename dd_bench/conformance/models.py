"""The model checks: shapes, logits, seeded initialisation, training, the functional call."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DDBenchError
from ..matching.student import FlatModel
from ..plugins import Registry
from ..runtime import seeded_build
from ..specs import DataRequest, DataShape, ModelSpec
from .base import (
    CPU,
    GLOBAL_SEEDS,
    CheckResult,
    Checks,
    NotChecked,
    global_rng_restored,
    one_line,
    run_checks,
    seed_globals,
)

MODEL_SHAPES = tuple((c, s) for c in (1, 3) for s in (16, 28, 32))
MODEL_CLASSES = 10
MODEL_BATCH = 4
INPUT_DEPENDENCE = 1e-3
"""Logits of different images that agree to within this share of their size ignore the input."""
TRAIN_IMAGES, TRAIN_STEPS, TRAIN_FALL = 32, 20, 0.9
"""The training check: Adam (lr 1e-3) on a fixed batch of toy images must bring the loss to
at most ``TRAIN_FALL`` of its first value."""


def _shape_name(shape: DataShape) -> str:
    return f"{shape.channels}x{shape.height}x{shape.width}"


class _ModelChecks:
    def __init__(self, spec: ModelSpec, registry: Registry):
        self.spec, self.registry = spec, registry
        self.built: dict[DataShape, nn.Module] = {}
        self.logits: dict[DataShape, object] = {}

    def checks(self) -> Checks:
        return [
            ("shapes", self.shapes),
            ("logits", self.logits_shape),
            ("seeded-init", self.seeded_init),
            ("trains", self.trains),
            ("functional-call", self.functional_call),
        ]

    def _build(self, shape: DataShape) -> nn.Module:
        return seeded_build(lambda: self.spec.build(shape), 0, CPU)

    def _first(self) -> DataShape:
        if not self.built:
            raise NotChecked("it builds for no shape")
        return next(iter(self.built))

    def shapes(self) -> tuple[bool, str]:
        refused: dict[DataShape, str] = {}
        g = torch.Generator().manual_seed(0)
        for channels, size in MODEL_SHAPES:
            shape = DataShape(channels, size, size, MODEL_CLASSES)
            x = torch.randn(MODEL_BATCH, channels, size, size, generator=g)
            try:
                model = self._build(shape)
            except DDBenchError as exc:
                refused[shape] = one_line(exc)
                continue
            except Exception as exc:
                return False, f"build for {_shape_name(shape)} raises {one_line(exc)} (refuse with a ConfigError)"
            try:
                self.logits[shape] = model.train()(x)
            except Exception as exc:
                return False, f"built for {_shape_name(shape)}, but its forward pass raises {one_line(exc)}"
            self.built[shape] = model
        if not self.built:
            return False, f"refuses every shape; {next(iter(refused.values()))}"
        reason = f"builds {', '.join(map(_shape_name, self.built))}"
        if refused:
            reason += f"; refuses {', '.join(map(_shape_name, refused))}: {next(iter(refused.values()))}"
        return True, reason

    def logits_shape(self) -> tuple[bool, str]:
        self._first()
        for shape, out in self.logits.items():
            if not isinstance(out, torch.Tensor):
                return False, f"{_shape_name(shape)}: forward returns {type(out).__name__}, not a logits tensor"
            if tuple(out.shape) != (MODEL_BATCH, MODEL_CLASSES):
                return (
                    False,
                    f"{_shape_name(shape)}: logits have shape {list(out.shape)}, expected [{MODEL_BATCH}, {MODEL_CLASSES}]",
                )
            if not out.is_floating_point() or not torch.isfinite(out).all():
                return False, f"{_shape_name(shape)}: logits are not finite floats"
            size, spread = out.abs().max().item(), (out - out[0]).abs().max().item()
            if size > 0 and spread <= INPUT_DEPENDENCE * size:
                return (
                    False,
                    f"{_shape_name(shape)}: the logits of {MODEL_BATCH} random images differ by {spread:.1e} at most: they ignore the input",
                )
        return (
            True,
            f"finite [N, K] = [{MODEL_BATCH}, {MODEL_CLASSES}] logits that depend on the input, for every shape it builds",
        )

    def seeded_init(self) -> tuple[bool, str]:
        shape = self._first()
        seed_globals(GLOBAL_SEEDS[0])
        a = self._build(shape).state_dict()
        seed_globals(GLOBAL_SEEDS[1])
        b = self._build(shape).state_dict()
        for key, value in a.items():
            if key not in b or not torch.equal(value, b[key]):
                return False, f"seed 0 twice gives different initial {key!r} (draw from torch's seeded generator only)"
        return True, f"seed 0 twice gives the same {len(a)} initial tensors"

    def trains(self) -> tuple[bool, str]:
        toy = self.registry.dataset("toy").load(DataRequest())
        pick = torch.randperm(len(toy.train_y), generator=torch.Generator().manual_seed(0))[:TRAIN_IMAGES]
        x, y, shape, where = toy.train_x[pick], toy.train_y[pick], toy.shape, "toy"
        try:
            model = self._build(shape)
        except DDBenchError:  # too small for it: toy resized to the first shape it builds for
            first = self._first()
            shape = DataShape(first.channels, first.height, first.width, toy.num_classes)
            x = F.interpolate(x, size=(first.height, first.width), mode="bilinear", align_corners=False)
            x = x.repeat(1, first.channels, 1, 1)
            model, where = self._build(shape), f"toy resized to {_shape_name(shape)}"
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses = []
        for _ in range(TRAIN_STEPS):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        ok = losses[-1] <= TRAIN_FALL * losses[0]
        return (
            ok,
            f"{where}, {TRAIN_IMAGES} images: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {TRAIN_STEPS} Adam steps",
        )

    def functional_call(self) -> tuple[bool, str]:
        if not self.spec.functional:
            return True, "declared functional=False: not tried (trajectory matching cannot use it)"
        shape = self._first()
        model = self.built[shape].eval()
        x = torch.randn(
            MODEL_BATCH, shape.channels, shape.height, shape.width, generator=torch.Generator().manual_seed(1)
        )
        y = torch.arange(MODEL_BATCH) % MODEL_CLASSES
        model.zero_grad(set_to_none=True)
        direct = model(x)
        F.cross_entropy(direct, y).backward()
        flat_model = FlatModel(model)
        flat = flat_model.flatten().requires_grad_(True)
        out = flat_model(flat, x)
        if not torch.allclose(out, direct, rtol=1e-4, atol=1e-5):
            return False, "under functional_call the logits differ from the module's own"
        (grad,) = torch.autograd.grad(F.cross_entropy(out, y), flat, allow_unused=True)
        grads = dict(
            zip(flat_model.names, (grad if grad is not None else torch.zeros_like(flat)).split(flat_model.sizes))
        )
        for name, p in model.named_parameters():
            if p.grad is not None and p.grad.any() and not grads[name].any():
                return False, f"no gradient reaches {name!r} through functional_call (declare functional=False?)"
        return True, f"{_shape_name(shape)}: the same logits, and gradients reach every parameter"


def model_checks(spec: ModelSpec, registry: Registry) -> list[CheckResult]:
    """Check a model family: shapes it builds, logits, seeded init, training on ``toy``, functional_call."""
    with global_rng_restored():
        return run_checks("model", spec.name, _ModelChecks(spec, registry).checks())


# ---------------------------------------------------------------------------- datasets
