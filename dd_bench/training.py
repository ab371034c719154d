"""The one training loop: evaluation models, expert trajectories and baselines all use it."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from . import distributed
from .errors import ConfigError
from .runtime import compile_setting
from .streaming import Images, batches

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

COMPILE_MIN_STEPS = 2000
"""Below this many SGD steps compiling (10-60 s once per process and architecture) costs more
than it saves (about a third of each step on the CPU: ``benchmarks/buffer_speed.py``)."""


OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class TrainRecipe:
    """SGD with a step decay (the recipe of the dataset-distillation literature) by default;
    AdamW with a per-epoch cosine schedule is the decoupled papers' (SRe2L, RDED)."""

    epochs: int = 1000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    decay_at: float | None = 0.5
    """schedule=step: fraction of ``epochs`` after which the lr is multiplied by 0.1 (None: constant lr)."""
    optimizer: str = "sgd"
    """``sgd`` (with ``momentum``) or ``adamw`` (``weight_decay`` decoupled, betas 0.9/0.999)."""
    schedule: str = "step"
    """``step`` (``decay_at``) or ``cosine``: lr x 0.5 (1 + cos(pi epoch / epochs)), set per epoch."""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs} is not allowed: use an integer >= 1")
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"lr={self.lr} is not allowed: use a finite number > 0")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} is not allowed: use an integer >= 1")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum={self.momentum} is not allowed: use 0 <= momentum < 1")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay} is not allowed: use a number >= 0")
        if self.decay_at is not None and not 0 < self.decay_at <= 1:
            raise ConfigError(f"decay_at={self.decay_at} is not allowed: use a fraction in (0, 1] or none")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r} is not allowed: use one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule={self.schedule!r} is not allowed: use one of {', '.join(SCHEDULES)}")

    def make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        if self.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def lr_factor(self, epoch: int) -> float:
        """The multiple of the initial lr that epoch ``epoch`` (0-based) trains at."""
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))
        if self.decay_at is not None and epoch >= int(self.epochs * self.decay_at):
            return 0.1
        return 1.0

    def steps(self, n: int) -> int:
        """SGD steps of training on ``n`` examples (the last batch of an epoch may be partial)."""
        return self.epochs * -(-n // self.batch_size)


def set_epoch_lr(opt: torch.optim.Optimizer, initial: Sequence[float], recipe: TrainRecipe, epoch: int) -> None:
    """Each parameter group's lr for ``epoch``: its initial lr times the recipe's schedule."""
    for group, lr in zip(opt.param_groups, initial):
        group["lr"] = lr * recipe.lr_factor(epoch)


def classification_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy for hard ``[B]`` or soft ``[B,K]`` (logit) targets, optionally weighted.

    Weighted: ``sum(w_i * loss_i) / sum(w_i)``, so the weights act as a distribution over the
    batch (as optimal quantization's cell masses do).
    """
    if targets.ndim == 2:
        targets = targets.softmax(dim=1)
    if weights is None:
        return F.cross_entropy(logits, targets)
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    return (weights * per_sample).sum() / weights.sum().clamp_min(1e-12)


def distillation_loss(
    logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``T^2 * KL(softmax(t/T) || softmax(s/T))`` per sample, averaged (or weighted as in
    ``classification_loss``): the relabelling loss of SRe2L/RDED and DD-Ranking's soft-label
    protocol. ``T^2`` keeps the gradient's size comparable across temperatures (Hinton et al.)."""
    log_p = F.log_softmax(logits / temperature, dim=1)
    target = F.softmax(teacher_logits.detach() / temperature, dim=1)
    per_sample = F.kl_div(log_p, target, reduction="none").sum(dim=1) * temperature**2
    if weights is None:
        return per_sample.mean()
    return (weights * per_sample).sum() / weights.sum().clamp_min(1e-12)


def train_classifier(
    model: nn.Module,
    x: Images,
    y: torch.Tensor,
    recipe: TrainRecipe,
    generator: torch.Generator,
    *,
    weights: torch.Tensor | None = None,
    augment: Augment | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
    progress: Callable[[int], None] | None = None,
    teacher: Callable[[torch.Tensor], torch.Tensor] | None = None,
    temperature: float = 1.0,
    compile: bool = False,
) -> nn.Module:
    """Train ``model`` in place on ``(x, y)`` (``y`` on the model's device, ``x`` there too or a
    streamed split whose batches are read in DataLoader workers and moved there).

    Minibatch order and augmentation draw from ``generator`` (CPU) only, so a run is a
    function of its seed: on the CPU always, on a GPU with deterministic kernels
    (``dd_bench.runtime.set_deterministic``, ``--deterministic``). ``optimizer`` replaces the recipe's SGD (e.g. GSAM experts);
    ``on_epoch_end(epoch, model)`` lets callers snapshot trajectories. ``teacher(xb)``: logits
    for each augmented batch; the loss is then :func:`distillation_loss` at ``temperature``
    against them and ``y`` is not used (the ``teacher`` label protocol). ``compile``:
    runs the network through :func:`compiled`, one graph per batch shape (the full batch and the
    partial last one: a partial batch run eagerly beside channels-last parameters cost IPC-50
    evaluation its whole gain); same results to float tolerance, not bit-equal.
    """
    n = x.shape[0]
    sharded = distributed.world_size() > 1
    model = distributed.prepare(model)
    forward = compiled(model) if compile else model
    opt = optimizer or recipe.make_optimizer(model.parameters())
    initial = [group["lr"] for group in opt.param_groups]
    model.train()
    # Where compilation fails (no C++ compiler), dynamo says so once and runs the network eagerly.
    with torch._dynamo.config.patch(suppress_errors=True) if compile else contextlib.nullcontext():
        for epoch in range(recipe.epochs):
            set_epoch_lr(opt, initial, recipe, epoch)
            order = torch.randperm(n, generator=generator).to(y.device)
            for start, xb in zip(range(0, n, recipe.batch_size), batches(x, order, recipe.batch_size)):
                idx = order[start : start + recipe.batch_size]
                xb = xb.to(y.device, non_blocking=True)
                if augment is not None:
                    xb = augment(xb, generator)
                yb, wb, share = y[idx], None if weights is None else weights[idx], 1.0
                if sharded:  # this process's part of the global batch, weighted by its share of it
                    part = distributed.shard(len(idx))
                    share = float(wb[part].sum() / wb.sum()) if wb is not None else len(idx[part]) / len(idx)
                    xb, yb, wb = xb[part], yb[part], None if wb is None else wb[part]
                tb = None
                if teacher is not None and len(xb):
                    with torch.no_grad():
                        tb = teacher(xb)

                def closure(xb=xb, yb=yb, wb=wb, tb=tb, share=share) -> torch.Tensor:
                    opt.zero_grad(set_to_none=True)
                    if not len(xb):  # an empty shard still joins the all-reduce, with zero gradients
                        loss = sum(p.sum() for p in model.parameters()) * 0.0
                    else:
                        out = forward(xb)
                        loss = (
                            classification_loss(out, yb, wb)
                            if tb is None
                            else distillation_loss(out, tb, temperature, wb)
                        )
                    (loss * share if sharded else loss).backward()
                    distributed.sum_gradients(model)
                    return loss

                opt.step(closure)
            if on_epoch_end is not None:
                on_epoch_end(epoch, model)
            if progress is not None:
                progress(1)
    return model


def compiled(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` compiled for training (``torch.compile``, static shapes), its parameters moved
    in place to the channels-last layout that inductor's CPU convolutions produce: in the
    default layout the eager convolution backward copies every incoming gradient (a fifth of a
    compiled ConvNet step in the profile)."""
    model.to(memory_format=torch.channels_last)
    return torch.compile(model, dynamic=False)


def compile_wanted(device: torch.device, steps: int, pays: bool = True) -> bool:
    """Whether a training run of ``steps`` SGD steps compiles its network: ``DD_BENCH_COMPILE=1``
    or ``0`` decides; unset, the CPU compiles from :data:`COMPILE_MIN_STEPS` steps where it
    ``pays`` for the network (``ModelSpec.compile_on_cpu``; expert and teacher networks are
    ConvNets in every shipped preset), and CUDA does not (not yet measured there)."""
    setting = compile_setting()
    if setting != "auto":
        return setting == "1"
    return pays and torch.device(device).type == "cpu" and steps >= COMPILE_MIN_STEPS


def can_train_batched(model: nn.Module) -> bool:
    """Whether networks like ``model`` can train as one vmapped network: no buffers (BatchNorm
    statistics would be updated in place under vmap) and no dropout (it would draw from the
    global RNG, not the network's generator)."""
    has_dropout = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())
    return next(model.buffers(), None) is None and not has_dropout


def train_classifiers(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainRecipe,
    generators: Sequence[torch.Generator],
    *,
    weights: torch.Tensor | None = None,
    augment: Augment | None = None,
    batched: bool = True,
    progress: Callable[[int], None] | None = None,
    teacher: Callable[[torch.Tensor], torch.Tensor] | None = None,
    temperature: float = 1.0,
    compile: bool = False,
) -> list[nn.Module]:
    """Train several networks of one architecture, each with its own generator, as
    ``train_classifier`` would one after another, in place.

    Batched (when ``batched`` and :func:`can_train_batched`), each step is one call of the
    networks stacked with ``torch.func`` (``stack_module_state`` + ``vmap`` over
    ``functional_call``), so small sets pay the per-step overhead once, not once per network.
    Each network still draws its own batch order and DSA parameters from its own generator,
    in the same order, and SGD acts element-wise, so the results equal sequential training to
    float tolerance (convolutions run grouped, summing in another order). With a ``teacher``
    (the teacher label protocol) the networks train in turn: the teacher labels each
    network's own augmented batch, which a vmapped step would have to call once per network anyway.
    ``compile``: networks trained in turn run compiled (see :func:`train_classifier`); the
    compiled graph is shared, so only the first network pays for compiling.
    """
    if len(models) != len(generators):
        raise ValueError(f"{len(models)} models but {len(generators)} generators")
    if (
        teacher is not None
        or distributed.world_size() > 1
        or not (batched and len(models) > 1 and can_train_batched(models[0]))
    ):
        return [
            train_classifier(
                m,
                x,
                y,
                recipe,
                g,
                weights=weights,
                augment=augment,
                progress=progress,
                teacher=teacher,
                temperature=temperature,
                compile=compile,
            )
            for m, g in zip(models, generators)
        ]
    params, _ = stack_module_state(list(models))
    skeleton = copy.deepcopy(models[0]).to("meta")
    skeleton.train()
    forward = vmap(lambda p, xb: functional_call(skeleton, p, (xb,)))
    opt = recipe.make_optimizer(params.values())
    initial = [group["lr"] for group in opt.param_groups]
    n = x.shape[0]
    for epoch in range(recipe.epochs):
        set_epoch_lr(opt, initial, recipe, epoch)
        orders = [torch.randperm(n, generator=g).to(x.device) for g in generators]
        for start in range(0, n, recipe.batch_size):
            idxs = [order[start : start + recipe.batch_size] for order in orders]
            xb = torch.stack([x[i] if augment is None else augment(x[i], g) for i, g in zip(idxs, generators)])
            logits = forward(params, xb)
            loss = sum(
                classification_loss(out, y[i], None if weights is None else weights[i]) for out, i in zip(logits, idxs)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress is not None:
            progress(len(models))
    with torch.no_grad():
        for k, model in enumerate(models):
            for name, p in model.named_parameters():
                p.copy_(params[name][k])
    return list(models)


def accuracy(model: nn.Module, x: Images, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent; ``x`` may live on the CPU or be streamed, batches move to the model's device.
    Batches of 256 (the decoupled papers' test batch) bound the forward pass's memory at any image size."""
    return class_accuracy(model, x, y, int(y.max()) + 1 if len(y) else 1, batch_size)[0]


@torch.inference_mode()
def class_accuracy(
    model: nn.Module, x: Images, y: torch.Tensor, num_classes: int, batch_size: int = 256
) -> tuple[float, tuple[float, ...]]:
    """Top-1 accuracy in percent over all images and per class (nan for a class with no image):
    the per-class figures show which classes a distilled set fails to carry."""
    device = next(model.parameters()).device
    model.eval()
    counts = torch.zeros(2, num_classes, dtype=torch.float64, device=device)  # correct, seen
    positions = torch.arange(x.shape[0])[distributed.shard(x.shape[0])]  # all of them in one process
    for xb, yb in zip(batches(x, positions, batch_size), y[positions.to(y.device)].split(batch_size)):
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        hit = model(xb).argmax(1) == yb
        counts[0] += torch.bincount(yb[hit], minlength=num_classes)[:num_classes]
        counts[1] += torch.bincount(yb, minlength=num_classes)[:num_classes]
    correct, seen = distributed.sum_counts(counts).cpu()
    per_class = torch.where(seen > 0, 100.0 * correct / seen.clamp(min=1), torch.nan)
    return float(100.0 * correct.sum() / max(1, x.shape[0])), tuple(per_class.tolist())
