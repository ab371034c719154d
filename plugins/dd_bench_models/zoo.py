"""Namespaced model names: ``timm:<name>`` and ``tv:<name>`` (torchvision), optionally pretrained.

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

Pretrained weights are named after ``@``, and come from local files only unless downloads are
allowed (``--download``, a suite's ``data.download``: ``$DD_BENCH_DOWNLOAD=1``):

* ``tv:resnet18@IMAGENET1K_V1``: a torchvision weights enum, read from torch's hub cache
  (``$TORCH_HOME/hub/checkpoints/<file>``, where torchvision itself keeps them);
* ``timm:resnet18@a1_in1k`` (or ``@default``): a timm pretrained tag, from the Hugging Face cache;
* ``tv:resnet18@path/to/weights.pth`` (any name with ``/`` or a ``.pt``/``.pth``/``.safetensors``
  suffix): a state dict saved from the same architecture (torchvision's own, or what dd-bench built).

Enum and tag weights keep their head, so the dataset must have as many classes (1000 for the
ImageNet weights); a first conv for other channel counts is derived from the pretrained one.
Missing weights, a name the library does not know, or a file of another architecture: one line.

torchvision and timm are imported on first use, so listing plugins stays fast.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dd_bench.plugin import ConfigError, DataError, DataShape, ModelSpec, UnknownNameError, downloads_allowed

NAMESPACES = ("timm", "tv")
SIZE_LADDER = (32, 64, 96, 128, 160, 192, 224, 256, 299, 320, 384, 448, 512)
"""Square input sizes tried, smallest first, when a model cannot take the native size."""
_TV_NO_AUX = {"googlenet", "inception_v3"}
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def is_weights_file(weights: str) -> bool:
    return "/" in weights or weights.endswith(WEIGHT_SUFFIXES)


def read_state_dict(name: str, path: Path) -> dict[str, Tensor]:
    """A state dict from ``path`` (``torch.save`` of a state dict, or of a dict holding one under
    ``state_dict``/``model``; or safetensors), read without unpickling code."""
    if not path.is_file():
        raise DataError(f"model {name!r}: weights file {path} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch and safetensors raise many kinds for a bad file
        raise DataError(f"model {name!r}: cannot read weights file {path} ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataError(f"model {name!r}: {path} holds no state dict of tensors")
    return state


def load_state(name: str, model: nn.Module, state: dict[str, Tensor], where: str) -> None:
    """Load ``state`` into ``model`` (or the model inside an ``Upsampled``), all keys and shapes matching."""
    targets = [model] + ([model.model] if isinstance(model, Upsampled) else [])
    for target in targets:
        mine = target.state_dict()
        if mine.keys() == state.keys() and all(mine[k].shape == state[k].shape for k in mine):
            target.load_state_dict(state)
            return
    mine = targets[-1].state_dict()
    missing, extra = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    shapes = sorted(k for k in set(mine) & set(state) if mine[k].shape != state[k].shape)
    detail = (
        (f"{len(missing)} missing (e.g. {missing[0]})" if missing else "")
        or (f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "")
        or f"{shapes[0]} is {list(state[shapes[0]].shape)}, the model's {list(mine[shapes[0]].shape)}"
    )
    raise ConfigError(
        f"model {name!r}: {where} does not fit this architecture and dataset ({detail});"
        " weights must come from the same architecture with as many classes and channels"
    )


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


def build_timm(arch: str, name: str, shape: DataShape, weights: str | None = None, **options: Any) -> nn.Module:
    import timm

    if weights is not None and is_weights_file(weights):
        model = build_timm(arch, name, shape, **options)
        load_state(name, model, read_state_dict(name, Path(weights).expanduser()), f"weights file {weights}")
        return model
    if weights is not None:
        return _timm_pretrained(arch, name, shape, weights, **options)
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


def _timm_cached_file(full: str) -> str | None:
    """The local Hugging Face cache's copy of timm's pretrained ``full`` (``arch.tag``), if any."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(full)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return found
    return None


def _timm_pretrained(arch: str, name: str, shape: DataShape, tag: str, **options: Any) -> nn.Module:
    """timm's pretrained ``arch.tag`` from the local Hugging Face cache (the hub is asked only when
    downloads are allowed); its head must fit the dataset's classes."""
    import timm

    full = arch if tag == "default" else f"{arch}.{tag}"
    try:
        cached = _timm_cached_file(full)
    except RuntimeError as exc:  # timm: an unknown pretrained tag
        raise ConfigError(f"model {name!r}: timm has no pretrained weights {full!r} ({exc})") from None
    if cached is None and not downloads_allowed():
        raise DataError(
            f"model {name!r}: timm's pretrained weights {full} are not in the local Hugging Face cache;"
            f" pass --download to fetch them, or give a checkpoint: timm:{arch}@path/to/weights.pth"
        )
    overlay = {"pretrained_cfg_overlay": {"file": cached}} if cached else {}
    model = timm.create_model(full, pretrained=True, in_chans=shape.channels, **overlay, **options)
    if model.num_classes != shape.num_classes:
        raise ConfigError(
            f"model {name!r}: timm's {full} classifies {model.num_classes} classes but the dataset has"
            f" {shape.num_classes}; use a dataset of as many classes, or a checkpoint trained for this one"
        )
    return _fit(name, shape, model)


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


def tv_weights_state(arch: str, name: str, weights: str, num_classes: int) -> dict[str, Tensor]:
    """The state dict of torchvision's ``weights`` enum for ``arch``, from torch's hub cache
    (downloaded there only when downloads are allowed)."""
    import torchvision

    members = torchvision.models.get_model_weights(arch).__members__
    if weights not in members:
        raise ConfigError(
            f"model {name!r}: torchvision has no weights {weights!r} for {arch} (allowed: {', '.join(members)})"
        )
    enum = members[weights]
    classes = len(enum.meta.get("categories") or [])
    if classes and classes != num_classes:
        raise ConfigError(
            f"model {name!r}: weights {weights} classify {classes} classes but the dataset has"
            f" {num_classes}; use a dataset of {classes} classes, or a checkpoint trained for this one"
        )
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    if not file.is_file() and not downloads_allowed():
        raise DataError(
            f"model {name!r}: weights file {file} not found; put {Path(enum.url).name} there"
            f" (from {enum.url}), or pass --download to fetch it"
        )
    if not file.is_file():  # downloads allowed: torchvision's own fetch, into the same file
        return torch.hub.load_state_dict_from_url(enum.url, progress=False, check_hash=True)
    return read_state_dict(name, file)


def build_tv(arch: str, name: str, shape: DataShape, weights: str | None = None, **options: Any) -> nn.Module:
    import torchvision

    if arch in _TV_NO_AUX:
        options.setdefault("aux_logits", False)
        options.setdefault("init_weights", True)
    try:
        model = torchvision.models.get_model(arch, weights=None, num_classes=shape.num_classes, **options)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from exc
    if weights is not None and not is_weights_file(weights):
        load_state(name, model, tv_weights_state(arch, name, weights, shape.num_classes), f"torchvision's {weights}")
    if shape.channels != 3:
        _adapt_first_conv(model, shape.channels)
    model = _fit(name, shape, model)
    if weights is not None and is_weights_file(weights):
        load_state(name, model, read_state_dict(name, Path(weights).expanduser()), f"weights file {weights}")
    return model


# ----------------------------------------------------------------------------- resolver


def resolve(name: str) -> ModelSpec | None:
    """A ModelSpec for ``timm:<arch>`` or ``tv:<arch>``; ``None`` for any other name."""
    namespace, sep, arch = name.partition(":")
    if not sep or namespace not in NAMESPACES:
        return None
    arch, at, weights = arch.partition("@")
    if at and not weights:
        raise ConfigError(f"model {name!r}: name the weights after '@' (a torchvision enum, a timm tag or a file path)")
    pretrained, extra = (f", weights {weights}", {"weights": weights}) if at else (", randomly initialised", {})
    if namespace == "timm":
        import timm

        if not arch or not timm.is_model(arch):
            raise _unknown(name, namespace, timm.list_models())
        return ModelSpec(
            name,
            lambda shape, **options: build_timm(arch, name, shape, **options, **extra),
            f"timm {arch}{pretrained}, for the dataset's channels/classes/size",
        )
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if arch not in known:
        raise _unknown(name, namespace, known)
    return ModelSpec(
        name,
        lambda shape, **options: build_tv(arch, name, shape, **options, **extra),
        f"torchvision {arch}{pretrained}; first conv adapted to C channels, upsampled if too small",
    )
