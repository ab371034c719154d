"""Pytest helpers for dd-bench and its plugin authors (loaded as the ``dd_bench`` pytest plugin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .plugins import Registry, get_plugin_manager


def make_registry(*plugins: Any, autoload: bool = False) -> Registry:
    """A fresh registry: the built-in plugins (and, with ``autoload``, installed ones) plus ``plugins``."""
    return Registry(get_plugin_manager(plugins, autoload=autoload))


@pytest.fixture
def ddb_registry_factory() -> Callable[..., Registry]:
    """Build a fresh ``Registry`` per call with inline plugins registered."""
    return make_registry
