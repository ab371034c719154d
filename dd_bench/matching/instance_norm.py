"""Instance norm whose second-order pass is cheap, for the unrolled student.

The ConvNet of the literature normalises with ``nn.GroupNorm(C, C)`` (one channel per group).
Trajectory matching differentiates the student's gradient, so autograd needs the backward of
GroupNorm's backward; PyTorch builds that from a composite of some thirty elementwise ops on
activation-sized tensors, which was most of a student step's kernels and half its activation
memory. Here the first-order backward is PyTorch's fused kernel, wrapped in a Function whose
own backward is written out (derivation below), so the second-order pass is a handful of
passes over ``x``, the incoming gradient and the upstream vector, and only those are saved.

Per (sample, channel) group of ``M`` pixels, with ``xh = (x - mean) * r``, ``r = 1/sqrt(var+eps)``,
``E`` the mean over the group and ``P(u) = u - E[u] - xh E[u xh]``, the first-order backward is::

    gx = r w P(gy)      gw = sum gy xh      gb = sum gy

Given the vectors ``v, ggw, ggb`` that flow back into ``gx, gw, gb``, with ``a = E[gy xh]``,
``b = E[v xh]`` and ``s = E[v gy] - E[v] E[gy] - a b``::

    d/dgy = r w P(v) + ggw xh + ggb
    d/dw  = sum over samples of r M s
    d/dx  = r P(G) - w s r^2 xh,   G = -r w (a v + b gy) + ggw gy

(``d/dx`` uses ``dr/dx = -r^2 xh / M`` and that ``r P(.)`` is the backward of ``xh``.)
Checked against ``nn.GroupNorm`` in value, gradient and gradient of gradient in the tests.
"""

from __future__ import annotations

import torch
from torch import nn


def _group_view(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-(sample, channel) tensor of shape [N, C] viewed to broadcast over ``x``."""
    return t.view(*x.shape[:2], *([1] * (x.ndim - 2)))


class _InstanceNormBackward(torch.autograd.Function):
    """The first-order backward (PyTorch's fused kernel), with an explicit backward of its own."""

    @staticmethod
    def forward(ctx, x, weight, grad_out, mean, rstd):
        n, c = x.shape[:2]
        grads = torch.ops.aten.native_group_norm_backward(
            grad_out, x, mean, rstd, weight, n, c, x[0, 0].numel(), c, [True, True, True]
        )
        ctx.save_for_backward(x, weight, grad_out, mean, rstd)
        return grads

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v, ggw, ggb):
        x, weight, gy, mean, rstd = ctx.saved_tensors
        dims = tuple(range(2, x.ndim))
        m = x[0, 0].numel()
        r = _group_view(rstd, x)
        w = weight.view(1, -1, *([1] * (x.ndim - 2)))
        ggw = torch.zeros_like(w) if ggw is None else ggw.view_as(w)
        ggb = torch.zeros_like(w) if ggb is None else ggb.view_as(w)
        v = torch.zeros_like(x) if v is None else v
        xh = (x - _group_view(mean, x)) * r

        def group_mean_of_product(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
            return _group_view(torch.linalg.vecdot(p.flatten(2), q.flatten(2)) / m, x)

        e_gy, e_v = gy.mean(dims, keepdim=True), v.mean(dims, keepdim=True)
        a, b = group_mean_of_product(gy, xh), group_mean_of_product(v, xh)
        s = group_mean_of_product(v, gy) - e_v * e_gy - a * b
        rw = r * w
        grad_w = (r * s).sum((0, *dims)) * m
        grad_gy = torch.addcmul(ggb - rw * e_v, ggw - rw * b, xh).addcmul_(rw, v)
        p, q = -rw * a, ggw - rw * b  # G = p v + q gy
        e_g, e_gxh = p * e_v + q * e_gy, p * b + q * a
        grad_x = torch.addcmul(-r * e_g, -(r * e_gxh + w * s * r * r), xh)
        grad_x.addcmul_(r * p, v).addcmul_(r * q, gy)
        return grad_x, grad_w, grad_gy, None, None


class _InstanceNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        n, c = x.shape[:2]
        y, mean, rstd = torch.native_group_norm(x, weight, bias, n, c, x[0, 0].numel(), c, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, mean, rstd = ctx.saved_tensors
        return (*_InstanceNormBackward.apply(x, weight, grad_out, mean, rstd), None)


class InstanceNorm(nn.GroupNorm):
    """``nn.GroupNorm(C, C, affine=True)`` with the same parameters and outputs, and a cheap
    gradient of its gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _InstanceNorm.apply(x, self.weight, self.bias, self.eps)


def with_cheap_instance_norm(model: nn.Module) -> nn.Module:
    """Swap, in place, every affine ``GroupNorm`` with one channel per group for
    :class:`InstanceNorm` (same parameters, names and order; flat vectors are unchanged)."""
    for name, child in model.named_children():
        if type(child) is nn.GroupNorm and child.affine and child.num_groups == child.num_channels:
            fast = InstanceNorm(child.num_groups, child.num_channels, child.eps, affine=True)
            fast.weight, fast.bias = child.weight, child.bias
            setattr(model, name, fast)
        else:
            with_cheap_instance_norm(child)
    return model
