"""Differentiable siamese augmentation (DSA; Zhao & Bilen, ICML 2021).

One object, :class:`DSA`, holds a validated strategy and its :class:`DSAParams`; calling
it augments a batch ``[B,C,H,W]`` differentiably with respect to the images::

    aug = DSA("color_crop_cutout_flip_scale_rotate")       # the literature's default
    g = torch.Generator().manual_seed(seed)
    y = aug(x, g)                                            # per-sample parameters
    y = aug(x, g, shared=True)                               # one parameter set for the batch

:func:`dsa` is the same thing as a one-line function.

Semantics, checked against the reference implementations (DC/DSA ``utils.py`` and MTT's
``utils.py``, which FTD and DATM reuse):

* Ops: ``color`` (= ``brightness`` then ``saturation`` then ``contrast``), ``crop``,
  ``cutout``, ``flip``, ``scale``, ``rotate``. ``brightness``, ``saturation`` and
  ``contrast`` may also be named on their own (an extension; the references only know
  ``color``). ``"none"`` or ``""`` is the identity.
* ``DSAParams.mode="single"`` is the references' default (``ParamDiffAug.aug_mode='S'``):
  each call draws ONE op of the strategy uniformly at random and applies only that op
  (``color`` applies its three colour transforms) to the whole batch; the op's random
  parameters are then drawn per sample (or once, with ``shared=True``). So the default
  strategy does *not* apply all six ops at once. ``mode="all"`` is the references'
  ``aug_mode='M'`` (the original DiffAugment): every op, in the order of the strategy.
  In that mode consecutive ``scale``/``rotate`` ops are fused into one affine resampling
  (matrix product of the two, in strategy order), saving an interpolation pass; the
  result equals the two-pass reference up to interpolation and border effects.
* Parameter meanings are the references': brightness adds ``(u - 0.5) * brightness``;
  saturation scales the deviation from the per-pixel channel mean by ``u * saturation``;
  contrast scales the deviation from the per-image mean by ``u + contrast``
  (``u ~ U[0,1)``); crop shifts by an integer number of pixels in ``[-s, s]`` with
  ``s = int(crop*H + 0.5)`` (rows; likewise for columns), filling with zeros; cutout
  zeroes an ``int(cutout*H + 0.5) x int(cutout*W + 0.5)`` box whose centre is uniform
  over the image (clipped at the border); flip mirrors the width axis with probability
  ``flip_prob``; scale stretches each axis by an independent factor in
  ``[1/scale, scale]`` (sampling-grid factor, > 1 zooms out); rotate turns by an angle
  uniform in ``[-rotate, rotate]`` degrees. Scale and rotate resample bilinearly with zero
  padding and ``align_corners=True``, as MTT/FTD/DATM do (DC's copy uses torch's default,
  ``False``; the difference is sub-pixel). On one-channel images saturation is a no-op
  (the channel mean is the pixel itself), as in the references.
* Siamese use: every random draw comes from the CPU ``torch.Generator`` passed in, in a
  fixed order, so two calls whose generators are in the same state apply the same
  transform. With ``shared=True`` nothing drawn depends on the batch size, so two batches
  of different sizes (real and synthetic, as in DSA gradient matching) get the same
  transform (the references' "batchmode", there seeded from the wall clock). The draws
  are made on the CPU and moved to the images' device in one transfer, so results do
  not depend on the device.

Draw order of one call (part of the reproducibility contract): in ``single`` mode first
one integer choosing the op (drawn even when the strategy has one op); then, per op in strategy order, ``n`` values (``n = 1`` if
``shared`` else ``B``) for each of: brightness ``u``; saturation ``u``; contrast ``u``;
crop row shift, then column shift; cutout row centre, then column centre; flip ``u``;
scale factor of the width axis, then of the height axis; rotate angle.

Gradients: every op is differentiable w.r.t. ``x`` (the random parameters are constants).
On CUDA, ``grid_sample``'s backward (scale/rotate) uses atomic adds, so it is not
bit-reproducible and warns under ``--deterministic`` (which sets ``warn_only``). The other
ops are deterministic (the per-sample crop's gathers read each image pixel at most once,
so their backward has no competing additions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from .errors import ConfigError

DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
"""The DSA/MTT/FTD/DATM default strategy."""

COLOR_OPS = ("brightness", "saturation", "contrast")
ALLOWED_OPS = ("color", *COLOR_OPS, "crop", "cutout", "flip", "scale", "rotate")
MODES = ("single", "all")


def _number(name: str, value: object, low: float, high: float, *, open_high: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and low <= value and (value < high if open_high else value <= high)
    if not ok:
        upper = "" if high == math.inf else (f" < {high:g}" if open_high else f" <= {high:g}")
        raise ConfigError(f"DSAParams.{name}={value!r} is not allowed: use a number {low:g} <= {name}{upper}")


@dataclass(frozen=True)
class DSAParams:
    """Strengths of the DSA ops; the defaults are the references' ``ParamDiffAug``."""

    crop: float = 0.125
    """Maximum shift as a fraction of the image size (0.125 -> 4 px on 32 px)."""
    scale: float = 1.2
    """Each axis is scaled by a factor in ``[1/scale, scale]`` (1 = no scaling)."""
    rotate: float = 15.0
    """Maximum rotation in degrees."""
    cutout: float = 0.5
    """Side of the cut-out box as a fraction of the image side."""
    brightness: float = 1.0
    """Additive brightness shift ``(u - 0.5) * brightness``."""
    saturation: float = 2.0
    """Saturation factor ``u * saturation`` (0 = grey)."""
    contrast: float = 0.5
    """Contrast factor ``u + contrast``."""
    flip_prob: float = 0.5
    """Probability of a horizontal flip."""
    mode: Literal["single", "all"] = "single"
    """``single``: one op of the strategy per call (reference default); ``all``: every op."""

    def __post_init__(self) -> None:
        _number("crop", self.crop, 0.0, 1.0, open_high=True)
        _number("scale", self.scale, 1.0, math.inf)
        _number("rotate", self.rotate, 0.0, 180.0)
        _number("cutout", self.cutout, 0.0, 1.0)
        for name in ("brightness", "saturation", "contrast"):
            _number(name, getattr(self, name), 0.0, math.inf)
        _number("flip_prob", self.flip_prob, 0.0, 1.0)
        if self.mode not in MODES:
            raise ConfigError(f"DSAParams.mode={self.mode!r} is not allowed (allowed: {', '.join(MODES)})")


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """``"color_crop_flip"`` -> ``("color", "crop", "flip")``; ``"none"``/``""`` -> ``()``."""
    if not isinstance(strategy, str):
        raise ConfigError(f"DSA strategy={strategy!r} is not allowed: use a string such as {DEFAULT_STRATEGY!r}")
    text = strategy.strip()
    if text == "" or text.lower() == "none":
        return ()
    ops = tuple(text.split("_"))
    for op in ops:
        if op not in ALLOWED_OPS:
            raise ConfigError(
                f"DSA strategy={strategy!r}: unknown op {op!r} "
                f"(allowed: {', '.join(ALLOWED_OPS)}, joined with '_'; or 'none')"
            )
    dupes = sorted({op for op in ops if ops.count(op) > 1})
    if dupes:
        raise ConfigError(f"DSA strategy={strategy!r}: op {', '.join(map(repr, dupes))} named more than once")
    return ops


@dataclass(frozen=True)
class DSA:
    """A DSA strategy with its parameters; ``aug(x, generator, shared=False)`` augments.

    See the module docstring for the semantics. ``ops`` is the parsed strategy.
    """

    strategy: str = DEFAULT_STRATEGY
    params: DSAParams = DSAParams()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ops", parse_strategy(self.strategy))
        if not isinstance(self.params, DSAParams):
            raise ConfigError(f"DSA params={self.params!r} is not allowed: use a DSAParams")

    @property
    def ops(self) -> tuple[str, ...]:
        return self._ops  # type: ignore[attr-defined]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, shared: bool = False) -> torch.Tensor:
        """Augment ``x`` ``[B,C,H,W]``; draws come from ``generator`` (a CPU generator).

        ``generator=None`` uses torch's global CPU generator (seeded by
        ``torch.manual_seed``); library code should always pass its own.
        ``shared=True`` draws one parameter set and applies it to every sample.
        """
        ops = self.ops
        if not ops:
            return x
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            got = f"{x.dtype} {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ConfigError(f"DSA input must be a float tensor [B,C,H,W], got {got}")
        gen = torch.default_generator if generator is None else generator
        if not isinstance(gen, torch.Generator) or gen.device.type != "cpu":
            raise ConfigError(f"DSA generator={generator!r} is not allowed: use a CPU torch.Generator")
        if x.shape[0] == 0:
            return x
        if self.params.mode == "single":
            ops = (ops[int(torch.randint(len(ops), (1,), generator=gen))],)
        steps = _draw(ops, self.params, x.shape, 1 if shared else x.shape[0], gen)
        return _apply(x, steps, self.params, shared)


def dsa(
    x: torch.Tensor,
    strategy: str = DEFAULT_STRATEGY,
    params: DSAParams = DSAParams(),
    generator: torch.Generator | None = None,
    shared: bool = False,
) -> torch.Tensor:
    """Functional form of :class:`DSA`: ``DSA(strategy, params)(x, generator, shared)``."""
    return DSA(strategy, params)(x, generator, shared)


# --- sampling ------------------------------------------------------------------------


def _uniform(n: int, gen: torch.Generator, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def _draw(
    ops: tuple[str, ...], p: DSAParams, shape: torch.Size, n: int, gen: torch.Generator
) -> list[tuple[str, torch.Tensor]]:
    """All random parameters of one call, on the CPU, as ``(kind, tensor)`` steps.

    Consecutive scale/rotate ops become one ``affine`` step holding the product of their
    ``[n,2,2]`` matrices (in strategy order).
    """
    _, _, h, w = shape
    prims = [q for op in ops for q in (COLOR_OPS if op == "color" else (op,))]
    steps: list[tuple[str, torch.Tensor]] = []
    for op in prims:
        if op in COLOR_OPS or op == "flip":
            steps.append((op, _uniform(n, gen)))
        elif op == "crop":
            sh, sw = int(h * p.crop + 0.5), int(w * p.crop + 0.5)
            rows = torch.randint(-sh, sh + 1, (n,), generator=gen)
            cols = torch.randint(-sw, sw + 1, (n,), generator=gen)
            steps.append((op, torch.stack([rows, cols]).float()))
        elif op == "cutout":
            ch, cw = int(h * p.cutout + 0.5), int(w * p.cutout + 0.5)
            rows = torch.randint(0, h + 1 - ch % 2, (n,), generator=gen)
            cols = torch.randint(0, w + 1 - cw % 2, (n,), generator=gen)
            steps.append((op, torch.stack([rows, cols]).float()))
        else:  # scale / rotate: a 2x2 matrix acting on the normalised sampling grid
            if op == "scale":
                sx = _uniform(n, gen, 1.0 / p.scale, p.scale)
                sy = _uniform(n, gen, 1.0 / p.scale, p.scale)
                zero = torch.zeros(n)
                lin = torch.stack([torch.stack([sx, zero], -1), torch.stack([zero, sy], -1)], -2)
            else:
                angle = torch.deg2rad(_uniform(n, gen, -p.rotate, p.rotate))
                c, s = torch.cos(angle), torch.sin(angle)
                lin = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
            if steps and steps[-1][0] == "affine":  # sample(sample(x, A), B) == sample(x, A @ B)
                steps[-1] = ("affine", steps[-1][1] @ lin)
            else:
                steps.append(("affine", lin))
    return steps


# --- applying ------------------------------------------------------------------------


def _apply(x: torch.Tensor, steps: list[tuple[str, torch.Tensor]], p: DSAParams, shared: bool) -> torch.Tensor:
    wire = torch.float64 if x.dtype == torch.float64 else torch.float32
    flat = torch.cat([t.reshape(-1) for _, t in steps]).to(wire)
    if x.device.type == "cuda":  # one pinned, asynchronous transfer: no host-device sync per call
        flat = flat.pin_memory()
    flat = flat.to(x.device, non_blocking=True)
    on_device = flat.split([t.numel() for _, t in steps])
    for (kind, cpu), dev in zip(steps, on_device):
        dev = dev.view(cpu.shape)
        if kind == "brightness":
            x = x + (_col(dev, x) - 0.5) * p.brightness
        elif kind == "saturation":
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (_col(dev, x) * p.saturation) + mean
        elif kind == "contrast":
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (_col(dev, x) + p.contrast) + mean
        elif kind == "flip":
            if shared:
                x = x.flip(3) if float(cpu[0]) < p.flip_prob else x
            else:
                x = torch.where(_col(dev, x) < p.flip_prob, x.flip(3), x)
        elif kind == "crop":
            x = _translate(x, cpu, dev, shared)
        elif kind == "cutout":
            x = _cutout(x, dev, p.cutout)
        else:
            x = _resample(x, dev)
    return x.contiguous()


def _col(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).view(-1, 1, 1, 1)


def _translate(x: torch.Tensor, cpu: torch.Tensor, dev: torch.Tensor, shared: bool) -> torch.Tensor:
    """``out[..., i, j] = x[..., i + dr, j + dc]``, zero where that falls outside the image."""
    b, c, h, w = x.shape
    if shared:
        dr, dc = int(cpu[0, 0]), int(cpu[1, 0])
        pr, pc = abs(dr), abs(dc)
        padded = F.pad(x, [pc, pc, pr, pr])
        return padded[:, :, pr + dr : pr + dr + h, pc + dc : pc + dc + w]
    shift = dev.long()
    padded = F.pad(x, [1, 1, 1, 1])  # indices clamped into the zero border read zeros
    rows = (torch.arange(h, device=x.device) + shift[0, :, None] + 1).clamp_(0, h + 1)
    cols = (torch.arange(w, device=x.device) + shift[1, :, None] + 1).clamp_(0, w + 1)
    out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2))
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def _cutout(x: torch.Tensor, centre: torch.Tensor, ratio: float) -> torch.Tensor:
    _, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = centre[0, :, None] - ch // 2
    left = centre[1, :, None] - cw // 2
    r = torch.arange(h, device=x.device, dtype=centre.dtype)
    c = torch.arange(w, device=x.device, dtype=centre.dtype)
    in_rows = (r >= top) & (r < top + ch)  # [n,H]
    in_cols = (c >= left) & (c < left + cw)  # [n,W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


def _resample(x: torch.Tensor, lin: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    n = lin.shape[0]
    theta = torch.cat([lin, lin.new_zeros(n, 2, 1)], dim=2).to(x.dtype)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=True)
    if n != b:
        grid = grid.expand(b, -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


__all__ = [
    "ALLOWED_OPS",
    "COLOR_OPS",
    "DEFAULT_STRATEGY",
    "DSA",
    "DSAParams",
    "crop_flip",
    "dsa",
    "parse_strategy",
    "random_resized_crop",
]


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    *,
    shared: bool = False,
    flip: bool = False,
) -> torch.Tensor:
    """A random crop of each image (area a fraction in ``scale`` of the image, aspect ratio
    log-uniform in ``ratio``), resized back to the image's size, as torchvision's
    ``RandomResizedCrop``; with ``flip`` each crop is mirrored with probability 1/2.

    Differentiable in ``x`` (one ``grid_sample``), so SRe2L recovers images through it, and
    vectorised, so RDED scores thousands of crops at once. ``shared``: one crop for the whole
    batch. Draws come from the CPU ``generator`` only; a box that does not fit in 10 tries
    falls back to the whole image.
    """
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale={scale} is not allowed: use 0 < low <= high <= 1")
    n = 1 if shared else x.shape[0]
    tries = 10
    area = scale[0] + (scale[1] - scale[0]) * torch.rand(n, tries, generator=generator)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(n, tries, generator=generator)
    aspect = log_r.exp()
    w, h = (area * aspect).sqrt(), (area / aspect).sqrt()  # fractions of the image's width and height
    fits = (w <= 1) & (h <= 1)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp_min(0).unsqueeze(1)
    w = torch.where(first >= 0, w.gather(1, pick).squeeze(1), torch.ones(n))
    h = torch.where(first >= 0, h.gather(1, pick).squeeze(1), torch.ones(n))
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - h)
    sign = torch.ones(n)
    if flip:
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * sign, cx, h, cy
    theta = theta.to(x.device, x.dtype)
    if shared:
        theta = theta.expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def crop_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The decoupled papers' training augmentation (SRe2L, RDED: torchvision's
    ``RandomResizedCrop(scale=(0.08, 1))`` then ``RandomHorizontalFlip``), per image, batched."""
    return random_resized_crop(x, generator, flip=True)
