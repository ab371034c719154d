"""SRe2L: the batch-norm statistics loss is active, recovery is seeded, the set names its teacher."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from dd_bench_sre2l import BNStatistics, SRe2LConfig, recover
from torch import nn

from dd_bench import api
from dd_bench.errors import ConfigError
from dd_bench.teachers import TeacherRecipe, resolve_teacher

CPU = torch.device("cpu")


def test_bn_statistics_loss_is_the_distance_to_running_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2)).eval()
    for bn in (net[1], net[4]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(6, 1, 8, 8)
    stats = BNStatistics(net, first_multiplier=10.0)
    net(x)
    got = stats.loss()
    h = net[0](x)
    h2 = net[3](net[2](net[1](h)))
    expected = 0.0
    for mult, inp, bn in ((10.0, h, net[1]), (1.0, h2, net[4])):
        mean, var = inp.mean((0, 2, 3)), inp.var((0, 2, 3), unbiased=False)
        expected = expected + mult * ((mean - bn.running_mean).norm() + (var - bn.running_var).norm())
    assert torch.allclose(got, expected)
    stats.terms = []  # the manual pass above ran the hooks too
    stats.close()
    net(x)
    assert stats.terms == []  # hooks removed


@pytest.fixture(scope="module")
def toy_teacher(registry, toy, tmp_path_factory):
    recipe = TeacherRecipe(model="convnet_w32_bn", epochs=3, lr=0.05, batch_size=32, dsa=False)
    return resolve_teacher(registry, toy, recipe, tmp_path_factory.mktemp("cache"), CPU, progress=False)


def _bn_distance(teacher, x):
    stats = BNStatistics(teacher)
    with torch.no_grad():
        teacher(x)
    d = stats.loss().item()
    stats.close()
    return d


def test_bn_statistics_loss_is_active_in_recovery(toy, toy_teacher, one_thread):
    """Removing the BN term (r_bn=0) leaves the batch statistics far from the teacher's."""
    targets = torch.arange(4).repeat(2)
    init = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    lo, hi = torch.full((1, 1, 1, 1), -5.0), torch.full((1, 1, 1, 1), 5.0)
    base = SRe2LConfig(iterations=60, lr=0.1, crop_min=1.0, flip=False)
    with_bn, _ = recover(
        toy_teacher.model, init, targets, dataclasses.replace(base, r_bn=1.0), torch.Generator().manual_seed(1), lo, hi
    )
    without, _ = recover(
        toy_teacher.model, init, targets, dataclasses.replace(base, r_bn=0.0), torch.Generator().manual_seed(1), lo, hi
    )
    assert _bn_distance(toy_teacher.model, with_bn) < 0.7 * _bn_distance(toy_teacher.model, without)
    assert (toy_teacher.model(with_bn).argmax(1) == targets).float().mean() >= 0.75  # and the CE term still works


def test_a_teacher_without_batch_norm_is_refused(toy):
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    with pytest.raises(ConfigError, match="no batch-norm layers"):
        recover(
            mlp,
            torch.zeros(4, 1, 8, 8),
            torch.arange(4),
            SRe2LConfig(iterations=1),
            torch.Generator(),
            torch.tensor(-1.0),
            torch.tensor(1.0),
        )


def test_sre2l_set_names_its_teacher_and_is_seeded(registry, digits, tmp_path, one_thread):
    kw = dict(preset="smoke", cache_dir=tmp_path, model="convnet_w32", progress=False, overrides={"iterations": 5})
    a = api.distill(registry, "sre2l", digits, 1, seed=0, **kw)
    b = api.distill(registry, "sre2l", digits, 1, seed=0, **kw)
    c = api.distill(registry, "sre2l", digits, 1, seed=1, **kw)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.metadata["teacher"]["recipe"]["model"] == "convnet_w32_bn" and a.labels.tolist() == list(range(10))
    lo = (0 - torch.tensor(digits.mean)) / torch.tensor(digits.std)
    assert a.images.min() >= lo.min() - 1e-6  # clipped to the pixel range
