"""Fixtures shared by the test modules: the built-in registry and the small datasets."""

from __future__ import annotations

import pytest
import torch

from dd_bench.specs import DataRequest, RealData
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
def digits_whole_classes(digits):
    """digits with 3 training images per class, so a real batch of 3 is the whole class."""
    keep = torch.cat([digits.indices_of_class(c)[:3] for c in range(digits.num_classes)])
    return RealData(
        digits.name,
        digits.train_x[keep],
        digits.train_y[keep],
        digits.val_x,
        digits.val_y,
        digits.test_x,
        digits.test_y,
        digits.mean,
        digits.std,
        digits.classes,
    )


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: intra-op threads only add overhead, and on a busy 2-core box 10x more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip, with the reason, where no CUDA GPU is visible."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
