"""Pytest helpers for dd-bench and its plugin authors (loaded as the ``dd_bench`` pytest plugin)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from . import conformance
from .plugins import Registry, get_plugin_manager
from .specs import DatasetSpec, DistillerSpec, ModelSpec


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


def one_error_line(capsys: Any, argv: list[str]) -> str:
    """Run ``dd-bench argv``; assert it failed with exit 2 and one ``dd-bench: error:`` line, no
    traceback; return that line (``capsys``: pytest's fixture)."""
    from .cli import main

    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dd-bench: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def write_image_folder(root: Any, classes: Any = ("cat", "dog", "fox"), per_class: int = 6, val_per_class: int = 2,
                       size: tuple[int, int] = (12, 12), grey: bool = False, seed: int = 0) -> Any:
    """Write ``root/train/<class>/`` and ``root/val/<class>/`` of small PNG and JPEG images (alternating),
    whose pixels differ by class, for tests of folder datasets; returns ``root`` as a ``Path``."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    root, rng = Path(root), np.random.default_rng(seed)
    w, h = size
    for split, count in (("train", per_class), ("val", val_per_class)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = (rng.random((h, w) if grey else (h, w, 3)) * 60 + 190 * c / max(1, len(classes) - 1)).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:05d}.{'png' if i % 2 else 'jpg'}")
    return root


def make_registry(*plugins: Any, autoload: bool = False) -> Registry:
    """A fresh registry: the built-in plugins (and, with ``autoload``, installed ones) plus ``plugins``."""
    return Registry(get_plugin_manager(plugins, autoload=autoload))


@pytest.fixture
def ddb_registry_factory() -> Callable[..., Registry]:
    """Build a fresh ``Registry`` per call with inline plugins registered."""
    return make_registry


def _assert_conform(results: list[conformance.CheckResult]) -> list[conformance.CheckResult]:
    """Fail the test with every failing check's reason; skip it if nothing could be checked."""
    failed = [f"{r.kind} {r.name}: {r.check}: {r.reason}" for r in results if not r.passed]
    if failed:
        pytest.fail("\n".join(failed), pytrace=False)
    if all(r.status == conformance.SKIP for r in results):
        pytest.skip(results[0].reason)
    return results


def check_distiller(spec: DistillerSpec, registry: Registry | None = None, **options: Any) -> list[conformance.CheckResult]:
    """Run ``dd-bench check-plugin``'s distiller checks on ``spec``; fail the test on any failure.

    ``registry`` supplies digits, toy, the distillation model and expert optimizers (default:
    the built-ins); ``options`` are ``time_limit`` and ``model``.
    """
    return _assert_conform(conformance.distiller_checks(spec, registry or make_registry(), **options))


def check_model(spec: ModelSpec, registry: Registry | None = None) -> list[conformance.CheckResult]:
    """Run the model checks on ``spec`` (``registry`` supplies toy); fail the test on any failure."""
    return _assert_conform(conformance.model_checks(spec, registry or make_registry()))


def check_dataset(spec: DatasetSpec) -> list[conformance.CheckResult]:
    """Run the dataset checks on ``spec``; fail the test on any failure, skip it if the data is missing."""
    return _assert_conform(conformance.dataset_checks(spec))
