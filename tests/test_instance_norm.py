"""The student's instance norm: nn.GroupNorm(C, C) in value, gradient and gradient of gradient."""

from __future__ import annotations

import copy

import pytest
import torch
from test_matching import tiny_problem
from torch import nn

from dd_bench.augment import DSA
from dd_bench.matching import FlatModel, MatchingConfig, TrajectoryMatcher, match
from dd_bench.matching.instance_norm import InstanceNorm, _InstanceNorm, with_cheap_instance_norm
from dd_bench.specs import DistillRequest


def pair(channels: int = 4):
    torch.manual_seed(0)
    reference = nn.GroupNorm(channels, channels).double()
    with torch.no_grad():
        reference.weight.normal_()
        reference.bias.normal_()
    return reference, with_cheap_instance_norm(nn.Sequential(copy.deepcopy(reference)))[0]


def test_values_gradients_and_gradients_of_gradients_equal_group_norm():
    reference, cheap = pair()
    assert isinstance(cheap, InstanceNorm)
    x = torch.randn(3, 4, 5, 6, dtype=torch.double, requires_grad=True)
    gy = torch.randn(3, 4, 5, 6, dtype=torch.double, requires_grad=True)
    v = torch.randn(3, 4, 5, 6, dtype=torch.double)
    results = []
    for norm in (reference, cheap):
        out = norm(x)
        inputs = (x, norm.weight, norm.bias)
        first = torch.autograd.grad(out, inputs, gy, create_graph=True)
        # a scalar of all three first-order gradients, differentiated again
        scalar = (first[0] * v).sum() + first[1].pow(2).sum() + (first[2] * norm.weight).sum()
        wrt = (x, gy, norm.weight, norm.bias)
        second = torch.autograd.grad(scalar, wrt, allow_unused=True)  # unused: zero
        results.append([out, *first, *[torch.zeros_like(t) if s is None else s for s, t in zip(second, wrt)]])
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_gradcheck_and_gradgradcheck():
    x = torch.randn(2, 3, 4, 4, dtype=torch.double, requires_grad=True)
    w = torch.randn(3, dtype=torch.double, requires_grad=True)
    b = torch.randn(3, dtype=torch.double, requires_grad=True)
    fn = lambda x, w, b: _InstanceNorm.apply(x, w, b, 1e-5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_only_instance_norms_are_swapped_and_the_flat_vector_is_unchanged():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.GroupNorm(4, 4),
        nn.GroupNorm(2, 4),
        nn.GroupNorm(4, 4, affine=False),
        nn.Sequential(nn.GroupNorm(4, 4)),
    )
    before = FlatModel(net).flatten()
    with_cheap_instance_norm(net)
    assert [type(m).__name__ for m in net.modules()][1:] == [
        "Conv2d",
        "InstanceNorm",
        "GroupNorm",
        "GroupNorm",
        "Sequential",
        "InstanceNorm",
    ]
    torch.testing.assert_close(FlatModel(net).flatten(), before, rtol=0, atol=0)


@pytest.mark.parametrize("constant_memory", [False, True])
def test_matching_gradients_are_those_of_the_group_norm_student(constant_memory):
    student, start, target, images, labels, lr, batches, seeds = tiny_problem(soft=False)
    cheap = FlatModel(with_cheap_instance_norm(copy.deepcopy(student.model)))
    assert any(isinstance(m, InstanceNorm) for m in cheap.model.modules())
    out = []
    for s in (student, cheap):
        images.grad = lr.grad = None
        loss = match(s, start, target, images, labels, lr, batches, seeds, DSA(), constant_memory)
        out.append((loss, images.grad.clone(), lr.grad.clone()))
    for got, want in zip(out[1], out[0]):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_the_engine_student_uses_the_cheap_instance_norm(registry, toy, tmp_path):
    model = registry.model("convnet_w32")
    request = DistillRequest(
        data=toy,
        ipc=1,
        seed=0,
        config=MatchingConfig(),
        device=torch.device("cpu"),
        model="convnet_w32",
        build_model=lambda seed: model.build(toy.shape),
        cache_dir=tmp_path,
    )
    assert any(isinstance(m, InstanceNorm) for m in TrajectoryMatcher(request).student.model.modules())
