"""Pytest helpers for dd-bench and its plugin authors (loaded as the ``dd_bench`` pytest plugin)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from .plugins import Registry, get_plugin_manager


TOY_SUITE: dict[str, Any] = {
    "name": "toy",
    "datasets": ["toy"],
    "ipcs": [1],
    "methods": {"random": {}, "full": {}},
    "default_preset": "smoke",
    "distill_model": "mlp",
    "eval_models": ["mlp"],
    "seeds": [0],
    "eval_seeds": 1,
    "eval": {"epochs": 1, "dsa": False},
}


def toy_suite_doc(**changes: Any) -> dict[str, Any]:
    """A suite document over the built-in ``toy`` dataset that runs in seconds, with ``changes`` applied."""
    return copy.deepcopy({**TOY_SUITE, **changes})


def make_registry(*plugins: Any, autoload: bool = False) -> Registry:
    """A fresh registry: the built-in plugins (and, with ``autoload``, installed ones) plus ``plugins``."""
    return Registry(get_plugin_manager(plugins, autoload=autoload))


@pytest.fixture
def ddb_registry_factory() -> Callable[..., Registry]:
    """Build a fresh ``Registry`` per call with inline plugins registered."""
    return make_registry
