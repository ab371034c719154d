"""The dataset-distillation model family: the evaluation pool of DC/DSA, MTT, FTD and DATM.

The architectures follow VICO-UoE/DatasetCondensation ``networks.py`` (ConvNet, MLP, LeNet,
AlexNet, VGG11, ResNet18), written afresh with three deliberate differences:

* Classifier input sizes are computed from the actual image size instead of hard-coded for
  28x28/32x32, so every model also takes 16x16 digits and 64x64 Tiny-ImageNet. On 28x28 and
  32x32 the result is the literature's network, parameter for parameter.
* Activations are never in place and layers are never shared, so ``torch.func``
  (``functional_call``, ``vmap``, ``grad``) can run the ConvNet on flat parameters, as the
  trajectory-matching engine does. The ConvNet keeps the literature's parameter order
  (``features`` conv, norm, ... then ``classifier``), so flat vectors line up with MTT's.
* An image too small for an architecture raises ``ConfigError`` saying so, instead of a
  shape error deep inside ``forward``.

Each builder takes ``(shape, **options)`` and validates its options; nothing here seeds or
draws from any RNG other than the global one that PyTorch's default initialisers use, so
``torch.manual_seed`` before a build fixes the initial weights.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

from torch import Tensor, nn

from dd_bench.plugin import ConfigError, DataShape

NORMS = ("instance", "batch", "layer", "group", "none")
ACTIVATIONS = ("relu", "leakyrelu", "sigmoid")
POOLINGS = ("avg", "max", "none")


# ----------------------------------------------------------------------------- options


def choice(model: str, option: str, value: object, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{model}: {option}={value!r} is not allowed (allowed: {', '.join(allowed)})")
    return value  # type: ignore[return-value]


def positive_int(model: str, option: str, value: object) -> int:
    """An integer >= 1; digit strings (from a command line) are accepted, booleans are not."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{model}: {option}={value!r} is not allowed (allowed: an integer >= 1)")
    return int(value)


def _out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling window along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def _too_small(model: str, shape: DataShape, why: str) -> ConfigError:
    return ConfigError(
        f"{model}: a {shape.channels}x{shape.height}x{shape.width} image is too small: {why}"
        " (use larger images or a model that pools adaptively, e.g. resnet18)"
    )


# ----------------------------------------------------------------------------- ConvNet


def _norm_layer(kind: str, channels: int, h: int, w: int) -> nn.Module | None:
    """Instance norm is GroupNorm with one channel per group, as in the literature."""
    if kind == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.LayerNorm([channels, h, w], elementwise_affine=True)
    if kind == "group":
        return nn.GroupNorm(4, channels, affine=True)
    return None


def _activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.01)
    return nn.Sigmoid()


class ConvNet(nn.Module):
    """``depth`` blocks of conv3x3 -> norm -> activation -> 2x2 pool, then one linear layer.

    Single-channel images get padding 3 in the first convolution (the literature's rule, so
    28x28 MNIST-like images become 32x32 feature maps and match the CIFAR network).
    """

    def __init__(self, shape: DataShape, width: int, depth: int, norm: str, activation: str, pooling: str):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, h, w = shape.channels, shape.height, shape.width
        for d in range(depth):
            pad = 3 if shape.channels == 1 and d == 0 else 1
            layers.append(nn.Conv2d(in_ch, width, kernel_size=3, padding=pad))
            h, w = _out(h, 3, 1, pad), _out(w, 3, 1, pad)
            norm_layer = _norm_layer(norm, width, h, w)
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(_activation(activation))
            if pooling != "none":
                layers.append(nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2))
                h, w = h // 2, w // 2
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.feature_shape = (width, h, w)
        self.classifier = nn.Linear(width * h * w, shape.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def _max_pooled_depth(shape: DataShape) -> int:
    """How many conv+pool blocks fit before the feature map would drop below 1x1."""
    pad = 3 if shape.channels == 1 else 1
    size, depth = min(_out(shape.height, 3, 1, pad), _out(shape.width, 3, 1, pad)), 0
    while size >= 2:
        size, depth = size // 2, depth + 1
    return depth


def convnet(
    shape: DataShape,
    *,
    width: int = 128,
    depth: int = 3,
    norm: str = "instance",
    activation: str = "relu",
    pooling: str = "avg",
) -> nn.Module:
    """The DC/MTT/FTD/DATM ConvNet (defaults: ConvNet-3, width 128, instance norm, avg pool)."""
    width = positive_int("convnet", "width", width)
    depth = positive_int("convnet", "depth", depth)
    norm = choice("convnet", "norm", norm, NORMS)
    activation = choice("convnet", "activation", activation, ACTIVATIONS)
    pooling = choice("convnet", "pooling", pooling, POOLINGS)
    if norm == "group" and width % 4:
        raise ConfigError(f"convnet: norm='group' uses 4 groups, so width={width} must be a multiple of 4")
    if pooling != "none" and depth > _max_pooled_depth(shape):
        raise _too_small(
            "convnet",
            shape,
            f"depth={depth} with 2x2 pooling shrinks the feature map below 1x1"
            f" (at most depth={_max_pooled_depth(shape)} fits; or use pooling='none')",
        )
    return ConvNet(shape, width, depth, norm, activation, pooling)


# ----------------------------------------------------------------------------- MLP, LeNet, AlexNet


def mlp(shape: DataShape, *, width: int = 128) -> nn.Module:
    """Three linear layers with ReLU, 128 hidden units (the literature's MLP), on flat pixels."""
    width = positive_int("mlp", "width", width)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(shape.channels * shape.height * shape.width, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, shape.num_classes),
    )


class _FeaturesHead(nn.Module):
    """``features`` -> flatten -> ``classifier``: the shape every CNN below shares."""

    def __init__(self, features: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features, self.classifier = features, classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def lenet(shape: DataShape) -> nn.Module:
    """LeNet-5: two conv5x5+maxpool blocks (padding 2 for single-channel input), then 120-84-K."""
    pad = 2 if shape.channels == 1 else 0
    h, w = shape.height, shape.width
    for kernel, padding in ((5, pad), (5, 0)):
        h, w = _out(h, kernel, 1, padding) // 2, _out(w, kernel, 1, padding) // 2
        if h < 1 or w < 1:
            least = 12 if shape.channels == 1 else 16
            raise _too_small("lenet", shape, f"two 5x5 convolutions with 2x2 max pools need {least}x{least} or more")
    features = nn.Sequential(
        nn.Conv2d(shape.channels, 6, kernel_size=5, padding=pad),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
    )
    classifier = nn.Sequential(
        nn.Linear(16 * h * w, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, shape.num_classes)
    )
    return _FeaturesHead(features, classifier)


def alexnet(shape: DataShape) -> nn.Module:
    """The DC literature's AlexNet for small images: five convolutions, three 2x2 max pools, one linear layer.

    Not torchvision's ImageNet AlexNet (stride-4 11x11 stem), which cannot see 32x32 images;
    single-channel input gets padding 4 in the first convolution, as in the literature.
    """
    pad = 4 if shape.channels == 1 else 2
    h, w = _out(shape.height, 5, 1, pad), _out(shape.width, 5, 1, pad)
    h, w = h // 2 // 2 // 2, w // 2 // 2 // 2  # the 5x5/pad-2 and 3x3/pad-1 convs keep the size
    if h < 1 or w < 1:
        raise _too_small("alexnet", shape, "three 2x2 max pools need an 8x8 or larger feature map")
    features = nn.Sequential(
        nn.Conv2d(shape.channels, 128, kernel_size=5, padding=pad),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(128, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(192, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 192, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(192, 192, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
    )
    return _FeaturesHead(features, nn.Linear(192 * h * w, shape.num_classes))


# ----------------------------------------------------------------------------- VGG11

VGG11_LAYOUT = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def _conv_norm(norm: str, channels: int) -> nn.Module:
    return nn.GroupNorm(channels, channels, affine=True) if norm == "instance" else nn.BatchNorm2d(channels)


def vgg11(shape: DataShape, *, norm: str = "instance") -> nn.Module:
    """The DC literature's VGG11: conv3x3-norm-ReLU stacks, five 2x2 max pools, one linear layer.

    Five halvings take 28x28 (padded to 32) and 32x32 images to 1x1 exactly, as in the
    literature. On smaller images a pool that would act on a 1x1 map is left out, and so,
    under instance norm, is one whose 1x1 output more convolutions would follow (instance
    norm over a single pixel outputs zeros, and the network its input ignores): 16x16
    reaches 2x2 after three pools and 1x1 after the last. On larger images the final map
    is flattened (64x64: 512x2x2).
    """
    norm = choice("vgg11", "norm", norm, ("instance", "batch"))
    layers: list[nn.Module] = []
    in_ch, h, w = shape.channels, shape.height, shape.width
    for i, item in enumerate(VGG11_LAYOUT):
        if item == "M":
            smallest = 2 if norm == "instance" and i < len(VGG11_LAYOUT) - 1 else 1
            if h // 2 >= smallest and w // 2 >= smallest:
                layers.append(nn.MaxPool2d(2, 2))
                h, w = h // 2, w // 2
            continue
        pad = 3 if shape.channels == 1 and i == 0 else 1
        layers += [nn.Conv2d(in_ch, item, kernel_size=3, padding=pad), _conv_norm(norm, item), nn.ReLU()]
        h, w, in_ch = _out(h, 3, 1, pad), _out(w, 3, 1, pad), item
    return _FeaturesHead(nn.Sequential(*layers), nn.Linear(in_ch * h * w, shape.num_classes))


# ----------------------------------------------------------------------------- ResNet18


class BasicBlock(nn.Module):
    """Two conv3x3 with a (projected when the shape changes) identity shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = _conv_norm(norm, out_ch)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1, bias=False)
        self.bn2 = _conv_norm(norm, out_ch)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), _conv_norm(norm, out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet18(nn.Module):
    """The CIFAR-style ResNet18 of the DC literature: a 3x3 stride-1 stem, no stem max pool.

    The literature ends with a fixed 4x4 average pool (1x1 output for 28x28 and 32x32);
    an adaptive average pool gives the same network there and also handles 16x16 (2x2 final
    map) and 64x64 (8x8) images.
    """

    def __init__(self, shape: DataShape, norm: str, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(shape.channels, width, kernel_size=3, padding=1, bias=False)
        self.bn1 = _conv_norm(norm, width)
        self.relu = nn.ReLU()
        stages, in_ch = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            out_ch = width * 2**i
            stages.append(nn.Sequential(BasicBlock(in_ch, out_ch, stride, norm), BasicBlock(out_ch, out_ch, 1, norm)))
            in_ch = out_ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_ch, shape.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.classifier(self.pool(out).flatten(1))


def resnet18(shape: DataShape, *, norm: str = "batch", width: int = 64) -> nn.Module:
    """ResNet18 with batch norm by default (the literature's ResNet18BN); ``norm='instance'`` for ResNet18.

    Three stride-2 stages take 8x8 images to 1x1, where instance norm outputs zeros, so
    ``norm='instance'`` needs images larger than 8x8.
    """
    norm = choice("resnet18", "norm", norm, ("batch", "instance"))
    width = positive_int("resnet18", "width", width)
    if norm == "instance" and min(shape.height, shape.width) <= 8:
        raise ConfigError(
            f"resnet18: norm='instance' needs images larger than 8x8, got {shape.channels}x{shape.height}x{shape.width}"
            " (instance norm over the 1x1 map of the last stage outputs zeros); use norm='batch'"
        )
    return ResNet18(shape, norm, width)
