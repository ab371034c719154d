"""How much memory an unrolled student needs, measured on a probe step, and how much there is.

The unrolled student keeps every step's graph until the backward pass, so its memory is
about ``syn_steps`` x (one step's saved tensors). One step's saved tensors are measured,
not guessed: a probe step runs on one and on two images under ``saved_tensors_hooks`` and
the bytes autograd keeps are counted, which gives a per-image and a per-step part for any
registered model. Constant memory keeps one step's graph plus ``syn_steps`` parameter vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .student import FlatModel
from .unroll import Augment, _step_gradient

MEMORY_HEADROOM = 0.9
"""Share of the free memory an estimate may take."""
BACKWARD_FACTOR = 1.4
"""The backward pass's temporaries on top of the saved tensors: on the CPU the measured peak was
1.22-1.34x the saved bytes (ConvNet-128, ConvNet-32, MLP on 28x28; benchmarks/memory_estimate.py)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes the student graph needs, unrolled and with ``constant_memory``."""

    per_image_step: int
    per_step: int
    unrolled: int
    constant: int


def _saved_bytes(
    student: FlatModel, theta: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, augment: Augment | None
) -> int:
    """Bytes of the distinct storages autograd saves for one differentiable student step."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    theta = theta.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        grad = _step_gradient(
            student,
            theta,
            images,
            labels,
            torch.arange(images.shape[0], device=images.device),
            augment,
            0,
            create_graph=True,
        )
        (theta - grad).pow(2).sum()  # the parameter update and the distance keep vectors too
    return sum(storages.values())


def estimate_memory(
    student: FlatModel, images: torch.Tensor, labels: torch.Tensor, batch: int, syn_steps: int, augment: Augment | None
) -> MemoryEstimate:
    """The student graph of ``syn_steps`` steps of ``batch`` images, from a probe on 1 and 2 images."""
    theta = student.flatten().to(images.device)
    images = images.detach().requires_grad_(True)  # as in the run: the graph reaches the images
    one = _saved_bytes(student, theta, images[:1], labels[:1], augment)
    two = _saved_bytes(student, theta, images[:2].contiguous(), labels[:2], augment) if images.shape[0] > 1 else 2 * one
    per_image = max(two - one, 0)
    per_step = max(one - per_image, 0) + theta.numel() * theta.element_size()
    step = BACKWARD_FACTOR * (per_step + per_image * batch)
    return MemoryEstimate(
        per_image,
        per_step,
        unrolled=int(syn_steps * step),
        constant=int(2 * step) + (syn_steps + 1) * theta.numel() * theta.element_size(),
    )
