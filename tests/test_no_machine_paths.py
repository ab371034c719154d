"""No committed page or benchmark result names a place on the machine that made it.

A path such as ``/work/runs/x/mlflow.db`` means nothing to a reader of the repository and tells
them how one machine was laid out; pages say paths relative to the checkout instead
(``results.provenance.from_cwd``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|tmp|root|home|Users)/[A-Za-z]")
"""An absolute path under a machine's usual roots (``/work/``, ``/tmp/``, ``/root/``, ``/home/``,
``/Users/``) followed by a name; not a URL's path (``example.org/tmp/x``: a name before it)."""
INLINE_IMAGE = re.compile(rb"data:image/png;base64,[A-Za-z0-9+/=]+")
"""Base64 images inside a page: random text that can spell anything, so not searched."""
OLD_PAGES = {"fmnist-cpu-long", "fmnist-labels-cpu"}
"""Pages rendered from stores outside the repository before this test: their commands name them."""


def committed(folder: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if line]


def folders() -> list[str]:
    pages = sorted({p.relative_to(ROOT).parts[1] for p in committed("leaderboards") if len(p.parts) > 1})
    return [f"leaderboards/{name}" for name in pages] + ["benchmarks/results"]


def machine_paths(path: Path) -> list[str]:
    text = INLINE_IMAGE.sub(b"", path.read_bytes()).decode("latin-1")
    return [text[m.start() : m.start() + 60].split()[0] for m in MACHINE_PATH.finditer(text)]


@pytest.mark.parametrize(
    "folder",
    [
        pytest.param(
            f,
            marks=pytest.mark.xfail(strict=False, reason="rebuilt at HEAD under issue 32 item 4")
            if Path(f).name in OLD_PAGES
            else (),
        )
        for f in folders()
    ],
)
def test_no_committed_result_names_a_place_on_a_machine(folder):
    found = {str(p.relative_to(ROOT)): hits for p in committed(folder) if (hits := machine_paths(p))}
    assert not found, found


def test_the_pattern_finds_machine_paths_and_only_them():
    hits = [
        s
        for s in ("sqlite:////work/runs/x/mlflow.db", "--cache-dir /tmp/cache", "in /home/me")
        if MACHINE_PATH.search(s)
    ]
    assert len(hits) == 3
    for text in ("https://example.org/tmp/x", "sqlite:///mlflow.db", "../runs/mlflow.db", "/tmp/", "a/home/b"):
        assert not MACHINE_PATH.search(text), text
