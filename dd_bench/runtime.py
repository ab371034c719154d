"""Devices, seeded model construction and the environment a result was produced in."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
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


COMPILE_ENV = "DD_BENCH_COMPILE"


def compile_setting() -> str:
    """``DD_BENCH_COMPILE`` as given: ``"1"`` (always), ``"0"`` (never) or ``"auto"`` (unset);
    any other value is one :class:`ConfigError` line."""
    setting = os.environ.get(COMPILE_ENV, "")
    if setting not in ("", "0", "1"):
        raise ConfigError(
            f"{COMPILE_ENV}={setting!r} is not allowed: use 1 (compile), 0 (never) or leave it unset (auto)"
        )
    return setting or "auto"


def free_memory(device: torch.device) -> int | None:
    """Bytes this process can still take on ``device``: CUDA's free memory plus what torch's cache
    holds unused; on the CPU the kernel's ``MemAvailable``. None where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


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


DOWNLOAD_ENV = "DD_BENCH_DOWNLOAD"
"""``1`` (set by ``--download`` and a suite's ``data.download``): what is missing from the local
caches (pretrained weights) may be downloaded; otherwise nothing is."""


def downloads_allowed() -> bool:
    return os.environ.get(DOWNLOAD_ENV) == "1"


def default_cache_dir() -> Path:
    """Expert buffers, autoencoders and downloads: ``$DD_BENCH_CACHE`` or ``~/.cache/dd-bench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dd-bench")


@contextlib.contextmanager
def cache_lock(path: Path, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on ``path`` + ``.lock`` while a cache entry is built, so concurrent
    cells (Ray tasks, parallel runs) never build the same entry twice. Yields whether the
    lock is held: with ``wait=False`` it is False when another process holds it.
    The OS releases the lock when its holder dies, even by SIGKILL. (POSIX ``flock``;
    without ``fcntl`` nothing is locked.)
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield True
        return
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


DEVICE_FORMS = "auto, cpu, cuda or cuda:N"


def parse_device(name: str) -> torch.device | None:
    """Check a device name's form without touching any GPU (None for ``auto``).

    Only the CPU and CUDA are supported; the host that runs the work checks the GPU is there
    (``resolve_device``), so a CPU-only head node can drive GPU workers.
    """
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index not in (None, 0)):
        raise ConfigError(f"device={name!r} is not allowed: use {DEVICE_FORMS}")
    return device


def resolve_device(name: str = "auto", say: Callable[[str], None] | None = None) -> torch.device:
    """The device to run on, checked against this machine before any work.

    ``auto`` picks the first CUDA GPU when there is one, else the CPU; ``say`` (if given)
    is told which, and why when it falls back to the CPU.
    """
    device = parse_device(name)
    if device is None:
        reason = cuda_unavailable_reason()
        device = torch.device("cpu") if reason else torch.device("cuda", 0)
        if say is not None:
            picked = "cpu" if reason else f"cuda:0 ({torch.cuda.get_device_name(0)})"
            say(f"device auto: using {picked}" + (f" ({reason})" if reason else ""))
        return device
    if device.type == "cuda":
        reason = cuda_unavailable_reason()
        if reason:
            raise ConfigError(f"device={name!r} asked for, but {reason}: use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device={name!r} is not allowed: this machine has {count} CUDA GPU{'s' if count > 1 else ''}"
                f" (use cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})"
            )
    return device


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    if not torch.backends.cuda.is_built():
        return "this torch build has no CUDA support"
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return "no CUDA GPU is visible" + (f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else "")
    return None


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


CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"


def set_deterministic(enabled: bool = True) -> None:
    """Ask torch, cuDNN and cuBLAS for deterministic kernels (``--deterministic``), or stop asking.

    On the CPU dd-bench's runs are a function of their seeds already; on a GPU they are only
    with this set (slower kernels). An op with no deterministic CUDA kernel warns instead of
    failing the run (``warn_only``): in dd-bench that is the backward of DSA's scale and
    rotate (``grid_sample``) with respect to the images, so matching through those ops stays
    not bit-reproducible on a GPU; evaluation and expert training are. cuBLAS reads its
    setting when CUDA starts, so call this before the first GPU work.
    """
    if enabled:
        os.environ.setdefault(CUBLAS_ENV, ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled


def numeric_settings(device: torch.device) -> dict[str, Any]:
    """The settings that decide whether a result is bit-reproducible (recorded with every run):
    deterministic kernels, matmul precision, whether training may compile (``DD_BENCH_COMPILE``:
    compiled and eager training agree to float tolerance only), and on a GPU its libraries."""
    settings: dict[str, Any] = {
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "compile": compile_setting(),
    }
    if device.type == "cuda":
        settings.update(
            {
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "gpu": torch.cuda.get_device_name(device),
                "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                "cudnn_deterministic": torch.backends.cudnn.deterministic,
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "cublas_workspace_config": os.environ.get(CUBLAS_ENV),
            }
        )
    return settings


@functools.cache
def git_sha(cwd: Path | None = None) -> str | None:
    """HEAD of the checkout, read once per process: the code a long run imported, not a later commit.
    A tree copied without its ``.git`` (a lent GPU's) says its commit in ``$DD_BENCH_GIT_SHA``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        out = None
    sha = out.stdout.strip() if out is not None and out.returncode == 0 else ""
    return sha or os.environ.get("DD_BENCH_GIT_SHA") or None


def environment(device: torch.device) -> dict[str, Any]:
    """What every run records: versions, device, the numeric settings and code revision."""
    import torchvision

    return {
        "dd_bench": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "device_type": device.type,
        **numeric_settings(device),
        "git_sha": git_sha(),
    }
