"""The iteration loop both matching engines share (``dd_bench.loop``), on a toy engine: each
mechanism (checkpoints and resume, the checkpoint version, the guard, progress, the result and
its metadata) has a test that fails without it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from dd_bench.loop import CHECKPOINT_VERSION, IterationLoop, cpu_copy
from dd_bench.specs import DistillRequest

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class WalkConfig:
    iterations: int = 6
    max_loss: float = 1e6
    checkpoint_every: int = 2
    bad_at: int | None = None
    bad: str = "nan"
    """What goes wrong at ``bad_at``: a ``nan`` loss, a loss ``above`` max_loss, or ``inf`` images."""


class Walk(IterationLoop):
    """A seeded random walk of the images: a lost or repeated step changes the result. ``steps``
    (policy state) counts the walk's steps, ``calls`` the steps this object made."""

    method = "walk"

    def setup(self) -> None:
        self.images = torch.zeros(self.data.num_classes, len(self.data.mean), 2, 2)
        self.steps = self.calls = 0

    def step(self, iteration: int) -> float:
        self.images += torch.randn(self.images.shape, generator=self.rng)
        self.steps, self.calls = self.steps + 1, self.calls + 1
        loss, bad = float(self.images.abs().mean()), iteration == self.config.bad_at and self.config.bad
        if bad == "inf":
            self.images[0] = float("inf")  # after the loss, which stays finite
        return float("nan") if bad == "nan" else 2 * self.config.max_loss if bad == "above" else loss

    def _run_state(self) -> dict[str, Any]:
        return {"images": self.images}

    def _load_run_state(self, state: dict[str, Any]) -> None:
        self.images.copy_(state["images"])

    def policy_state(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]

    def _set_fields(self) -> dict[str, Any]:
        return {"images": self.images.clone(), "labels": torch.arange(self.data.num_classes)}

    def _run_metadata(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def result_metadata(self) -> dict[str, Any]:
        return {"steps": self.steps}


def walk(data, cache, log_metric=lambda name, value, step: None, progress=False, **config):
    request = DistillRequest(
        data=data,
        ipc=1,
        seed=0,
        config=WalkConfig(**config),
        device=torch.device("cpu"),
        model="none",
        build_model=None,
        cache_dir=cache,
        log_metric=log_metric,
        progress=progress,
    )
    return Walk(request).run()


def crash_at_3(name, value, step):
    if step == 3:
        raise KeyboardInterrupt


def test_a_crashed_run_resumes_from_its_checkpoint_to_the_uninterrupted_result(toy, tmp_path, capsys):
    straight = walk(toy, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        walk(toy, tmp_path / "b", log_metric=crash_at_3)
    (ckpt,) = (tmp_path / "b" / "checkpoints").glob("*")  # one file, no half-written one beside it
    saved = torch.load(ckpt, weights_only=True)
    assert saved["version"] == CHECKPOINT_VERSION and saved["iteration"] == 2 and saved["policy"] == {"steps": 2}
    capsys.readouterr()
    resumed = walk(toy, tmp_path / "b")
    assert "resuming walk from iteration 2" in capsys.readouterr().err
    assert resumed.metadata["calls"] == 4 and resumed.metadata["steps"] == 6  # four new steps on the two saved
    assert torch.equal(resumed.images, straight.images)
    assert resumed.metadata["matching_loss_first"] == straight.metadata["matching_loss_first"]
    assert not list((tmp_path / "b" / "checkpoints").glob("*"))  # a finished run leaves no checkpoint


def test_a_checkpoint_of_another_version_is_reported_and_the_run_starts_over(toy, tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        walk(toy, tmp_path, log_metric=crash_at_3)
    (ckpt,) = (tmp_path / "checkpoints").glob("*.pt")
    torch.save({**torch.load(ckpt, weights_only=True), "version": CHECKPOINT_VERSION + 1}, ckpt)
    capsys.readouterr()
    again = walk(toy, tmp_path)
    assert f"warning: ignoring checkpoint {ckpt}" in capsys.readouterr().err
    assert again.metadata["calls"] == 6


@pytest.mark.parametrize("bad", ["nan", "above", "inf"])
def test_a_bad_iteration_stops_the_run_with_the_set_the_last_good_one_started_from(toy, tmp_path, capsys, bad):
    logged = []
    stopped = walk(toy, tmp_path / "a", log_metric=lambda name, value, step: logged.append(value), bad_at=3, bad=bad)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: walk stopped at iteration 3" in err  # one line
    assert (
        stopped.metadata["stopped_early"]["iteration"] == 3 and stopped.metadata["stopped_early"]["kept_iteration"] == 2
    )
    two = walk(toy, tmp_path / "b", iterations=2)  # the set iteration 2 started from
    assert torch.equal(stopped.images, two.images) and stopped.metadata["steps"] == 2  # the whole state went back
    assert stopped.metadata["matching_loss_last"] == logged[-1] and len(logged) == 3  # the curve keeps its good losses
    assert not list((tmp_path / "a" / "checkpoints").glob("*"))


def test_a_first_iteration_that_fails_keeps_the_set_it_started_from(toy, tmp_path, capsys):
    stopped = walk(toy, tmp_path, bad_at=0)
    assert stopped.metadata["stopped_early"] == {"iteration": 0, "loss": "nan", "kept_iteration": 0}
    assert not stopped.images.any() and stopped.metadata["matching_loss_last"] is None


def test_progress_goes_to_stderr_only_when_asked(toy, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # tqdm shows itself on a terminal
    walk(toy, tmp_path / "a", progress=True)
    err = capsys.readouterr().err
    assert "walk" in err and "6/6" in err and "loss=" in err
    walk(toy, tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""


def test_the_result_carries_the_loss_curve_the_seconds_and_both_parties_metadata(toy, tmp_path):
    logged = []
    syn = walk(toy, tmp_path, log_metric=lambda name, value, step: logged.append((name, value, step)))
    assert [(name, step) for name, _, step in logged] == [("matching_loss", i) for i in range(6)]
    meta = syn.metadata
    assert (meta["matching_loss_first"], meta["matching_loss_last"]) == (logged[0][1], logged[-1][1])
    assert meta["matching_seconds"] >= 0 and meta["stopped_early"] is None
    assert meta["calls"] == 6 and meta["steps"] == 6  # the engine's and the method's entries
    assert (syn.method, syn.dataset, syn.ipc, syn.num_classes) == ("walk", toy.name, 1, toy.num_classes)


def test_a_cpu_copy_owns_its_memory():
    live = {"x": torch.zeros(2), "nested": [torch.ones(1)]}
    copied = cpu_copy(live)
    live["x"].add_(1)
    live["nested"][0].add_(1)
    assert not copied["x"].any() and copied["nested"][0].item() == 1
