"""The wheel is the whole product: installed from it (not the source tree), ``dd-bench`` finds its
shipped suites and templates and plans the demo from an empty folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    tree = out / "tree"  # a copy, so no build/ folder of an earlier build leaks stale modules into the wheel
    shutil.copytree(
        ROOT, tree, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "leaderboards")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(tree)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("dd_bench-*.whl")
    return path


def test_the_wheel_ships_the_suites_and_the_page_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    suites = {Path(n).name for n in names if n.startswith("dd_bench/suites/")}
    assert {p.name for p in (ROOT / "dd_bench" / "suites").glob("*.yaml")} <= suites
    assert "demo.yaml" in suites
    templates = {p.relative_to(ROOT).as_posix() for p in (ROOT / "dd_bench" / "results" / "templates").glob("*.*")}
    assert templates <= set(names)


def test_an_installed_wheel_plans_the_demo_from_an_empty_folder(wheel, tmp_path):
    env_dir = tmp_path / "env"
    venv.create(
        env_dir, system_site_packages=True, with_pip=False
    )  # torch and the other dependencies from this machine
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import dd_bench; print(dd_bench.__file__)"],
        cwd=empty,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where).resolve().is_relative_to(env_dir.resolve()), f"dd_bench came from {where}, not the wheel"
    proc = subprocess.run(
        [str(env_dir / "bin" / "dd-bench"), "run", "demo", "--plan"], cwd=empty, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "cells on cpu" in proc.stderr and "demo" not in str(list(empty.iterdir()))
