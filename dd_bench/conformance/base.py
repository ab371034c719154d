"""What every conformance check shares: results, the run loop, seeded globals and the sandbox."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DDBenchError
from ..runtime import CACHE_ENV
from ..streaming import Images

PASS, FAIL, SKIP = "pass", "fail", "skip"
TIME_LIMIT = 60.0
"""Seconds one smoke run (one dataset, one IPC) may take on a quiet 2-core CPU; on a loaded machine the
limit grows with the load a reference workload measures at the same moment (:func:`load_factor`)."""
REFERENCE_QUIET_SECONDS = 0.20
"""What :func:`reference_seconds` takes on a quiet 2-core machine of the kind the developers and CI use
(median of 9 runs there with nothing else running: 0.20 s, range 0.19-0.23 s)."""
DISTILL_MODEL = "convnet_w32"
"""The distillation architecture of the smoke runs: the CPU-sized ConvNet the demo suite uses."""
SMOKE_RUNS = (("digits", 1), ("digits", 2), ("toy", 1), ("toy", 2))
GLOBAL_SEEDS = (11, 22)
"""Global torch/random/numpy seeds set before runs that must not depend on them."""
SPLIT_TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
CPU = torch.device("cpu")


Checks = list[tuple[str, Callable[[], tuple[bool, str]]]]
"""Named checks, run in order; each returns (passed, one-line reason)."""


@dataclass(frozen=True)
class CheckResult:
    """One check of one registered object, as ``dd-bench check-plugin`` prints it."""

    kind: str
    """``distiller``, ``model`` or ``dataset``."""
    name: str
    check: str
    status: str
    """``pass``, ``fail`` or ``skip``."""
    reason: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status != FAIL


class NotChecked(Exception):
    """A check that could not run because one it depends on failed."""


class Skip(Exception):
    """The object cannot be checked on this machine (a dataset whose files are missing)."""


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, DDBenchError) else f"{type(exc).__name__}: {text}"


def run_checks(kind: str, name: str, checks: Checks) -> list[CheckResult]:
    """Run ``checks`` in order; an unexpected exception fails that check with its message."""
    results = []
    for check, fn in checks:
        started = time.perf_counter()
        try:
            ok, reason = fn()
            status = PASS if ok else FAIL
        except Skip as exc:
            status, reason = SKIP, str(exc)
        except NotChecked as exc:
            status, reason = FAIL, f"not checked: {exc}"
        except Exception as exc:
            status, reason = FAIL, one_line(exc)
        results.append(CheckResult(kind, name, check, status, reason, round(time.perf_counter() - started, 3)))
    return results


def seed_globals(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


@contextlib.contextmanager
def global_rng_restored() -> Iterator[None]:
    """The checks reseed the global generators; the caller gets its own states back."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


class Sandbox:
    """Fresh folders for the working directory, ``$HOME``, ``$DD_BENCH_CACHE`` and the temp dir
    (``TMPDIR`` and ``tempfile.tempdir``) while distillers run.

    Any file left in them afterwards was written outside ``request.cache_dir`` (its own
    folders here) and the checks' output folder. Files written to other absolute paths are
    not seen.
    """

    WATCHED = {"cwd": ".", "home": "$HOME", "tmp": "$TMPDIR", "env-cache": f"${CACHE_ENV}"}

    def __enter__(self) -> Sandbox:
        self.root = Path(tempfile.mkdtemp(prefix="dd-bench-check-"))
        for name in (*self.WATCHED, "caches", "out"):
            (self.root / name).mkdir()
        self.out = self.root / "out"
        self._saved = (os.getcwd(), {k: os.environ.get(k) for k in ("HOME", CACHE_ENV, "TMPDIR")}, tempfile.tempdir)
        os.chdir(self.root / "cwd")
        os.environ.update(HOME=str(self.root / "home"), TMPDIR=str(self.root / "tmp"))
        os.environ[CACHE_ENV] = str(self.root / "env-cache")
        tempfile.tempdir = str(self.root / "tmp")
        return self

    def fresh_cache(self) -> Path:
        """A new, empty folder to pass as ``cache_dir``."""
        path = self.root / "caches" / str(len(list((self.root / "caches").iterdir())))
        path.mkdir()
        return path

    def stray_files(self) -> list[str]:
        return sorted(
            f"{label}/{path.relative_to(self.root / name)}"
            for name, label in self.WATCHED.items()
            for path in (self.root / name).rglob("*")
            if not path.is_dir()
        )

    def __exit__(self, *exc: object) -> None:
        cwd, env, tmp = self._saved
        os.chdir(cwd)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        tempfile.tempdir = tmp
        shutil.rmtree(self.root, ignore_errors=True)


def chunks(x: Images, size: int = 4096) -> Iterator[torch.Tensor]:
    """``x`` in consecutive batches (a streamed split is never read whole)."""
    for s in range(0, len(x), size):
        yield x[s : s + size].detach()


def moments(*images: Images) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of ``[N,C,H,W]`` images (all of ``images`` together), in float64."""
    count, total, squares = 0, 0.0, 0.0
    for x in images:
        for chunk in chunks(x):
            chunk = chunk.to(torch.float64)
            count += chunk.numel() // chunk.shape[1]
            total = total + chunk.sum(dim=(0, 2, 3))
            squares = squares + chunk.square().sum(dim=(0, 2, 3))
    mean = total / count
    return mean, (squares / count - mean.square()).clamp_min(0).sqrt()


def reference_seconds(steps: int = 100) -> float:
    """Seconds of a fixed, seeded workload (SGD steps of a small ConvNet on 64 digit-sized images), the
    yardstick the smoke time is measured against: it slows down with the machine's load as a smoke run does."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 10),
        )
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    started = 0.0
    for step in range(steps + 1):  # step 0 warms up (lazy initialisation is no measure of load)
        if step == 1:
            started = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return time.perf_counter() - started


def load_factor(seconds: float) -> float:
    """How many times slower than quiet this machine runs now, from a reference time (never below 1: a fast
    machine keeps the stated limit)."""
    return max(1.0, seconds / REFERENCE_QUIET_SECONDS)
