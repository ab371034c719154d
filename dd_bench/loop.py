"""The iteration loop that both matching engines share: fresh-network (``dd_bench.fresh``) and
trajectory matching (``dd_bench.matching``).

An engine is a subclass of ``IterationLoop`` that builds its state in ``setup()`` and makes one
iteration's updates in ``step(iteration)``, returning the iteration's loss. Around the step the
loop holds what every engine needs: atomic checkpoints that a rerun resumes from, the guard that
stops a run whose loss or images go bad, progress on stderr, the loss curve, the loop's seconds
and the SyntheticSet with its metadata.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .specs import DistillRequest
from .synthetic import SyntheticSet, atomic_torch_save, read_checkpoint

CHECKPOINT_VERSION = 1


def cpu_copy(value: Any) -> Any:
    """A deep copy with every tensor detached, on the CPU and owning its memory (``.cpu()`` of a
    CPU tensor and ``state_dict()`` return the live tensors, which the next step changes)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(v) for v in value)
    return copy.deepcopy(value)


class IterationLoop:
    """One distillation run of ``config.iterations`` steps: ``run()`` returns the SyntheticSet.

    The run's state (the engine's ``_run_state``, the generator, the losses and the method's
    ``policy_state``) is saved atomically every ``config.checkpoint_every`` iterations; a rerun
    of the same cell resumes from it, and the file goes when the run ends. An iteration whose
    loss is not finite or above ``config.max_loss``, or that leaves non-finite ``self.images``,
    stops the run, which returns the set the last good iteration started from and says so in one
    line and in ``metadata["stopped_early"]``.
    """

    method = "loop"
    stop_advice = "Lower lr_img."
    """The last words of the line that says the run stopped early."""
    config: Any
    """The method's config: the loop reads ``iterations``, ``max_loss`` and ``checkpoint_every``."""
    images: torch.Tensor
    """The optimised images (``setup`` makes them), which the guard checks."""

    def __init__(self, request: DistillRequest):
        self.request = request
        self.config = request.config
        self.data = request.data
        self.device = request.device
        self.rng = request.generator()
        self.losses: list[float] = []
        self.stopped_early: dict[str, Any] | None = None

    # ------------------------------------------------------------------ what an engine provides

    def setup(self) -> None:
        """Build the run's state, ``self.images`` among it, before any checkpoint is read."""
        raise NotImplementedError

    def step(self, iteration: int) -> float:
        """One iteration: update the state and return the iteration's loss."""
        raise NotImplementedError

    def _run_state(self) -> dict[str, Any]:
        """The engine's part of a checkpoint: its tensors and optimiser states (copied by the loop)."""
        raise NotImplementedError

    def _load_run_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _set_fields(self) -> dict[str, Any]:
        """The returned set's images, labels and the engine's other ``SyntheticSet`` fields."""
        raise NotImplementedError

    def _run_metadata(self) -> dict[str, Any]:
        """The engine's entries in the set's metadata."""
        return {}

    def _postfix(self) -> dict[str, str]:
        """What the progress bar shows besides the loss."""
        return {}

    def _snapshot(self, iteration: int) -> Any:
        """What the guard goes back to when an iteration fails: by default the whole state."""
        return self._state(iteration)

    def _roll_back(self, snapshot: Any) -> None:
        self._restore(snapshot)

    # ------------------------------------------------------------------ what a method may override

    def policy_state(self) -> dict[str, Any]:
        """What a method keeps across iterations (a model queue, an EMA), for checkpoints."""
        return {}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        pass

    def result_metadata(self) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_path(self) -> Path:
        return self.request.checkpoint_path(self.method)

    def _state(self, iteration: int) -> dict[str, Any]:
        """A copy of the run's state on the CPU: nothing in it aliases the live tensors."""
        return cpu_copy(
            {
                "version": CHECKPOINT_VERSION,
                "iteration": iteration,
                **self._run_state(),
                "rng": self.rng.get_state(),
                "losses": list(self.losses),
                "policy": self.policy_state(),
            }
        )

    def _restore(self, state: dict[str, Any]) -> int:
        self._load_run_state(state)
        self.rng.set_state(state["rng"])
        self.losses = list(state["losses"])
        self.load_policy_state(state["policy"])
        return state["iteration"]

    # ------------------------------------------------------------------ the loop

    def run(self) -> SyntheticSet:
        cfg = self.config
        self.setup()
        start = 0
        ckpt = self.checkpoint_path()
        state = read_checkpoint(ckpt, CHECKPOINT_VERSION)
        if state is not None:
            start = self._restore(state)
            print(f"resuming {self.method} from iteration {start} ({ckpt})", file=sys.stderr)
        last_good: tuple[int, Any] | None = None  # (iteration, the snapshot it started from)
        started = time.perf_counter()
        bar = tqdm(
            total=cfg.iterations,
            initial=start,
            desc=self.method,
            unit="it",
            disable=None if self.request.progress else True,
            file=sys.stderr,
        )
        for it in range(start, cfg.iterations):
            before = self._snapshot(it)
            loss = float(self.step(it))
            if not math.isfinite(loss) or loss > cfg.max_loss or not torch.isfinite(self.images).all():
                self._stop_early(it, loss, last_good or (it, before))
                break
            last_good = (it, before)
            self.losses.append(loss)
            self.request.log_metric("matching_loss", loss, it)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}", **self._postfix())
            if (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iterations:
                atomic_torch_save(self._state(it + 1), ckpt)
        bar.close()
        syn = self._result(time.perf_counter() - started)
        ckpt.unlink(missing_ok=True)
        return syn

    def _stop_early(self, iteration: int, loss: float, kept: tuple[int, Any]) -> None:
        """Go back to ``kept``: the state the last good iteration started from. The loss curve keeps
        every good loss, so its last one is the returned set's."""
        losses = self.losses
        self._roll_back(kept[1])
        self.losses = losses
        self.stopped_early = {
            "iteration": iteration,
            "loss": loss if math.isfinite(loss) else str(loss),
            "kept_iteration": kept[0],
        }
        print(
            f"warning: {self.method} stopped at iteration {iteration}: loss {loss:.4g} is not finite or above"
            f" max_loss={self.config.max_loss} (or the images are); keeping the set iteration {kept[0]} started from."
            f" {self.stop_advice}",
            file=sys.stderr,
        )

    def _result(self, seconds: float) -> SyntheticSet:
        return SyntheticSet(
            **self._set_fields(),
            num_classes=self.data.num_classes,
            dataset=self.data.name,
            method=self.method,
            ipc=self.request.ipc,
            mean=self.data.mean,
            std=self.data.std,
            metadata={
                "matching_loss_first": self.losses[0] if self.losses else None,
                "matching_loss_last": self.losses[-1] if self.losses else None,
                "matching_seconds": round(seconds, 3),
                "stopped_early": self.stopped_early,
                **self._run_metadata(),
                **self.result_metadata(),
            },
        )
