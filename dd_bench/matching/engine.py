"""The trajectory-matching loop that MTT, FTD, DATM and third-party matchers share.

``TrajectoryMatcher`` runs the loop; a method is a subclass that overrides the policy
methods (``sample_expert``, ``start_epoch_bounds``, ``init_images``, ``init_labels``,
``skip_update``, ``after_update``, ``images_for_result``) and a config dataclass that extends
``MatchingConfig``. Hyper-parameter names and meanings follow the MTT paper.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from ..augment import DEFAULT_STRATEGY, DSA
from ..errors import ConfigError
from ..specs import DistillRequest
from ..synthetic import CACHE_BUILD_SECONDS, SyntheticSet, atomic_torch_save, read_checkpoint
from .buffers import ExpertBuffers, ExpertRecipe, ensure_buffers
from .instance_norm import with_cheap_instance_norm
from .student import FlatModel
from ..runtime import free_memory
from .memory import MEMORY_HEADROOM, estimate_memory
from .unroll import match

CHECKPOINT_VERSION = 1


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
    max_loss: float = 1e4
    """A matching loss above this (or NaN) stops the run, which returns the last good set."""
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        positive = ("iterations", "syn_steps", "expert_epochs", "num_experts", "expert_train_epochs", "expert_batch", "checkpoint_every")
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


def _to_cpu_copy(value: Any) -> Any:
    """A deep copy with every tensor detached, on the CPU and owning its memory."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu_copy(v) for v in value)
    return copy.deepcopy(value)


class TrajectoryMatcher:
    """One distillation run: ``run()`` returns the SyntheticSet.

    State that survives a restart (images, lr, labels, optimiser states, the generator, and
    whatever ``policy_state`` adds) is checkpointed atomically every ``checkpoint_every``
    iterations; a rerun of the same cell resumes from it. When the matching loss is not
    finite or above ``max_loss`` the run stops and returns the set of the last iteration
    whose loss was good, saying so in its metadata (``stopped_early``).
    """

    method = "matching"

    def __init__(self, request: DistillRequest):
        self.request = request
        self.config: MatchingConfig = request.config
        self.data = request.data
        self.device = request.device
        self.rng = request.generator()
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

    def policy_state(self) -> dict[str, Any]:
        return {}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        pass

    def images_for_result(self) -> torch.Tensor:
        return self.images.detach()

    def result_metadata(self) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ the loop

    def checkpoint_path(self) -> Path:
        return self.request.checkpoint_path(self.method)

    def _state(self, iteration: int) -> dict[str, Any]:
        """A copy of the run's state, on the CPU: nothing in it aliases the live tensors
        (``.cpu()`` of a CPU tensor and ``state_dict()`` return the live ones)."""
        state = {
            "version": CHECKPOINT_VERSION,
            "iteration": iteration,
            "device_type": self.device.type,
            "images": self.images,
            "labels": self.labels,
            "lr": self.syn_lr,
            "opt_img": self.opt_img.state_dict(),
            "opt_lr": self.opt_lr.state_dict(),
            "opt_labels": self.opt_labels.state_dict() if self.opt_labels else None,
            "rng": self.rng.get_state(),
            "losses": list(self.losses),
            "policy": self.policy_state(),
        }
        return _to_cpu_copy(state)

    def _restore(self, state: dict[str, Any]) -> int:
        with torch.no_grad():
            self.images.copy_(state["images"])
            self.labels.copy_(state["labels"])
            self.syn_lr.copy_(state["lr"])
        self.opt_img.load_state_dict(state["opt_img"])
        self.opt_lr.load_state_dict(state["opt_lr"])
        if self.opt_labels is not None and state["opt_labels"] is not None:
            self.opt_labels.load_state_dict(state["opt_labels"])
        self.rng.set_state(state["rng"])
        self.losses = list(state["losses"])
        self.load_policy_state(state["policy"])
        return state["iteration"]

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
        self.losses: list[float] = []
        self.last_good: dict[str, Any] | None = None
        self.stopped_early: dict[str, Any] | None = None
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
        print(f"{self.method}: the unrolled student needs {sizes} and {self.device} has {free / gib:.1f} GiB free:"
              " switching to constant_memory (same gradients, one step's graph at a time)", file=sys.stderr)
        return True

    def run(self) -> SyntheticSet:
        cfg = self.config
        self.setup()
        start_iteration = 0
        ckpt = self.checkpoint_path()
        state = read_checkpoint(ckpt, CHECKPOINT_VERSION)
        if state is not None:
            start_iteration = self._restore(state)
            print(f"resuming {self.method} from iteration {start_iteration} ({ckpt})", file=sys.stderr)
        n = self.images.shape[0]
        batch = cfg.batch_syn or n
        started = time.perf_counter()
        bar = tqdm(total=cfg.iterations, initial=start_iteration, desc=self.method, unit="it",
                   disable=None if self.request.progress else True, file=sys.stderr)
        for it in range(start_iteration, cfg.iterations):
            trajectory = self.buffers.trajectories[self.sample_expert(it)]
            low, high = self.start_epoch_bounds(it)
            start_epoch = int(torch.randint(low, high, (1,), generator=self.rng))
            start = trajectory[start_epoch].to(self.device, non_blocking=True)
            target = trajectory[start_epoch + cfg.expert_epochs].to(self.device, non_blocking=True)
            batches = self._batches(n, batch)
            seeds = torch.randint(0, 2**62, (cfg.syn_steps,), generator=self.rng).tolist()
            before = self._state(it)  # the state this iteration's loss is measured at
            for opt in (self.opt_img, self.opt_lr, self.opt_labels):
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
            loss = match(self.student, start, target, self.images, self.labels, self.syn_lr, batches, seeds,
                         self.augment, self.constant_memory).item()
            if not math.isfinite(loss) or loss > cfg.max_loss:
                self._stop_early(it, loss)
                break
            self.last_good = before
            self.losses.append(loss)
            self.request.log_metric("matching_loss", loss, it)
            if not self.skip_update(loss, it):
                self.opt_img.step()
                self.opt_lr.step()
                if self.opt_labels is not None:
                    self.opt_labels.step()
                with torch.no_grad():  # the learned lr must stay positive to be an lr
                    self.syn_lr.clamp_(min=1e-8)
                self.after_update(it)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.syn_lr.item():.4g}")
            if (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iterations:
                atomic_torch_save(self._state(it + 1), ckpt)
        bar.close()
        syn = self._result(time.perf_counter() - started)
        ckpt.unlink(missing_ok=True)
        return syn

    def _stop_early(self, iteration: int, loss: float) -> None:
        """Go back to the state of the last iteration whose loss was good (the start if none was)."""
        good = self.last_good
        if good is not None:
            self._restore(good)
        self.stopped_early = {
            "iteration": iteration,
            "loss": loss if math.isfinite(loss) else str(loss),
            "kept_iteration": good["iteration"] if good is not None else None,
        }
        kept = f"the set of iteration {good['iteration']}" if good is not None else "the initial set"
        print(f"warning: {self.method} stopped at iteration {iteration}: matching loss {loss:.4g} is not finite or above"
              f" max_loss={self.config.max_loss}; keeping {kept}. Lower lr_img/lr_lr.", file=sys.stderr)

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

    def _result(self, seconds: float) -> SyntheticSet:
        labels = self.labels.detach().cpu()
        return SyntheticSet(
            images=self.images_for_result().cpu(),
            labels=labels,
            num_classes=self.data.num_classes,
            dataset=self.data.name,
            method=self.method,
            ipc=self.request.ipc,
            mean=self.data.mean,
            std=self.data.std,
            zca=self.config.zca,
            lr=float(self.syn_lr.item()),
            metadata={
                "matching_loss_first": self.losses[0] if self.losses else None,
                "matching_loss_last": self.losses[-1] if self.losses else None,
                "matching_seconds": round(seconds, 3),
                "buffers": str(self.buffers.directory),
                "buffers_device_types": sorted(set(self.buffers.device_types)),
                "buffers_compiled": sorted(set(self.buffers.compiled)),
                "constant_memory": self.constant_memory,
                "stopped_early": self.stopped_early,
                "expert_optimizer": self.config.expert_optimizer,
                "expert_optimizer_options": self._resolved_expert_options(),
                CACHE_BUILD_SECONDS: round(self.buffers.trained_seconds, 3),
                **self.result_metadata(),
            },
        )
