"""IDM: improved distribution matching (Zhao, Li, Qin & Yu, CVPR 2023).

Three changes to DM, each a policy here:

* **Partitioning and expansion** (``factor``): see ``expand``.
* **Enriched model sampling**: a queue of up to ``net_num`` networks. It starts with three
  fresh ones; every ``net_generate_interval`` iterations ``net_push_num`` fresh networks join
  (the oldest leave when it is full). Each iteration, ``fetch_net_num`` random queue members
  train ``model_train_steps`` steps on random real batches (SGD, ``lr_net``, momentum 0.9,
  weight decay 5e-4), so the queue holds networks at many stages of training; the matching
  uses ``train_net_num`` random members (in eval mode), not a new network.
* **Class-aware regularisation**: per class, the loss adds ``ce_weight`` x the member's
  accuracy on the real batches it trained on since the last reset (every ``acc_window``
  iterations) x the cross-entropy of its logits on the class's synthetic images. The
  reference weights by the accuracy in percent; here it is a fraction, so the reference's
  ``ce_weight`` 0.5 is 50.

As in the reference, the images take one optimiser step per class and the loss reported per
iteration is the sum over classes and members divided by the number of classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dd_bench.plugin import ConfigError, Embedder, penultimate

from .expand import ExpandConfig, ExpandedMatcher

INITIAL_QUEUE = 3
"""Networks in the queue before the first iteration (the reference's)."""


@dataclass(frozen=True)
class IDMConfig(ExpandConfig):
    """IDM's hyper-parameters (the reference's names); defaults: its CIFAR-10 IPC 10 command."""

    iterations: int = 20000
    lr_img: float = 0.2
    batch_real: int = 256
    net_num: int = 100
    """Most networks in the queue."""
    net_generate_interval: int = 30
    net_push_num: int = 1
    train_net_num: int = 1
    """Queue members the images are matched under, per iteration."""
    fetch_net_num: int = 2
    """Queue members trained on real data, per iteration."""
    model_train_steps: int = 10
    trained_bs: int = 256
    lr_net: float = 0.01
    ce_weight: float = 50.0
    """Weight of the class-aware cross-entropy, times the member's accuracy (a fraction)."""
    acc_window: int = 100
    """Iterations between resets of the members' accuracy counts (the reference's eval_interval)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        positive = ("net_num", "net_generate_interval", "net_push_num", "train_net_num", "trained_bs", "acc_window")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} is not allowed: use an integer >= 1")
        for name in ("fetch_net_num", "model_train_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} is not allowed: use an integer >= 0")
        for name in ("lr_net", "ce_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}={getattr(self, name)} is not allowed: use a number >= 0")


@dataclass
class Member:
    """A queue network, its optimiser and its accuracy counts since the last reset."""

    net: nn.Module
    opt: torch.optim.Optimizer
    embed: Embedder
    correct: int = 0
    seen: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.seen if self.seen else 0.0


class IDM(ExpandedMatcher):
    method = "idm"

    def __init__(self, request: Any):
        super().__init__(request)
        self.queue: list[Member] = []

    def _member(self, net: nn.Module) -> Member:
        opt = torch.optim.SGD(net.parameters(), lr=self.config.lr_net, momentum=0.9, weight_decay=5e-4)
        return Member(net, opt, penultimate(net))

    def _push(self, count: int) -> None:
        for _ in range(count):
            if len(self.queue) == self.config.net_num:
                self.queue.pop(0)
            self.queue.append(self._member(self.fresh_network()))

    def step(self, iteration: int) -> float:
        cfg: IDMConfig = self.config
        if not self.queue:
            self._push(min(INITIAL_QUEUE, cfg.net_num))
        if iteration % cfg.net_generate_interval == 0:
            self._push(cfg.net_push_num)
        if iteration and iteration % cfg.acc_window == 0:
            for member in self.queue:
                member.correct = member.seen = 0
        order = torch.randperm(len(self.queue), generator=self.rng).tolist()
        total = 0.0
        for member in [self.queue[i] for i in order[: cfg.train_net_num]]:
            member.net.eval()
            weight = cfg.ce_weight * member.accuracy
            for c, real, syn in self.class_batches(self.expanded_class):
                with torch.no_grad():
                    real_features = member.embed(real)
                syn_features, logits = member.embed.with_logits(syn)
                loss = (real_features.mean(0) - syn_features.mean(0)).square().sum()
                if weight:
                    loss = loss + weight * F.cross_entropy(logits, torch.full((len(syn),), c, device=self.device))
                self.update_images(loss)
                total += loss.item()
        order = torch.randperm(len(self.queue), generator=self.rng).tolist()
        for member in [self.queue[i] for i in order[: cfg.fetch_net_num]]:
            self._train_member(member)
        return total / self.num_classes

    def _train_member(self, member: Member) -> None:
        member.net.train()
        for _ in range(self.config.model_train_steps):
            x, y = self.real_batch_any(self.config.trained_bs)
            logits = member.net(x)
            member.opt.zero_grad(set_to_none=True)
            F.cross_entropy(logits, y).backward()
            member.opt.step()
            member.correct += int((logits.argmax(1) == y).sum())
            member.seen += len(y)

    def policy_state(self) -> dict[str, Any]:
        return {
            "queue": [
                {"net": m.net.state_dict(), "opt": m.opt.state_dict(), "correct": m.correct, "seen": m.seen}
                for m in self.queue
            ]
        }

    def load_policy_state(self, state: dict[str, Any]) -> None:
        self.queue = []
        for saved in state["queue"]:
            member = self._member(self.request.build_model(0))
            member.net.load_state_dict(saved["net"])
            member.opt.load_state_dict(saved["opt"])
            member.correct, member.seen = saved["correct"], saved["seen"]
            self.queue.append(member)

    def result_metadata(self) -> dict[str, Any]:
        return {**super().result_metadata(), "queue_size": len(self.queue)}
