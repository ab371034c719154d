"""FTD: flat trajectory distillation (Du et al., "Minimizing the Accumulated Trajectory Error to
Improve Dataset Distillation", CVPR 2023).

What makes FTD more than MTT:

* **Flat experts.** Expert trajectories are trained with GSAM (``gsam.py``), a sharpness-aware
  optimizer, so the student matches a flat trajectory and accumulates less error. The plugin
  registers the optimizer as ``gsam`` (``dd-bench buffer --optimizer gsam``); its buffers are
  cached apart from SGD's because the cache key holds the optimizer's name and options.
* **EMA of the synthetic images.** After every image update the matcher keeps
  ``ema <- decay * ema + (1 - decay) * images`` (the reference's ``ModelEmaV2``, started from
  the initial images, updated after each step). The result carries the EMA images when
  ``use_ema`` (the paper's choice, default) and the raw ones otherwise.

Raw and EMA images both come back: the set's ``metadata["ftd_alternate_images"]`` holds the
other kind (a tensor, so the file still loads with ``weights_only=True``) and
``metadata["ftd_images"]`` says which kind the set carries. ``alternate_set(syn)`` (or
``python -m dd_bench_ftd alternate IN OUT``) turns it into a set of its own, so each kind is
saved and evaluated with fresh networks (the reference evaluated the EMA images on the
network it had already trained on the raw ones). ``keep_alternate=false`` drops the copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from dd_bench.plugin import (
    ConfigError,
    DataError,
    DistillerSpec,
    DistillRequest,
    FormatSpec,
    MatchingConfig,
    OptimizerSpec,
    SyntheticSet,
    TrajectoryMatcher,
    hookimpl,
)

from . import formats, reported
from .gsam import GSAM, GSAM_DEFAULTS, build_gsam, check_options

__all__ = ["FTD", "FTDConfig", "GSAM", "GSAM_DEFAULTS", "PRESETS", "alternate_set", "build_gsam", "distill"]

ALTERNATE_KEY = "ftd_alternate_images"
KIND_KEY = "ftd_images"
EXPERT_OPTIMIZERS = ("gsam", "sgd")


@dataclass(frozen=True)
class FTDConfig(MatchingConfig):
    """MTT's hyper-parameters (``MatchingConfig``) plus FTD's flat experts and image EMA."""

    expert_optimizer: str = "gsam"
    """``gsam`` (flat experts, the method) or ``sgd`` (an ablation: MTT's experts)."""
    rho: float = GSAM_DEFAULTS["rho"]
    """GSAM perturbation radius (constant)."""
    gsam_alpha: float = GSAM_DEFAULTS["alpha"]
    """GSAM surrogate-gap weight: the share of the orthogonal gradient component removed."""
    adaptive: bool = GSAM_DEFAULTS["adaptive"]
    """GSAM adaptive (ASAM-style, weight-scaled) perturbation."""
    ema_decay: float = 0.999
    """EMA decay of the synthetic images (the reference's default; presets use the paper's)."""
    use_ema: bool = True
    """The result carries the EMA images (else the raw ones); the other kind goes to metadata."""
    keep_alternate: bool = True
    """Store the other kind of images in ``metadata['ftd_alternate_images']``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.expert_optimizer not in EXPERT_OPTIMIZERS:
            raise ConfigError(
                f"expert_optimizer={self.expert_optimizer!r} is not allowed for ftd: use {' or '.join(EXPERT_OPTIMIZERS)}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay} is not allowed: use 0 <= ema_decay < 1")
        check_options(self.gsam_options(), "ftd")

    def gsam_options(self) -> dict[str, Any]:
        """The GSAM options, keyed as the ``gsam`` optimizer's defaults (part of the buffer cache key)."""
        return {"rho": self.rho, "alpha": self.gsam_alpha, "adaptive": self.adaptive}


class FTD(TrajectoryMatcher):
    """Trajectory matching on GSAM experts, with an EMA of the synthetic images."""

    method = "ftd"

    def __init__(self, request: DistillRequest):
        super().__init__(request)
        self.ema: torch.Tensor | None = None

    def expert_optimizer_options(self) -> dict[str, Any]:
        cfg: FTDConfig = self.config
        return cfg.gsam_options() if cfg.expert_optimizer == "gsam" else {}

    def setup(self) -> None:
        super().setup()
        self.ema = self.images.detach().clone()

    def after_update(self, iteration: int) -> None:
        with torch.no_grad():
            self.ema.mul_(self.config.ema_decay).add_(self.images.detach(), alpha=1.0 - self.config.ema_decay)

    def policy_state(self) -> dict[str, Any]:
        return {"ema": self.ema.detach().cpu().clone()}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        if "ema" not in state:
            raise DataError("ftd checkpoint has no EMA images; delete it to start over")
        with torch.no_grad():
            self.ema.copy_(state["ema"])

    def images_for_result(self) -> torch.Tensor:
        return (self.ema if self.config.use_ema else self.images).detach().clone()

    def result_metadata(self) -> dict[str, Any]:
        cfg: FTDConfig = self.config
        meta: dict[str, Any] = {
            KIND_KEY: "ema" if cfg.use_ema else "raw",
            "ema_decay": cfg.ema_decay,
        }
        if cfg.keep_alternate:
            other = self.images if cfg.use_ema else self.ema
            meta[ALTERNATE_KEY] = other.detach().cpu().clone()
        return meta


def distill(request: DistillRequest) -> SyntheticSet:
    return FTD(request).run()


def alternate_set(syn: SyntheticSet) -> SyntheticSet:
    """The same FTD run with the other kind of images (raw for an EMA set and vice versa).

    Labels, learned lr and normalisation are shared; the metadata records which kind it is
    and no longer holds a copy, so saving it stores one set of images.
    """
    other = syn.metadata.get(ALTERNATE_KEY)
    if not isinstance(other, torch.Tensor):
        raise DataError(
            f"synthetic set ({syn.method}) has no {ALTERNATE_KEY!r}: distil with ftd and keep_alternate=true"
        )
    kind = "raw" if syn.metadata.get(KIND_KEY) == "ema" else "ema"
    metadata = {k: v for k, v in syn.metadata.items() if k != ALTERNATE_KEY}
    metadata[KIND_KEY] = kind
    return dataclasses.replace(syn, images=other.clone(), metadata=metadata)


# ----------------------------------------------------------------------------- presets
#
# FTD's hyper-parameter table is an image in the reference repository (docs/parameters.png),
# not text. Two rows are confirmed by the repository's text:
#   CIFAR-100 IPC 10: Readme.md's command (syn_steps 20, expert_epochs 2, max_start_epoch 40,
#     ZCA, lr_img 1000, lr_lr 1e-5, lr_teacher 0.01, ema_decay 0.9995, 5000 iterations);
#   CIFAR-10 IPC 10: distill/run_distill.sh (syn_steps 30, expert_epochs 2, max_start_epoch 20,
#     ZCA, lr_img 100, lr_lr 1e-5, lr_teacher 0.001, ema_decay 0.9995, 5000 iterations).
# The other rows follow the paper's table as transcribed for dd-bench (MTT's matching settings
# with FTD's EMA decays); they could not be checked against text here: verify them against
# the paper before quoting numbers. Experts: 100 x 50 epochs with GSAM (rho 0.01); the
# per-setting GSAM alpha is not in the repository's text, so every preset keeps the
# reference code's default 0.4 (inside the 0.3..1 range the paper discusses).
_PAPER = {"num_experts": 100, "expert_train_epochs": 50, "iterations": 5000}

# constant_memory=True marks the presets whose unrolled student would not fit an 80 GB GPU
# (`python benchmarks/memory_estimate.py --presets`); it gives the same gradients, one step's graph at a time.
PRESETS: dict[str, dict[str, Any]] = {
    # End to end on digits in seconds: 10 iterations, so the decay is scaled to keep about
    # the paper's weight on the initial images (0.78^10 ~ 0.9995^5000 ~ 0.08).
    "smoke": {
        "iterations": 10,
        "syn_steps": 4,
        "expert_epochs": 1,
        "max_start_epoch": 2,
        "num_experts": 2,
        "expert_train_epochs": 2,
        "lr_img": 100.0,
        "lr_lr": 1e-6,
        "checkpoint_every": 5,
        "ema_decay": 0.78,
    },
    # The demo suite (digits, convnet_w32): MTT's demo matching (5-epoch experts, here with GSAM,
    # start epochs up to 4, 30 iterations), the decay scaled as smoke's (0.92^30 ~ 0.08). On
    # validation (IPC 10, seeds 0 and 1, 2 convnet_w32 networks x 40 epochs): 84.8%; the random
    # subset: 82.7%. The only candidate tried.
    "demo": {
        "iterations": 30,
        "syn_steps": 4,
        "expert_epochs": 1,
        "max_start_epoch": 4,
        "num_experts": 2,
        "expert_train_epochs": 5,
        "lr_img": 100.0,
        "lr_lr": 1e-6,
        "checkpoint_every": 10,
        "ema_decay": 0.92,
    },
    "cifar10-ipc1": {
        **_PAPER,
        "syn_steps": 50,
        "expert_epochs": 2,
        "max_start_epoch": 2,
        "zca": True,
        "lr_img": 100.0,
        "lr_lr": 1e-7,
        "lr_teacher": 0.01,
        "ema_decay": 0.9999,
    },
    # Confirmed by distill/run_distill.sh; its lr_teacher 0.001 is ten times MTT's 0.01 for
    # this row (kept as the reference ran it).
    "cifar10-ipc10": {
        **_PAPER,
        "syn_steps": 30,
        "expert_epochs": 2,
        "max_start_epoch": 20,
        "zca": True,
        "lr_img": 100.0,
        "lr_lr": 1e-5,
        "lr_teacher": 0.001,
        "ema_decay": 0.9995,
    },
    "cifar10-ipc50": {
        **_PAPER,
        "syn_steps": 30,
        "expert_epochs": 2,
        "max_start_epoch": 40,
        "zca": False,
        "lr_img": 1000.0,
        "lr_lr": 1e-5,
        "lr_teacher": 0.01,
        "ema_decay": 0.999,
    },
    "cifar100-ipc1": {
        **_PAPER,
        "syn_steps": 20,
        "expert_epochs": 3,
        "max_start_epoch": 20,
        "zca": True,
        "lr_img": 1000.0,
        "lr_lr": 1e-5,
        "lr_teacher": 0.01,
        "ema_decay": 0.9995,
    },
    # Confirmed by Readme.md.
    "cifar100-ipc10": {
        **_PAPER,
        "constant_memory": True,
        "syn_steps": 20,
        "expert_epochs": 2,
        "max_start_epoch": 40,
        "zca": True,
        "lr_img": 1000.0,
        "lr_lr": 1e-5,
        "lr_teacher": 0.01,
        "ema_decay": 0.9995,
    },
    "cifar100-ipc50": {
        **_PAPER,
        "syn_steps": 80,
        "expert_epochs": 2,
        "max_start_epoch": 40,
        "batch_syn": 125,
        "zca": True,
        "lr_img": 1000.0,
        "lr_lr": 1e-5,
        "lr_teacher": 0.01,
        "ema_decay": 0.999,
    },
    # Tiny-ImageNet: distil with --model convnet_d4 (matching settings as MTT's Tiny rows; no
    # IPC 50 row, as none could be confirmed for FTD).
    "tiny-ipc1": {
        **_PAPER,
        "syn_steps": 10,
        "expert_epochs": 2,
        "max_start_epoch": 40,
        "lr_img": 10000.0,
        "lr_lr": 1e-4,
        "lr_teacher": 0.01,
        "ema_decay": 0.999,
    },
    "tiny-ipc10": {
        **_PAPER,
        "constant_memory": True,
        "syn_steps": 20,
        "expert_epochs": 2,
        "max_start_epoch": 40,
        "lr_img": 10000.0,
        "lr_lr": 1e-4,
        "lr_teacher": 0.01,
        "ema_decay": 0.999,
    },
    # Fashion-MNIST (no paper values): MTT's fmnist presets with CIFAR-10's EMA decays, no ZCA.
    "fmnist-ipc1": {
        **_PAPER,
        "syn_steps": 50,
        "expert_epochs": 2,
        "max_start_epoch": 2,
        "lr_img": 100.0,
        "lr_lr": 1e-7,
        "lr_teacher": 0.01,
        "ema_decay": 0.9999,
    },
    "fmnist-ipc10": {
        **_PAPER,
        "syn_steps": 30,
        "expert_epochs": 2,
        "max_start_epoch": 10,
        "lr_img": 100.0,
        "lr_lr": 1e-5,
        "lr_teacher": 0.01,
        "ema_decay": 0.9995,
    },
    # Minutes on 2 CPU cores (Fashion-MNIST, --model convnet_w32): MTT's `cpu` matching budget
    # (100 iterations) on 2 GSAM experts x 5 epochs (two passes a step: about MTT's 3 SGD experts'
    # cost), the decay scaled to 100 iterations (0.975^100 ~ 0.9995^5000 ~ 0.08).
    "cpu": {
        "num_experts": 2,
        "expert_train_epochs": 5,
        "syn_steps": 20,
        "expert_epochs": 2,
        "max_start_epoch": 4,
        "iterations": 100,
        "lr_img": 100.0,
        "lr_lr": 1e-6,
        "lr_teacher": 0.01,
        "ema_decay": 0.975,
    },
    # `cpu` at IPC 1: MTT's `cpu-ipc1` budget (500 iterations), decay scaled (0.995^500 ~ 0.08).
    "cpu-ipc1": {
        "num_experts": 2,
        "expert_train_epochs": 5,
        "syn_steps": 20,
        "expert_epochs": 2,
        "max_start_epoch": 4,
        "iterations": 500,
        "lr_img": 100.0,
        "lr_lr": 1e-6,
        "lr_teacher": 0.01,
        "ema_decay": 0.995,
    },
}


@hookimpl
def ddb_register_optimizers() -> list[OptimizerSpec]:
    return [
        OptimizerSpec(
            name="gsam",
            build=build_gsam,
            defaults=dict(GSAM_DEFAULTS),
            description="GSAM (Zhuang et al. 2022) around SGD: FTD's flat experts",
        )
    ]


@hookimpl
def ddb_register_distillers() -> list[DistillerSpec]:
    return [
        DistillerSpec(
            name="ftd",
            config_cls=FTDConfig,
            distill=distill,
            presets=PRESETS,
            description="flat trajectory distillation: GSAM experts + EMA images (Du et al. 2023)",
            reported=reported.FTD,
            in_memory=True,
        )
    ]


@hookimpl
def ddb_register_formats() -> list[FormatSpec]:
    return [formats.FORMAT]
