"""The built-in models plugin: the DC-literature family and the timm:/tv: resolver."""

from __future__ import annotations

import itertools

import pytest
import torch
from dd_bench_models import ddb_resolve_model, zoo
from dd_bench_models.zoo import Upsampled
from torch import nn
from torch.func import functional_call

from dd_bench.errors import ConfigError, UnknownNameError
from dd_bench.plugins import Registry, get_plugin_manager
from dd_bench.specs import DataShape, ModelSpec

BUILTIN = [
    "convnet",
    "convnet_d4",
    "convnet_d5",
    "convnet_bn",
    "convnet_w64",
    "convnet_w32",
    "convnet_w32_bn",
    "mlp",
    "lenet",
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "resnet18",
    "resnet18_in",
]
SHAPES = [(1, 16, 16), (1, 28, 28), (3, 32, 32)]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reg() -> Registry:
    return Registry(get_plugin_manager(autoload=False))


def build(reg: Registry, name: str, chw: tuple[int, int, int], classes: int = 10, **options) -> nn.Module:
    return reg.model(name).build(DataShape(*chw, classes), **options)


def check_logits_and_grads(net: nn.Module, chw: tuple[int, ...], classes: int = 10, n: int = 2) -> None:
    net.train()
    out = net(torch.randn(n, *chw))
    assert out.shape == (n, classes)
    nn.functional.cross_entropy(out, torch.arange(n) % classes).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if p.requires_grad)


def test_the_builtin_models_are_registered_by_this_plugin(reg):
    assert sorted(reg.models) == sorted(BUILTIN)
    assert {entry.plugin for entry in reg.models.values()} == {"models"}


@pytest.mark.parametrize(
    ("name", "chw"),
    [
        pytest.param(name, chw, id=f"{name}-{'x'.join(map(str, chw))}")
        for name in BUILTIN
        for chw in SHAPES
        if not (name == "convnet_d5" and chw[1] == 16)  # too deep: test_convnet_too_deep_for_the_image
    ],
)
def test_every_model_gives_logits_and_gradients(reg, name, chw):
    check_logits_and_grads(build(reg, name, chw), chw)


@pytest.mark.parametrize(
    ("name", "options"), [("convnet", {}), ("convnet_d4", {"width": 16}), ("resnet18", {"width": 16})]
)
def test_64x64_images(reg, name, options):
    check_logits_and_grads(build(reg, name, (3, 64, 64), 200, **options), (3, 64, 64), 200)


@pytest.mark.parametrize(
    ("name", "params"),
    # the literature's CIFAR-10 networks, parameter for parameter
    [
        ("convnet", 320_010),
        ("mlp", 411_146),
        ("lenet", 62_006),
        ("alexnet", 1_872_202),
        ("vgg11", 9_231_114),
        ("resnet18", 11_173_962),
    ],
)
def test_parameter_counts_match_the_literature(reg, name, params):
    assert sum(p.numel() for p in build(reg, name, (3, 32, 32)).parameters()) == params


@pytest.mark.parametrize(
    ("norm", "pooling", "activation"),
    list(
        itertools.product(
            ["instance", "batch", "layer", "group", "none"], ["avg", "max", "none"], ["relu", "leakyrelu", "sigmoid"]
        )
    ),
)
def test_convnet_options(reg, norm, pooling, activation):
    net = build(reg, "convnet", (1, 28, 28), width=8, depth=2, norm=norm, pooling=pooling, activation=activation)
    check_logits_and_grads(net, (1, 28, 28))


def test_convnet_variants_set_their_defaults(reg):
    assert build(reg, "convnet_d4", (3, 32, 32)).feature_shape == (128, 2, 2)
    assert build(reg, "convnet_w64", (3, 32, 32)).feature_shape == (64, 4, 4)
    assert build(reg, "convnet_w32", (1, 28, 28)).feature_shape == (32, 4, 4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in build(reg, "convnet_bn", (3, 32, 32)).modules())
    instance = [m for m in build(reg, "convnet", (3, 32, 32)).modules() if isinstance(m, nn.GroupNorm)]
    assert len(instance) == 3 and all(m.num_groups == m.num_channels == 128 for m in instance)
    assert build(reg, "convnet_d4", (3, 32, 32), depth=2).feature_shape == (128, 8, 8)  # options still win


def test_28x28_single_channel_is_padded_to_the_32x32_network(reg):
    gray, rgb = build(reg, "convnet", (1, 28, 28)), build(reg, "convnet", (3, 32, 32))
    assert gray.features[0].padding == (3, 3) and rgb.features[0].padding == (1, 1)
    assert gray.feature_shape == rgb.feature_shape == (128, 4, 4)
    assert gray.features(torch.randn(2, 1, 28, 28)).shape == (2, 128, 4, 4)
    assert gray.classifier.in_features == rgb.classifier.in_features == 2048


@pytest.mark.parametrize(
    ("name", "options", "words"),
    [
        ("convnet", {"norm": "weird"}, ["norm", "'weird'", "instance", "batch", "layer", "none"]),
        ("convnet", {"activation": "tanh"}, ["activation", "'tanh'", "relu", "leakyrelu", "sigmoid"]),
        ("convnet", {"pooling": "sum"}, ["pooling", "'sum'", "avg", "max", "none"]),
        ("convnet", {"width": 0}, ["width", "0", ">= 1"]),
        ("convnet", {"depth": True}, ["depth", "True"]),
        ("convnet", {"norm": "group", "width": 6}, ["group", "width=6", "multiple of 4"]),
        ("convnet", {"colour": "red"}, ["unknown option colour", "width", "depth", "norm"]),
        ("vgg11", {"norm": "layer"}, ["norm", "'layer'", "instance", "batch"]),
        ("resnet18", {"norm": "group"}, ["norm", "'group'", "batch", "instance"]),
        ("lenet", {"width": 8}, ["unknown option width", "allowed: none"]),
    ],
)
def test_bad_options_are_config_errors(reg, name, options, words):
    with pytest.raises(ConfigError) as err:
        build(reg, name, (1, 28, 28), **options)
    for word in words:
        assert word in str(err.value)


def test_digit_strings_are_accepted_as_integers(reg):
    assert build(reg, "convnet", (1, 28, 28), width="8", depth="2").feature_shape == (8, 8, 8)


def test_convnet_too_deep_for_the_image(reg):
    with pytest.raises(ConfigError, match=r"depth=5 .* below 1x1 \(at most depth=4 fits"):
        build(reg, "convnet_d5", (1, 16, 16))
    with pytest.raises(ConfigError, match="below 1x1"):
        build(reg, "convnet", (3, 8, 8), depth=4)
    assert build(reg, "convnet", (1, 16, 16), depth=5, pooling="none", width=4).feature_shape == (4, 20, 20)


def test_too_small_images_are_config_errors(reg):
    with pytest.raises(ConfigError, match="lenet: a 1x8x8 image is too small"):
        build(reg, "lenet", (1, 8, 8))
    with pytest.raises(ConfigError, match="norm='instance' needs images larger than 8x8"):
        build(reg, "resnet18_in", (1, 8, 8))


@pytest.mark.parametrize("chw", [(1, 8, 8), (1, 16, 16), (3, 16, 16)])
def test_instance_norm_vgg11_on_small_images_sees_its_input(reg, chw):
    """Instance norm over a 1x1 map outputs zeros: the network would give every image the same logits."""
    torch.manual_seed(0)
    out = build(reg, "vgg11", chw).train()(torch.randn(4, *chw))
    assert (out - out[0]).abs().max() > 1e-3


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_functional_call_on_convnet_equals_the_module(reg, norm):
    torch.manual_seed(0)
    net = build(reg, "convnet", (1, 28, 28), width=16, norm=norm)
    names = [n for n, _ in net.named_parameters()]
    assert names[-2:] == ["classifier.weight", "classifier.bias"] and len(names) == 4 * 3 + 2  # MTT's flat layout
    x = torch.randn(4, 1, 28, 28)
    params = {n: p.detach() + 0.01 * torch.randn_like(p) for n, p in net.named_parameters()}
    functional = functional_call(net, params, (x,))
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(params[n])
    torch.testing.assert_close(functional, net(x))
    flat = torch.cat([p.reshape(-1) for p in params.values()]).requires_grad_()  # a flat student, as in MTT

    def unflatten(vector):
        out, i = {}, 0
        for n, p in params.items():
            out[n] = vector[i : i + p.numel()].view_as(p)
            i += p.numel()
        return out

    loss = functional_call(net, unflatten(flat), (x,)).logsumexp(1).mean()
    (grad,) = torch.autograd.grad(loss, flat)
    assert grad.shape == flat.shape and grad.abs().sum() > 0


def test_same_seed_same_initialisation(reg):
    for name, chw, options in [("convnet", (1, 28, 28), {}), ("resnet18", (3, 32, 32), {"width": 8})]:
        states = []
        for seed in (7, 7, 8):
            torch.manual_seed(seed)
            states.append(build(reg, name, chw, **options).state_dict())
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
        assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


# ----------------------------------------------------------------------------- timm: and tv:


@pytest.mark.parametrize("name", ["timm:resnet18", "tv:resnet18"])
def test_zoo_resnet18_on_grayscale_28x28(reg, name):
    spec = reg.model(name)
    assert isinstance(spec, ModelSpec) and spec.name == name
    torch.manual_seed(0)
    net = spec.build(DataShape(1, 28, 28, 10))
    torch.manual_seed(0)
    again = spec.build(DataShape(1, 28, 28, 10))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    assert not isinstance(net, Upsampled)
    assert next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels == 1
    check_logits_and_grads(net, (1, 28, 28))


def test_tv_stem_adaptation_derives_weights_and_draws_no_random_numbers(reg):
    nets = {}
    for c in (1, 3, 5):
        torch.manual_seed(3)
        nets[c] = reg.model("tv:resnet18").build(DataShape(c, 32, 32, 10)).state_dict()
    rgb = nets[3]["conv1.weight"]
    torch.testing.assert_close(nets[1]["conv1.weight"], rgb.sum(1, keepdim=True))
    torch.testing.assert_close(nets[5]["conv1.weight"], torch.cat([rgb, rgb[:, :2]], 1) * 3 / 5)
    for c in (1, 5):
        assert all(torch.equal(nets[c][k], nets[3][k]) for k in nets[3] if k != "conv1.weight")


def test_tv_alexnet_is_upsampled_for_16x16(reg):
    net = reg.model("tv:alexnet").build(DataShape(1, 16, 16, 10))
    assert isinstance(net, Upsampled) and net.size == (64, 64)  # the smallest ladder size it runs at
    check_logits_and_grads(net, (1, 16, 16))


class NeedsImgSize(nn.Module):
    """Like a timm ViT: built for one ``img_size``, and (here) only for 64x64 or more."""

    def __init__(self, size):
        super().__init__()
        self.size, self.fc = tuple(size), nn.Linear(3, 10)

    def forward(self, x):
        if tuple(x.shape[-2:]) != self.size or self.size[0] < 64:
            raise RuntimeError("input size does not match")
        return self.fc(x.mean((2, 3)))


def test_size_aware_models_are_remade_at_the_upsampled_size_from_the_same_seed():
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    net = zoo._fit("timm:fake", DataShape(3, 16, 16, 10), NeedsImgSize((16, 16)), NeedsImgSize, rng)
    assert isinstance(net, Upsampled) and net.size == (64, 64) and net.model.size == (64, 64)
    torch.manual_seed(5)
    torch.testing.assert_close(net.model.fc.weight, NeedsImgSize((64, 64)).fc.weight)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_a_model_that_never_runs_is_a_config_error():
    with pytest.raises(ConfigError, match="'tv:fake' does not run on 3x16x16 images"):
        zoo._fit("tv:fake", DataShape(3, 16, 16, 10), NeedsImgSize((16, 16)))


@pytest.mark.parametrize(("name", "hint"), [("timm:resnt18", "timm:resnet18"), ("tv:resnt18", "tv:resnet18")])
def test_unknown_zoo_names_suggest_the_closest(reg, name, hint):
    with pytest.raises(UnknownNameError) as err:
        reg.model(name)
    assert f"did you mean {hint!r}" in str(err.value) and err.value.kind == "model"
    assert hint in err.value.known


def test_other_names_are_not_ours(reg):
    assert ddb_resolve_model("convnet") is None and ddb_resolve_model("toyzoo:net") is None
    with pytest.raises(UnknownNameError, match="unknown model 'toyzoo:net'"):
        reg.model("toyzoo:net")
