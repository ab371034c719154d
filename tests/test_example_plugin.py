"""The plugin guide's example, installed as a third-party distribution and used by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dd_bench.testing import check_dataset, check_distiller, check_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dd-bench-example"


def test_guide_shows_the_example_files_verbatim():
    guide = (ROOT / "docs" / "writing-a-plugin.md").read_text()
    for path in (EXAMPLE / "pyproject.toml", EXAMPLE / "dd_bench_example" / "__init__.py"):
        assert path.read_text() in guide, f"docs/writing-a-plugin.md no longer shows {path.name}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    return target


def ddb(installed: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``dd-bench ARGS`` in a subprocess, with no time limit: a verdict must not depend on the machine's load."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DD_BENCH_")}
    # the installed example first, then whatever put the code under test on the path
    environ.update(PYTHONPATH=os.pathsep.join(filter(None, [str(installed), os.environ.get("PYTHONPATH")])), **env)
    return subprocess.run(
        [sys.executable, "-m", "dd_bench.cli", *args], cwd=cwd, env=environ, capture_output=True, text=True
    )


def test_installed_plugin_shows_up_with_its_distribution(installed, tmp_path):
    out = ddb(installed, "plugins", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    rows = {(kind, row["name"]): row for kind in listing for row in listing[kind]}
    for key in [("datasets", "stripes"), ("models", "tiny_mlp"), ("distillers", "class_means")]:
        assert rows[key]["distribution"] == "dd-bench-example" and rows[key]["version"] == "0.1.0"
        assert rows[key]["plugin"] == "example"
    assert rows[("distillers", "class_means")]["presets"] == ["default", "smoke"]
    assert rows[("distillers", "random")]["distribution"] == "dd-bench"


def test_autoload_off_keeps_only_builtins(installed, tmp_path):
    out = ddb(installed, "plugins", "--json", cwd=tmp_path, DD_BENCH_DISABLE_PLUGIN_AUTOLOAD="1")
    listing = json.loads(out.stdout)
    names = {row["name"] for rows in listing.values() for row in rows}
    assert "class_means" not in names and "stripes" not in names
    assert {"random", "digits", "convnet"} <= names


def test_plugin_is_usable_by_name_in_every_command(installed, tmp_path):
    out = ddb(
        installed,
        "distill",
        "--method",
        "class_means",
        "--dataset",
        "stripes",
        "--ipc",
        "2",
        "--preset",
        "smoke",
        "--out",
        "cm.pt",
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    out = ddb(
        installed,
        "evaluate",
        "cm.pt",
        "--models",
        "tiny_mlp,mlp",
        "--seeds",
        "2",
        "--epochs",
        "30",
        "--json",
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["method"] == "class_means" and report["dataset"] == "stripes" and report["ipc"] == 2
    assert set(report["results"]) == {"tiny_mlp", "mlp"}
    assert report["results"]["tiny_mlp"]["n"] == 2 and report["results"]["tiny_mlp"]["mean"] > 80


def test_registry_fixture_takes_the_plugin_module(installed, ddb_registry_factory, monkeypatch):
    monkeypatch.syspath_prepend(str(installed))
    import dd_bench_example

    registry = ddb_registry_factory(dd_bench_example)
    assert registry.distiller("class_means").presets["smoke"] == {"pool": 5}


def test_the_guide_s_conformance_helpers_pass_on_the_example(installed, ddb_registry_factory, monkeypatch):
    monkeypatch.syspath_prepend(str(installed))
    import dd_bench_example

    registry = ddb_registry_factory(dd_bench_example)
    check_distiller(registry.distiller("class_means"), registry)
    check_model(registry.model("tiny_mlp"), registry)
    check_dataset(registry.dataset("stripes"))


@pytest.mark.slow
def test_every_builtin_and_the_example_pass_check_plugin(installed, tmp_path):
    """What CI holds every plugin to: ``dd-bench check-plugin`` over everything loaded (minutes)."""
    out = ddb(installed, "check-plugin", "--json", cwd=tmp_path, DD_BENCH_CACHE=str(tmp_path / "cache"))
    report = json.loads(out.stdout)
    failed = [
        f"{r['kind']} {r['name']}: {r['check']}: {r['reason']}" for r in report["results"] if r["status"] == "fail"
    ]
    assert out.returncode == 0 and not failed, "\n".join(failed) or out.stderr
    checked = {(r["distribution"], r["kind"], r["name"]) for r in report["results"]}
    assert {
        ("dd-bench-example", "distiller", "class_means"),
        ("dd-bench", "distiller", "mtt"),
        ("dd-bench", "model", "convnet"),
        ("dd-bench", "dataset", "digits"),
    } <= checked
