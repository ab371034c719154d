"""The inner problem of trajectory matching, differentiated two ways.

A student starts at an expert's parameters ``theta_0`` and takes ``len(batches)`` SGD steps
on minibatches of the synthetic set with the learnable lr ``alpha``::

    theta_{i+1} = theta_i - alpha * grad L(theta_i; augment(X[b_i]), Y[b_i])
    loss = ||theta_N - theta_target||^2 / ||theta_0 - theta_target||^2

``unrolled`` keeps the whole graph and lets autograd differentiate it (memory grows with the
number of steps). ``constant_memory`` keeps only the parameter vectors and walks back with
the adjoint ``a_i = dloss/dtheta_i``: each step's gradient is recomputed and one
vector-Jacobian product gives ``dloss/dX``, ``dloss/dY`` and the next adjoint, so memory is
one step's graph whatever the number of steps, and the gradients are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..training import classification_loss
from .student import FlatModel

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _step_gradient(
    student: FlatModel,
    theta: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch: torch.Tensor,
    augment: Augment | None,
    aug_seed: int,
    create_graph: bool,
) -> torch.Tensor:
    x = images[batch]
    if augment is not None:  # a fresh generator per step, so the backward walk can replay it
        x = augment(x, torch.Generator().manual_seed(aug_seed))
    loss = classification_loss(student(theta, x), labels[batch])
    return torch.autograd.grad(loss, theta, create_graph=create_graph)[0]


def match(
    student: FlatModel,
    start: torch.Tensor,
    target: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    lr: torch.Tensor,
    batches: Sequence[torch.Tensor],
    aug_seeds: Sequence[int],
    augment: Augment | None = None,
    constant_memory: bool = False,
) -> torch.Tensor:
    """Normalised matching loss (detached); gradients accumulate into the ``.grad`` of
    ``images``, ``lr`` and ``labels`` wherever those require grad."""
    distance = (start - target).pow(2).sum()
    if not constant_memory:
        theta = start.detach().requires_grad_(True)
        for batch, seed in zip(batches, aug_seeds):
            grad = _step_gradient(student, theta, images, labels, batch, augment, seed, create_graph=True)
            theta = theta - lr * grad
        loss = (theta - target).pow(2).sum() / distance
        loss.backward()
        return loss.detach()

    alpha = lr.detach()
    thetas = [start.detach()]
    for batch, seed in zip(batches, aug_seeds):  # forward: keep the parameters, not the graph
        theta = thetas[-1].clone().requires_grad_(True)
        grad = _step_gradient(student, theta, images.detach(), labels.detach(), batch, augment, seed, False)
        thetas.append((theta - alpha * grad).detach())
    loss = (thetas[-1] - target).pow(2).sum() / distance
    adjoint = 2 * (thetas[-1] - target) / distance

    leaves = [t for t in (images, labels) if t.requires_grad]
    totals = [torch.zeros_like(t) for t in leaves]
    lr_total = torch.zeros_like(alpha)
    for i in reversed(range(len(batches))):
        theta = thetas[i].clone().requires_grad_(True)
        grad = _step_gradient(student, theta, images, labels, batches[i], augment, aug_seeds[i], True)
        vjps = torch.autograd.grad(grad, [theta, *leaves], grad_outputs=adjoint, allow_unused=True)
        lr_total -= (adjoint * grad.detach()).sum()
        for total, vjp in zip(totals, vjps[1:]):
            if vjp is not None:
                total.sub_(alpha * vjp)
        adjoint = adjoint - alpha * vjps[0]
    for leaf, total in zip(leaves, totals):
        leaf.grad = total if leaf.grad is None else leaf.grad + total
    if lr.requires_grad:
        lr.grad = lr_total if lr.grad is None else lr.grad + lr_total
    return loss
