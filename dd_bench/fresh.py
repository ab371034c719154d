"""Fresh-network matching: the engine that DC/DSA, DM, IDM, M3D and third-party matchers share.

Each iteration a method takes networks of the distillation architecture, newly initialised
(``fresh_network``) or kept by its own policy, compares per-class statistics of real and
synthetic batches under shared DSA draws (``class_batches``) and updates the synthetic
images. The statistic and its distance are the method's: a subclass of ``FreshMatcher``
implements ``step(iteration)``, returning the iteration's loss, and a config dataclass
extends ``FreshConfig``. The host holds what the methods share and nothing more: seeded real
batches, the shared augmentation draws, the penultimate features of any registered model
(``penultimate``) and the image optimiser; the loop around the step (checkpoints, the
NaN/exploding-loss guard, progress, the loss curve) is ``dd_bench.loop``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .augment import DEFAULT_STRATEGY, DSA, DSAParams
from .errors import ConfigError
from .loop import IterationLoop
from .specs import DistillRequest


@dataclass(frozen=True)
class FreshConfig:
    """What every fresh-network matcher has: the image optimiser, real batches, DSA, guard, checkpoints."""

    iterations: int = 1000
    lr_img: float = 0.1
    momentum_img: float = 0.5
    """SGD momentum of the synthetic images (0.5 in every reference)."""
    batch_real: int = 256
    """Real images per class per comparison (fewer when a class has fewer)."""
    init: Literal["real", "noise"] = "real"
    """Start from a seeded draw of real images per class, or from Gaussian noise."""
    dsa: bool = True
    dsa_strategy: str = DEFAULT_STRATEGY
    dsa_mode: Literal["single", "all"] = "single"
    """DSA's ``single`` (one op of the strategy per draw, the references' default) or ``all`` ops."""
    max_loss: float = 1e6
    """An iteration loss above this (or NaN) stops the run, which returns the last good set."""
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_real", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} is not allowed: use an integer >= 1")
        if not self.lr_img >= 0:
            raise ConfigError(f"lr_img={self.lr_img} is not allowed: use a number >= 0")
        if not 0 <= self.momentum_img < 1:
            raise ConfigError(f"momentum_img={self.momentum_img} is not allowed: use 0 <= momentum_img < 1")
        if not self.max_loss > 0:
            raise ConfigError(f"max_loss={self.max_loss} is not allowed: use a number > 0")
        DSA(self.dsa_strategy, DSAParams(mode=self.dsa_mode))  # an unknown op fails now, even while dsa is off

    def make_augment(self) -> DSA | None:
        return DSA(self.dsa_strategy, DSAParams(mode=self.dsa_mode)) if self.dsa else None


# ----------------------------------------------------------------------------- penultimate features


class Embedder:
    """The features a model's classifier reads, for any registered model.

    A model that defines a method ``embed(x)`` returning ``[N, D]`` features gets it called.
    Any other model runs its ordinary ``forward`` while a forward pre-hook on every
    ``nn.Linear`` records the input of the last one to run: the classifier's input, flattened
    to ``[N, D]``. A model with neither is refused in one line.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        embed = getattr(model, "embed", None)
        self._embed = embed if callable(embed) and not isinstance(embed, nn.Module) else None
        self._seen: Tensor | None = None
        if self._embed is None:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ConfigError(
                    f"{type(model).__name__} has no nn.Linear classifier and no embed(x) method, so its penultimate"
                    " features are unknown: give the model an embed(x) method returning the classifier's input"
                )
            for linear in linears:
                linear.register_forward_pre_hook(self._record)

    def _record(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._seen = args[0]

    def with_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``[N, D]`` and logits of ``x``, from one forward pass where the model allows."""
        if self._embed is not None:
            return self._embed(x).flatten(1), self.model(x)
        self._seen = None
        logits = self.model(x)
        if self._seen is None:
            raise ConfigError(
                f"{type(self.model).__name__}: no nn.Linear ran in forward; give the model an embed(x) method"
            )
        features, self._seen = self._seen.flatten(1), None
        return features, logits

    def __call__(self, x: Tensor) -> Tensor:
        if self._embed is not None:
            return self._embed(x).flatten(1)
        return self.with_logits(x)[0]


def penultimate(model: nn.Module) -> Embedder:
    """``penultimate(model)(x)``: the ``[N, D]`` features that feed ``model``'s classifier."""
    return Embedder(model)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether the model has batch norm, whose training-mode forward couples the samples of a batch."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# ----------------------------------------------------------------------------- the engine


class FreshMatcher(IterationLoop):
    """One distillation run: ``run()`` returns the SyntheticSet.

    A subclass sets ``method`` and implements ``step(iteration) -> float``, using the services
    below and ``update_images(loss)`` for each image update it makes. The shared loop
    (``dd_bench.loop``) checkpoints the images, the image optimiser, the generator, the losses
    and whatever ``policy_state`` adds, and stops a run whose loss or images go bad.
    """

    method = "fresh"
    factor = 1
    """The returned set's ``factor`` (``SyntheticSet``): > 1 for a method whose stored images each
    hold ``factor x factor`` training images (``dd_bench.synthetic.expand``)."""
    config: FreshConfig

    def __init__(self, request: DistillRequest):
        super().__init__(request)
        self.ipc = request.ipc
        self.num_classes = self.data.num_classes
        self.augment = self.config.make_augment()
        # read only; on the CPU the data's own tensor; a streamed split stays on disk
        self.train_x = self.data.train_x if self.data.streamed else self.data.train_x.to(self.device)
        self.class_indices = [self.data.indices_of_class(c) for c in range(self.num_classes)]

    # ------------------------------------------------------------------ what a method provides

    def step(self, iteration: int) -> float:
        """One iteration: update the images (``update_images``) and return the iteration's loss."""
        raise NotImplementedError

    def init_images(self) -> Tensor:
        """``ipc`` images per class in class order: a seeded draw of real images, or noise."""
        if self.config.init == "noise":
            return torch.randn((self.num_classes * self.ipc, *self.train_x.shape[1:]), generator=self.rng)
        return torch.cat([self.real_batch(c, self.ipc).cpu() for c in range(self.num_classes)])

    def result(self) -> tuple[Tensor, Tensor]:
        """The stored images and hard labels of the returned set, in the data's normalised space."""
        return self.images.detach(), self.labels

    # ------------------------------------------------------------------ services

    def fresh_network(self) -> nn.Module:
        """A newly initialised network of the distillation architecture, in training mode,
        seeded from the cell's generator."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.rng))
        return self.request.build_model(seed).train()

    def real_batch(self, c: int, n: int) -> Tensor:
        """``n`` real images of class ``c`` (all of them if the class has fewer), a seeded draw without replacement."""
        idx = self.class_indices[c]
        pick = idx[torch.randperm(len(idx), generator=self.rng)[:n]]
        return self._take(pick)

    def _take(self, pick: Tensor) -> Tensor:
        return self.train_x[pick.to(self.train_x.device)].to(self.device)

    def real_batch_any(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` real images of any class with their labels (a seeded draw without replacement)."""
        pick = torch.randperm(len(self.data.train_y), generator=self.rng)[:n]
        return self._take(pick), self.data.train_y[pick].to(self.device)

    def augment_pair(self, real: Tensor, syn: Tensor) -> tuple[Tensor, Tensor]:
        """Real and synthetic batches under one shared DSA draw (the same transform on every image of both)."""
        if self.augment is None:
            return real, syn
        seed = int(torch.randint(0, 2**62, (1,), generator=self.rng))
        return (
            self.augment(real, torch.Generator().manual_seed(seed), shared=True),
            self.augment(syn, torch.Generator().manual_seed(seed), shared=True),
        )

    def class_images(self, c: int) -> Tensor:
        """The synthetic images of class ``c`` (a view of the optimised tensor)."""
        return self.images[c * self.ipc : (c + 1) * self.ipc]

    def class_batches(self, synthetic: Callable[[int], Tensor] | None = None) -> Iterator[tuple[int, Tensor, Tensor]]:
        """Per class: ``(c, real, syn)`` with ``batch_real`` real images and ``synthetic(c)`` (default:
        ``class_images``) under one shared DSA draw. ``synthetic(c)`` is called when class ``c`` comes,
        so a method that updates the images per class sees its own updates."""
        synthetic = synthetic or self.class_images
        for c in range(self.num_classes):
            real = self.real_batch(c, self.config.batch_real)
            yield (c, *self.augment_pair(real, synthetic(c)))

    def update_images(self, loss: Tensor) -> None:
        """One step of the image optimiser on ``loss``."""
        self.opt_img.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.images])  # the networks' parameters need no gradient here
        self.opt_img.step()

    # ------------------------------------------------------------------ the loop's hooks

    def setup(self) -> None:
        cfg = self.config
        self.images = self.init_images().to(self.device).requires_grad_(True)
        self.labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(self.ipc)
        self.opt_img = torch.optim.SGD([self.images], lr=cfg.lr_img, momentum=cfg.momentum_img)

    def _run_state(self) -> dict[str, Any]:
        return {"images": self.images, "opt_img": self.opt_img.state_dict()}

    def _load_run_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"])
        self.opt_img.load_state_dict(state["opt_img"])

    def _snapshot(self, iteration: int) -> Tensor:
        """The images alone, on the device: they are all of the result, and copying a method's
        policy state (a queue of networks) every iteration would cost more than the step."""
        return self.images.detach().clone()

    def _roll_back(self, snapshot: Tensor) -> None:
        with torch.no_grad():
            self.images.copy_(snapshot)

    def _set_fields(self) -> dict[str, Any]:
        images, labels = self.result()
        return {"images": images.detach().cpu(), "labels": labels.cpu(), "factor": self.factor}
