"""Fixtures shared by the test modules: the built-in registry and the small datasets."""

from __future__ import annotations

import pytest
import torch

from dd_bench.specs import DataRequest
from dd_bench.testing import make_registry


@pytest.fixture(scope="module")
def registry():
    return make_registry()


@pytest.fixture(scope="module")
def toy(registry):
    return registry.dataset("toy").load(DataRequest())


@pytest.fixture(scope="module")
def digits(registry):
    return registry.dataset("digits").load(DataRequest())


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: intra-op threads only add overhead, and on a busy 2-core box 10x more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
