"""dd-bench: a plugin-based benchmark suite for dataset distillation."""

import os
from importlib.metadata import PackageNotFoundError, version

import pluggy

# PyTorch backs CPU tensors of 2 MB and more with transparent huge pages when this is set
# before its first allocation (read once). The unrolled student allocates and frees gigabytes
# per iteration; glibc hands large blocks back to the kernel, which zero-fills them again on
# the next touch, 4 KB per page fault. Huge pages cut those faults 14x and a matching
# iteration 1.4x when the heap is not tuned (benchmarks/before_after.sh). "0" opts out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

try:
    __version__ = version("dd-bench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

PROJECT = "dd_bench"
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Decorate a plugin's hook implementations with this marker."""

__all__ = ["__version__", "hookimpl", "PROJECT"]
