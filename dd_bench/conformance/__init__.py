"""Conformance checks: does a registered distiller, model or dataset keep the host's contract?

``dd-bench check-plugin`` runs them over loaded plugins and ``dd_bench.testing`` wraps them
for an author's own tests. Each check gives a :class:`CheckResult` with a one-line reason:
``pass``, ``fail``, or ``skip`` (only for a dataset whose files are not on this machine).
Everything runs on the CPU, from seeded generators, on the built-in ``digits`` and ``toy``.
"""

from .base import DISTILL_MODEL, FAIL, PASS, SKIP, TIME_LIMIT, CheckResult
from .datasets import dataset_checks
from .distillers import distiller_checks
from .models import model_checks

__all__ = [
    "DISTILL_MODEL",
    "FAIL",
    "PASS",
    "SKIP",
    "TIME_LIMIT",
    "CheckResult",
    "dataset_checks",
    "distiller_checks",
    "model_checks",
]
