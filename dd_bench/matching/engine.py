"""The trajectory-matching engine that MTT, FTD, DATM and third-party matchers share.

``TrajectoryMatcher`` makes one iteration's step (the shared loop around it is
``dd_bench.loop``'s); a method is a subclass that overrides the policy
methods (``sample_expert``, ``start_epoch_bounds``, ``init_images``, ``init_labels``,
``skip_update``, ``after_update``, ``images_for_result``) and a config dataclass that extends
``MatchingConfig``. Hyper-parameter names and meanings follow the MTT paper.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..augment import DEFAULT_STRATEGY, DSA
from ..errors import ConfigError
from ..loop import IterationLoop
from ..runtime import free_memory
from ..specs import DistillRequest
from ..synthetic import CACHE_BUILD_SECONDS
from .buffers import ExpertBuffers, ExpertRecipe, ensure_buffers, import_replay_buffers, replay_buffer_files
from .instance_norm import with_cheap_instance_norm
from .memory import MEMORY_HEADROOM, estimate_memory
from .student import FlatModel
from .unroll import match


@dataclass(frozen=True)
class MatchingConfig:
    """MTT's hyper-parameters (same names and meanings as the paper) plus the expert recipe."""

    iterations: int = 5000
    syn_steps: int = 20
    expert_epochs: int = 2
    max_start_epoch: int = 20
    min_start_epoch: int = 0
    lr_img: float = 1000.0
    lr_lr: float = 1e-5
    lr_teacher: float = 0.01
    """Initial value of the learnable synthetic learning rate."""
    batch_syn: int | None = None
    """Synthetic minibatch per student step; None = the whole set."""
    pix_init: Literal["real", "noise"] = "real"
    dsa: bool = True
    dsa_strategy: str = DEFAULT_STRATEGY
    zca: bool = False
    constant_memory: bool = False
    """Recompute each step in the backward walk: memory flat in syn_steps, same gradients."""
    num_experts: int = 10
    expert_train_epochs: int = 50
    expert_lr: float = 0.01
    expert_batch: int = 256
    expert_optimizer: str = "sgd"
    """A registered expert optimizer: sgd is built in, plugins add others (the ftd plugin: gsam)."""
    expert_files: str | None = None
    """A folder of ``replay_buffer_<n>.pt`` files that MTT's, FTD's or DATM's ``buffer.py`` wrote: their first
    ``num_experts`` trajectories are the experts (checked against the model; the set records the files' SHA-256)
    instead of training ours. They must have been trained as this config says (``zca`` included)."""
    max_loss: float = 1e4
    """A matching loss above this (or NaN) stops the run, which returns the last good set."""
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        positive = (
            "iterations",
            "syn_steps",
            "expert_epochs",
            "num_experts",
            "expert_train_epochs",
            "expert_batch",
            "checkpoint_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} is not allowed: use an integer >= 1")
        if self.batch_syn is not None and self.batch_syn < 1:
            raise ConfigError(f"batch_syn={self.batch_syn} is not allowed: use an integer >= 1 or none")
        for name in ("lr_img", "lr_lr", "lr_teacher"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}={getattr(self, name)} is not allowed: use a number >= 0")
        if not self.expert_lr > 0:
            raise ConfigError(f"expert_lr={self.expert_lr} is not allowed: use a number > 0")
        if not 0 <= self.min_start_epoch < self.max_start_epoch:
            raise ConfigError(
                f"start-epoch window [min_start_epoch={self.min_start_epoch}, max_start_epoch={self.max_start_epoch})"
                " is empty: use 0 <= min_start_epoch < max_start_epoch"
            )
        needed = self.max_start_epoch - 1 + self.expert_epochs
        if needed > self.expert_train_epochs:
            raise ConfigError(
                f"max_start_epoch={self.max_start_epoch} with expert_epochs={self.expert_epochs} needs experts trained for"
                f" {needed} epochs, but expert_train_epochs={self.expert_train_epochs}"
            )
        if not self.max_loss > 0:
            raise ConfigError(f"max_loss={self.max_loss} is not allowed: use a number > 0")
        DSA(self.dsa_strategy)  # an unknown op fails now, not after the experts have trained
        if self.expert_files is not None and not replay_buffer_files(Path(self.expert_files).expanduser()):
            raise ConfigError(
                f"expert_files={self.expert_files!r} is not allowed: it names no folder holding replay_buffer_<n>.pt"
                " files (give the folder MTT's, FTD's or DATM's buffer.py wrote)"
            )

    def expert_recipe(self, optimizer_options: Mapping[str, Any] | None = None) -> ExpertRecipe:
        return ExpertRecipe(
            epochs=self.expert_train_epochs,
            lr=self.expert_lr,
            batch_size=self.expert_batch,
            dsa=self.dsa,
            dsa_strategy=self.dsa_strategy,
            optimizer=self.expert_optimizer,
            optimizer_options=dict(optimizer_options or {}),
        )


class TrajectoryMatcher(IterationLoop):
    """One distillation run: ``run()`` returns the SyntheticSet.

    The shared loop (``dd_bench.loop``) checkpoints the images, lr, labels, optimiser states,
    the generator and whatever ``policy_state`` adds, and stops a run whose loss or images go
    bad, going back to the whole state the last good iteration started from.
    """

    method = "matching"
    stop_advice = "Lower lr_img/lr_lr."
    config: MatchingConfig

    def __init__(self, request: DistillRequest):
        super().__init__(request)
        self.augment = DSA(self.config.dsa_strategy) if self.config.dsa else None
        self.train_x = self.data.train_x
        if self.config.zca:
            from ..zca import fitted_zca

            self.train_x = fitted_zca(self.data, self.device, request.cache_dir).transform(self.data.train_x)
        self.student = FlatModel(with_cheap_instance_norm(request.build_model(0)))
        # resolved now, so an unknown name fails before any work
        self.expert_optimizer = request.expert_optimizer(self.config.expert_optimizer)
        self.buffers: ExpertBuffers | None = None

    # ------------------------------------------------------------------ policies

    def expert_optimizer_options(self) -> dict[str, Any]:
        """Options of the expert optimizer over its registered defaults (part of the buffer cache key)."""
        return {}

    def _resolved_expert_options(self) -> dict[str, Any]:
        spec = self.expert_optimizer
        return {**spec.defaults, **self.expert_optimizer_options()} if spec else {}

    def load_buffers(self) -> ExpertBuffers:
        cfg, spec = self.config, self.expert_optimizer
        if cfg.expert_files is not None:
            return import_replay_buffers(
                Path(cfg.expert_files).expanduser(), self.request.build_model(0), cfg.num_experts
            )
        return ensure_buffers(
            self.request.model,
            self.request.build_model,
            self.data,
            self.train_x,
            cfg.expert_recipe(self._resolved_expert_options()),
            cfg.num_experts,
            self.request.cache_dir,
            self.device,
            zca=cfg.zca,
            optimizer_factory=spec.build if spec else None,
            progress=self.request.progress,
        )

    def sample_expert(self, iteration: int) -> int:
        return int(torch.randint(len(self.buffers.trajectories), (1,), generator=self.rng))

    def start_epoch_bounds(self, iteration: int) -> tuple[int, int]:
        """Start epochs are drawn from ``[low, high)``."""
        return self.config.min_start_epoch, self.config.max_start_epoch

    def init_images(self) -> torch.Tensor:
        """``ipc`` images per class, real (a seeded random draw) or Gaussian noise."""
        ipc, k = self.request.ipc, self.data.num_classes
        if self.config.pix_init == "noise":
            return torch.randn((k * ipc, *self.train_x.shape[1:]), generator=self.rng)
        picks = []
        for c in range(k):
            idx = self.data.indices_of_class(c)
            picks.append(idx[torch.randperm(len(idx), generator=self.rng)[:ipc]])
        return self.train_x[torch.cat(picks)].clone()

    def init_labels(self, images: torch.Tensor) -> torch.Tensor:
        """Hard labels, ``ipc`` of each class in order; override for soft labels."""
        return torch.arange(self.data.num_classes).repeat_interleave(self.request.ipc)

    def label_optimizer(self, labels: torch.Tensor) -> torch.optim.Optimizer | None:
        """An optimiser for learnable labels (``labels`` then requires grad), else None."""
        return None

    def skip_update(self, loss: float, iteration: int) -> bool:
        return False

    def after_update(self, iteration: int) -> None:
        """Called after each update of the images (e.g. an EMA of them)."""

    def images_for_result(self) -> torch.Tensor:
        return self.images.detach()

    # ------------------------------------------------------------------ the loop's hooks

    def setup(self) -> None:
        cfg, device = self.config, self.device
        self.buffers = self.load_buffers()
        if self.buffers.epochs < cfg.max_start_epoch - 1 + cfg.expert_epochs:
            raise ConfigError(f"expert buffers in {self.buffers.directory} are too short for this config")
        if device.type == "cuda":  # the trajectories stay on the host; each iteration moves two vectors
            self.buffers.trajectories = [t.pin_memory() for t in self.buffers.trajectories]
        self.images = self.init_images().to(device).requires_grad_(True)
        self.labels = self.init_labels(self.images.detach()).to(device)
        self.opt_labels = self.label_optimizer(self.labels)
        self.syn_lr = torch.tensor(cfg.lr_teacher, device=device).requires_grad_(True)
        self.opt_img = torch.optim.SGD([self.images], lr=cfg.lr_img, momentum=0.5)
        self.opt_lr = torch.optim.SGD([self.syn_lr], lr=cfg.lr_lr, momentum=0.5)
        self.constant_memory = self._choose_memory_mode()

    def _choose_memory_mode(self) -> bool:
        """Unrolled when its estimated memory fits the device, else constant-memory (said), else an error."""
        cfg = self.config
        if cfg.constant_memory:
            return True
        batch = min(cfg.batch_syn or self.images.shape[0], self.images.shape[0])
        need = estimate_memory(self.student, self.images.detach(), self.labels, batch, cfg.syn_steps, self.augment)
        free = free_memory(self.device)
        if free is None or need.unrolled <= MEMORY_HEADROOM * free:
            return False
        gib = 2**30
        sizes = f"about {need.unrolled / gib:.1f} GiB unrolled, {need.constant / gib:.1f} GiB with constant_memory"
        if need.constant > MEMORY_HEADROOM * free:
            raise ConfigError(
                f"{self.method} needs {sizes}, but {self.device} has {free / gib:.1f} GiB free: lower batch_syn, syn_steps or ipc"
            )
        print(
            f"{self.method}: the unrolled student needs {sizes} and {self.device} has {free / gib:.1f} GiB free:"
            " switching to constant_memory (same gradients, one step's graph at a time)",
            file=sys.stderr,
        )
        return True

    def step(self, iteration: int) -> float:
        """Match a student unrolled on the synthetic set from a sampled expert epoch to the
        expert ``expert_epochs`` later, then update images, lr (and labels) unless a policy skips it."""
        cfg = self.config
        trajectory = self.buffers.trajectories[self.sample_expert(iteration)]
        low, high = self.start_epoch_bounds(iteration)
        start_epoch = int(torch.randint(low, high, (1,), generator=self.rng))
        start = trajectory[start_epoch].to(self.device, non_blocking=True)
        target = trajectory[start_epoch + cfg.expert_epochs].to(self.device, non_blocking=True)
        n = self.images.shape[0]
        batches = self._batches(n, cfg.batch_syn or n)
        seeds = torch.randint(0, 2**62, (cfg.syn_steps,), generator=self.rng).tolist()
        for opt in (self.opt_img, self.opt_lr, self.opt_labels):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        loss = match(
            self.student,
            start,
            target,
            self.images,
            self.labels,
            self.syn_lr,
            batches,
            seeds,
            self.augment,
            self.constant_memory,
        ).item()
        if not self.skip_update(loss, iteration):
            self.opt_img.step()
            self.opt_lr.step()
            if self.opt_labels is not None:
                self.opt_labels.step()
            with torch.no_grad():  # the learned lr must stay positive to be an lr
                self.syn_lr.clamp_(min=1e-8)
            self.after_update(iteration)
        return loss

    def _batches(self, n: int, batch: int) -> list[torch.Tensor]:
        """``syn_steps`` minibatches, walking seeded permutations of the set (as MTT does);
        drawn on the CPU and moved in one transfer per iteration (pinned, asynchronous on CUDA)."""
        per_perm = -(-n // batch)  # minibatches per permutation (the last may be short)
        perms = [torch.randperm(n, generator=self.rng) for _ in range(-(-self.config.syn_steps // per_perm))]
        order = torch.cat(perms)
        if self.device.type == "cuda":
            order = order.pin_memory()
        order = order.to(self.device, non_blocking=True)
        out = [chunk for start in range(0, len(order), n) for chunk in order[start : start + n].split(batch)]
        return out[: self.config.syn_steps]

    def _run_state(self) -> dict[str, Any]:
        return {
            "device_type": self.device.type,
            "images": self.images,
            "labels": self.labels,
            "lr": self.syn_lr,
            "opt_img": self.opt_img.state_dict(),
            "opt_lr": self.opt_lr.state_dict(),
            "opt_labels": self.opt_labels.state_dict() if self.opt_labels else None,
        }

    def _load_run_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"])
            self.labels.copy_(state["labels"])
            self.syn_lr.copy_(state["lr"])
        self.opt_img.load_state_dict(state["opt_img"])
        self.opt_lr.load_state_dict(state["opt_lr"])
        if self.opt_labels is not None and state["opt_labels"] is not None:
            self.opt_labels.load_state_dict(state["opt_labels"])

    def _postfix(self) -> dict[str, str]:
        return {"lr": f"{self.syn_lr.item():.4g}"}

    def _set_fields(self) -> dict[str, Any]:
        return {
            "images": self.images_for_result().cpu(),
            "labels": self.labels.detach().cpu(),
            "zca": self.config.zca,
            "lr": float(self.syn_lr.item()),
        }

    def _run_metadata(self) -> dict[str, Any]:
        return {
            "buffers": str(self.buffers.directory),
            "buffers_device_types": sorted(set(self.buffers.device_types)),
            "buffers_compiled": sorted(set(self.buffers.compiled)),
            "constant_memory": self.constant_memory,
            "expert_optimizer": self.config.expert_optimizer,
            "expert_optimizer_options": self._resolved_expert_options(),
            CACHE_BUILD_SECONDS: round(self.buffers.trained_seconds, 3),
            **({"buffers_imported": self.buffers.imported} if self.buffers.imported else {}),
        }
