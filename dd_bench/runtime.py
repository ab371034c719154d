"""Devices, seeded model construction and the environment a result was produced in."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .errors import ConfigError


CACHE_ENV = "DD_BENCH_CACHE"
ALLOCATOR_ENV = "DD_BENCH_DEFAULT_MALLOC"
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4  # glibc's mallopt parameters


def tune_cpu_allocator() -> bool:
    """Keep freed memory inside the process (glibc only; ``DD_BENCH_DEFAULT_MALLOC=1`` opts out).

    By default glibc maps every large tensor fresh and unmaps it when freed, so each student
    step page-faults its activations in again: on 2 CPU cores that is about half the time of
    a matching iteration. Serving them from a heap that is neither mmapped nor trimmed halves
    it, for about a quarter more peak memory (fragmentation; ``benchmarks/matching_speed.py
    --allocator default,tuned`` measures both). Returns whether the setting took effect.
    """
    libc = _glibc()
    if libc is None or os.environ.get(ALLOCATOR_ENV):
        return False
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 64 * 2**20))
    return all(libc.mallopt(key, value) == 1 for key, value in settings)


def release_free_memory() -> None:
    """Give the heap's free memory back to the OS (glibc), so that a peak-RSS reading taken
    next belongs to the work that follows, not to what earlier work left in the heap."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose malloc the two functions above tune), else None."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def default_cache_dir() -> Path:
    """Expert buffers, autoencoders and downloads: ``$DD_BENCH_CACHE`` or ``~/.cache/dd-bench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dd-bench")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when there is a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not allowed: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} asked for, but no CUDA GPU is available (use --device cpu)")
    return device


def seeded_build(build: Callable[[], nn.Module], seed: int, device: torch.device) -> nn.Module:
    """Build a model under ``seed`` without disturbing the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.to(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@functools.lru_cache(maxsize=None)
def git_sha(cwd: Path | None = None) -> str | None:
    """HEAD of the checkout, read once per process: the code a long run imported, not a later commit."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device) -> dict[str, Any]:
    """What every run records: versions, device and code revision."""
    import torchvision

    return {
        "dd_bench": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "git_sha": git_sha(),
    }
