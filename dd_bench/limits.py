"""Bounds on numbers a user gives, the same on the command line, in suites and in ``--set``.

A module of its own so that the command line can check arguments without importing torch.
"""

from __future__ import annotations

import sys

INT64_MAX = 2**63 - 1
"""Integers beyond 64 bits overflow torch; in a config they are typos, not budgets."""
FLOAT_MAX = sys.float_info.max
"""The largest finite float: ``abs(x) <= FLOAT_MAX`` fails for NaN and Inf alike."""
MAX_SEED = 2**32 - 1
"""Seeds are 0..MAX_SEED, as numpy's; ``DistillRequest.generator`` multiplies them and stays in 64 bits."""
MAX_SEED_COUNT = 1000
"""The most evaluation networks a count of seeds (``--seeds 3``, ``eval_seeds: 3``) may ask for."""
