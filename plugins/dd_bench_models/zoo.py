"""Namespaced model names: ``timm:<name>`` and ``tv:<name>`` (torchvision), never pretrained.

Both are built for the dataset's channels, classes and image size:

* ``timm`` gets ``in_chans`` and ``num_classes`` directly, and ``img_size`` when the
  architecture takes one (ViTs, Swin, ...).
* torchvision gets ``num_classes``; for ``C != 3`` channels its first ``Conv2d`` is replaced
  by one with ``C`` inputs whose weights are derived from the original (summed over RGB
  for ``C == 1``, tiled and scaled by ``3 / C`` otherwise, timm's rule for adapting
  stems). That draws no extra random numbers, so a seed gives the same network whatever
  ``C`` is. ``googlenet``/``inception_v3`` are built without auxiliary heads so that
  training-mode ``forward`` returns plain logits.

Many ImageNet models downsample too much for 16x16 or 32x32 images (torchvision's AlexNet
needs 63x63, ViT-B/16 exactly 224x224). A cheap dry run (eval mode, no grad, batch of one,
so no running statistics move and no random numbers are drawn) finds the smallest size on
a fixed ladder that works, and the model is wrapped so it bilinearly upsamples its input to
that size. The wrapper is used only when the native size fails.

torchvision and timm are imported on first use, so listing plugins stays fast.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dd_bench.errors import ConfigError, UnknownNameError
from dd_bench.specs import DataShape, ModelSpec

NAMESPACES = ("timm", "tv")
SIZE_LADDER = (32, 64, 96, 128, 160, 192, 224, 256, 299, 320, 384, 448, 512)
"""Square input sizes tried, smallest first, when a model cannot take the native size."""
_TV_NO_AUX = {"googlenet", "inception_v3"}


class Upsampled(nn.Module):
    """Resize the input to ``size`` (bilinear) before a model that needs larger images."""

    def __init__(self, model: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.size = tuple(size)
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return self.model(x)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _dry_run(model: nn.Module, channels: int, size: tuple[int, int]) -> Exception | None:
    """The error a forward pass at ``size`` raises, if any: eval mode, no grad, one zero image."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, *size))
        return None
    except (RuntimeError, ValueError, AssertionError, IndexError) as exc:
        return exc
    finally:
        model.train(was_training)


def _fit(
    name: str,
    shape: DataShape,
    model: nn.Module,
    remake: Callable[[tuple[int, int]], nn.Module] | None = None,
    rng: Tensor | None = None,
) -> nn.Module:
    """``model`` if it runs at the native size, else it (or ``remake(size)``) upsampled to the first size that runs.

    Models built for a given ``img_size`` are remade at each candidate size from the RNG
    state ``rng`` the first build started from, so the result equals a fresh seeded build.
    """
    native = shape.image_size
    error = _dry_run(model, shape.channels, native)
    if error is None:
        return model
    for side in SIZE_LADDER:
        if side <= max(native):
            continue
        size = (side, side)
        if remake is not None:
            torch.set_rng_state(rng)
            model = remake(size)
        if _dry_run(model, shape.channels, size) is None:
            return Upsampled(model, size)
    raise ConfigError(
        f"model {name!r} does not run on {shape.channels}x{native[0]}x{native[1]} images ({error}),"
        f" nor upsampled to any of {', '.join(map(str, SIZE_LADDER))} pixels square"
    )


def _unknown(name: str, namespace: str, known: list[str]) -> UnknownNameError:
    """An UnknownNameError listing the close names, or all of them when none is close.

    timm has well over a thousand architectures, so listing only the close ones keeps the
    message readable; the did-you-mean hint comes from the same list.
    """
    arch = name.partition(":")[2]
    close = difflib.get_close_matches(arch, known, n=10, cutoff=0.6) or known
    return UnknownNameError("model", name, [f"{namespace}:{k}" for k in close])


# ----------------------------------------------------------------------------- timm


def build_timm(arch: str, name: str, shape: DataShape, **options: Any) -> nn.Module:
    import timm

    base = dict(pretrained=False, num_classes=shape.num_classes, in_chans=shape.channels, **options)
    rng = torch.get_rng_state()
    sized = "img_size" not in options
    try:
        model = timm.create_model(arch, **base, **({"img_size": shape.image_size} if sized else {}))
    except TypeError as exc:
        if not sized or "img_size" not in str(exc):
            raise ConfigError(f"model {name!r}: {exc}") from exc
        sized = False  # this architecture takes no img_size: build it plainly
        torch.set_rng_state(rng)
        model = timm.create_model(arch, **base)
    remake = (lambda size: timm.create_model(arch, img_size=size, **base)) if sized else None
    return _fit(name, shape, model, remake, rng)


# ----------------------------------------------------------------------------- torchvision


def _adapt_first_conv(model: nn.Module, channels: int) -> None:
    """Give the first Conv2d ``channels`` inputs, deriving its weights from the RGB ones."""
    path, conv = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), ("", None))
    if conv is None:
        raise ConfigError(f"{type(model).__name__} has no Conv2d to adapt to {channels} input channels")
    parent_path, _, attr = path.rpartition(".")
    new = nn.Conv2d(
        channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device="meta",  # allocated below, so building it draws no random numbers
    ).to_empty(device=conv.weight.device)
    with torch.no_grad():
        w = conv.weight
        if channels == 1:
            new.weight.copy_(w.sum(dim=1, keepdim=True))
        else:
            reps = -(-channels // w.shape[1])
            new.weight.copy_(w.repeat(1, reps, 1, 1)[:, :channels] * (w.shape[1] / channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    setattr(model.get_submodule(parent_path), attr, new)


def build_tv(arch: str, name: str, shape: DataShape, **options: Any) -> nn.Module:
    import torchvision

    if arch in _TV_NO_AUX:
        options.setdefault("aux_logits", False)
        options.setdefault("init_weights", True)
    try:
        model = torchvision.models.get_model(arch, weights=None, num_classes=shape.num_classes, **options)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from exc
    if shape.channels != 3:
        _adapt_first_conv(model, shape.channels)
    return _fit(name, shape, model)


# ----------------------------------------------------------------------------- resolver


def resolve(name: str) -> ModelSpec | None:
    """A ModelSpec for ``timm:<arch>`` or ``tv:<arch>``; ``None`` for any other name."""
    namespace, sep, arch = name.partition(":")
    if not sep or namespace not in NAMESPACES:
        return None
    if namespace == "timm":
        import timm

        if not arch or not timm.is_model(arch):
            raise _unknown(name, namespace, timm.list_models())
        return ModelSpec(
            name,
            lambda shape, **options: build_timm(arch, name, shape, **options),
            f"timm {arch}, randomly initialised, for the dataset's channels/classes/size",
        )
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if arch not in known:
        raise _unknown(name, namespace, known)
    return ModelSpec(
        name,
        lambda shape, **options: build_tv(arch, name, shape, **options),
        f"torchvision {arch}, randomly initialised; first conv adapted to C channels, upsampled if too small",
    )
