from __future__ import annotations

import dataclasses

import pytest
import torch

from dd_bench.augment import ALLOWED_OPS, DEFAULT_STRATEGY, DSA, DSAParams, dsa, parse_strategy
from dd_bench.errors import ConfigError

ALL = DSAParams(mode="all")
SURE_FLIP = DSAParams(mode="all", flip_prob=1.0)
SINGLE_OPS = ["brightness", "saturation", "contrast", "color", "crop", "cutout", "flip", "scale", "rotate"]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b: int = 6, c: int = 3, h: int = 16, w: int = 16, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=gen(seed), dtype=dtype)


# --- parameters and strategy -----------------------------------------------------------


def test_defaults_are_the_references():
    p = DSAParams()
    assert (p.crop, p.scale, p.rotate, p.cutout) == (0.125, 1.2, 15.0, 0.5)
    assert (p.brightness, p.saturation, p.contrast, p.flip_prob, p.mode) == (1.0, 2.0, 0.5, 0.5, "single")
    assert DSA().strategy == DEFAULT_STRATEGY == "color_crop_cutout_flip_scale_rotate"
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.crop = 0.2  # type: ignore[misc]


@pytest.mark.parametrize(
    "field, value",
    [
        ("crop", 1.0),
        ("crop", -0.1),
        ("scale", 0.9),
        ("rotate", 200.0),
        ("cutout", 1.5),
        ("brightness", -1.0),
        ("saturation", float("nan")),
        ("contrast", "0.5"),
        ("flip_prob", 1.1),
        ("flip_prob", True),
        ("mode", "M"),
    ],
)
def test_params_are_validated(field, value):
    with pytest.raises(ConfigError, match=field) as info:
        DSAParams(**{field: value})
    assert repr(value) in str(info.value)


def test_strategy_parsing_and_errors():
    assert parse_strategy("color_crop") == ("color", "crop")
    assert parse_strategy(" none ") == parse_strategy("None") == parse_strategy("") == ()
    with pytest.raises(ConfigError) as info:
        DSA("color_blur_flip")
    msg = str(info.value)
    assert "'blur'" in msg and all(op in msg for op in ALLOWED_OPS)
    with pytest.raises(ConfigError, match="more than once"):
        DSA("flip_crop_flip")
    with pytest.raises(ConfigError, match="DSAParams"):
        DSA("flip", params={"flip_prob": 1.0})  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["none", "None", ""])
def test_none_is_identity(strategy):
    x = images()
    assert DSA(strategy)(x, gen()) is x
    assert dsa(x, strategy, generator=gen()) is x


def test_bad_input_and_generator():
    with pytest.raises(ConfigError, match=r"\[B,C,H,W\]"):
        DSA()(torch.zeros(3, 8, 8), gen())
    with pytest.raises(ConfigError, match=r"\[B,C,H,W\]"):
        DSA()(torch.zeros(2, 3, 8, 8, dtype=torch.long), gen())
    with pytest.raises(ConfigError, match="generator"):
        DSA()(images(), generator=42)  # type: ignore[arg-type]


# --- every op ----------------------------------------------------------------------------


@pytest.mark.parametrize("op", SINGLE_OPS)
def test_each_op_changes_the_image_and_keeps_shape_and_dtype(op):
    for dtype in (torch.float32, torch.float64):
        x = images(dtype=dtype)
        y = DSA(op, SURE_FLIP)(x, gen())
        assert y.shape == x.shape and y.dtype == dtype and y.is_contiguous()
        assert torch.isfinite(y).all()
        assert not torch.allclose(y, x), op


@pytest.mark.parametrize("op", [*SINGLE_OPS, DEFAULT_STRATEGY])
@pytest.mark.parametrize("mode", ["single", "all"])
def test_gradients_flow_to_the_input(op, mode):
    x = images().requires_grad_()
    weights = torch.randn(x.shape, generator=gen(9))
    (DSA(op, DSAParams(mode=mode, flip_prob=1.0))(x, gen(3)) * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("op", SINGLE_OPS)
def test_gradients_are_the_true_gradients(op):
    x = images(b=2, c=3, h=6, w=6, dtype=torch.float64).requires_grad_()
    aug = DSA(op, SURE_FLIP)
    assert torch.autograd.gradcheck(lambda t: aug(t, gen(5)), (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("op", SINGLE_OPS)
def test_shared_and_per_sample_code_paths_agree(op):
    # With one image both paths draw the same single parameter set.
    x = images(b=1)
    for seed in range(4):
        a = DSA(op, ALL)(x, gen(seed), shared=True)
        b = DSA(op, ALL)(x, gen(seed), shared=False)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


# --- op semantics ------------------------------------------------------------------------


def test_flip_probability_semantics():
    x = images()
    torch.testing.assert_close(DSA("flip", DSAParams(flip_prob=1.0))(x, gen()), x.flip(3), rtol=0, atol=0)
    torch.testing.assert_close(DSA("flip", DSAParams(flip_prob=0.0))(x, gen()), x, rtol=0, atol=0)
    many = torch.arange(4.0).view(1, 1, 1, 4).expand(4000, 1, 1, 4)
    flipped = (DSA("flip")(many, gen())[:, 0, 0, 0] == 3).float().mean().item()
    assert 0.45 < flipped < 0.55
    shared = DSA("flip")(many, gen(), shared=True)[:, 0, 0, 0]
    assert len(shared.unique()) == 1


def test_crop_is_an_integer_shift_with_zero_fill():
    x = images(b=8, h=16, w=16) + 10  # no zeros inside the image
    y = DSA("crop", DSAParams(crop=0.125))(x, gen())  # shifts in [-2, 2]
    pad = torch.nn.functional.pad(x, [2, 2, 2, 2])
    shifts = set()
    for i in range(len(x)):
        hits = [
            (r, c)
            for r in range(-2, 3)
            for c in range(-2, 3)
            if torch.equal(y[i], pad[i, :, 2 + r : 18 + r, 2 + c : 18 + c])
        ]
        assert len(hits) == 1
        shifts.add(hits[0])
    assert len(shifts) > 1  # per-sample shifts


def test_cutout_zeroes_one_clipped_box():
    x = images(b=32, h=16, w=16) + 10
    y = DSA("cutout", DSAParams(cutout=0.5))(x, gen())
    for i in range(len(x)):
        zero = y[i, 0] == 0
        assert torch.equal(zero.expand_as(x[i]), y[i] == 0)  # same box in every channel
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8
        assert zero.sum() == len(rows) * len(cols)  # a rectangle
        assert rows.max() - rows.min() + 1 == len(rows)
        if 0 < rows.min() and rows.max() < 15:  # not clipped: full size
            assert len(rows) == 8
        torch.testing.assert_close(y[i][:, ~zero], x[i][:, ~zero], rtol=0, atol=0)


def test_color_ops_follow_the_reference_formulas():
    # mode="all": no op-choice draw, so the op's parameter is the generator's first draw
    x = images(b=1)
    g = gen(4)
    u = torch.rand(1, generator=g).item()
    y = DSA("brightness", DSAParams(mode="all", brightness=1.0))(x, gen(4))
    torch.testing.assert_close(y, x + (u - 0.5))
    y = DSA("saturation", DSAParams(mode="all", saturation=2.0))(x, gen(4))
    m = x.mean(1, keepdim=True)
    torch.testing.assert_close(y, (x - m) * (2.0 * u) + m)
    y = DSA("contrast", DSAParams(mode="all", contrast=0.5))(x, gen(4))
    m = x.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(y, (x - m) * (u + 0.5) + m)


def test_scale_and_rotate_fix_the_centre_and_neutral_params_are_identity():
    x = images(h=15, w=15)
    for op in ("scale", "rotate", "scale_rotate"):
        y = DSA(op, ALL)(x, gen())
        torch.testing.assert_close(y[..., 7, 7], x[..., 7, 7], rtol=0, atol=1e-5)
    neutral = DSAParams(mode="all", scale=1.0, rotate=0.0)
    torch.testing.assert_close(DSA("scale_rotate", neutral)(x, gen()), x, rtol=0, atol=1e-5)


def test_fused_scale_rotate_equals_two_passes():
    # Bilinear resampling of a linear ramp is exact away from the border.
    h = w = 32
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    ramp = (0.3 * xx - 0.7 * yy + 0.1).expand(8, 2, h, w).contiguous()
    fused = DSA("scale_rotate", ALL)(ramp, gen(2))
    g = gen(2)
    two = DSA("rotate", ALL)(DSA("scale", ALL)(ramp, g), g)
    torch.testing.assert_close(fused[..., 10:22, 10:22], two[..., 10:22, 10:22], rtol=0, atol=1e-5)
    assert not torch.allclose(fused, ramp)


def test_all_mode_applies_every_op_in_order():
    x = images()
    y = DSA("flip_brightness", SURE_FLIP)(x, gen())
    delta = y - x.flip(3)
    torch.testing.assert_close(delta, delta[:, :1, :1, :1].expand_as(delta))
    assert delta[:, 0, 0, 0].abs().min() > 0


def test_single_mode_applies_exactly_one_op_per_call():
    x = images()
    seen = set()
    for seed in range(12):
        y = DSA("brightness_flip", DSAParams(mode="single", flip_prob=1.0))(x, gen(seed))
        if torch.equal(y, x.flip(3)):
            seen.add("flip")
        else:
            delta = y - x  # brightness only: one constant per sample, no flip
            torch.testing.assert_close(delta, delta[:, :1, :1, :1].expand_as(delta))
            seen.add("brightness")
    assert seen == {"flip", "brightness"}


# --- reproducibility and siamese use -------------------------------------------------------


@pytest.mark.parametrize("mode", ["single", "all"])
def test_same_seed_same_result_other_seed_other_result(mode):
    x = images()
    aug = DSA(DEFAULT_STRATEGY, DSAParams(mode=mode))
    torch.testing.assert_close(aug(x, gen(7)), aug(x, gen(7)), rtol=0, atol=0)
    outs = [aug(x, gen(s)) for s in range(4)]
    assert all(not torch.equal(outs[0], o) for o in outs[1:])


def test_siamese_calls_match_and_the_generator_advances():
    real, syn = images(b=8, seed=1), images(b=3, seed=2)
    aug = DSA(DEFAULT_STRATEGY, ALL)
    g1, g2 = gen(11), gen(11)
    a1, b1 = aug(real, g1, shared=True), aug(real, g2, shared=True)
    torch.testing.assert_close(a1, b1, rtol=0, atol=0)
    # shared draws do not depend on the batch size: a sub-batch gets the same transform
    g3 = gen(11)
    torch.testing.assert_close(aug(real[:3], g3, shared=True), a1[:3], rtol=0, atol=0)
    # consecutive calls on one generator give fresh draws; two such streams stay in step
    torch.testing.assert_close(aug(syn, g1, shared=True), aug(syn, g2, shared=True), rtol=0, atol=0)
    assert not torch.equal(aug(real, g1, shared=True), a1)


def test_shared_applies_one_transform_to_the_whole_batch():
    x = images(b=1).expand(5, -1, -1, -1).contiguous()
    for seed in range(3):
        same = DSA(DEFAULT_STRATEGY, ALL)(x, gen(seed), shared=True)
        assert (same - same[:1]).abs().max() == 0
    different = DSA(DEFAULT_STRATEGY, ALL)(x, gen(0), shared=False)
    assert all(not torch.allclose(different[0], different[i]) for i in range(1, 5))


def test_default_generator_is_torchs_global_one():
    x = images()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        a = DSA()(x)
        torch.manual_seed(123)
        b = dsa(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.cuda
def test_results_do_not_depend_on_the_device():
    x = images(b=16)
    for mode in ("single", "all"):
        aug = DSA(DEFAULT_STRATEGY, DSAParams(mode=mode))
        for shared in (False, True):
            cpu = aug(x, gen(3), shared)
            cuda = aug(x.cuda(), gen(3), shared).cpu()
            torch.testing.assert_close(cuda, cpu, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="CPU"):
        aug(x.cuda(), torch.Generator(device="cuda"))
