"""The command line as a user meets it: outputs, files, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dd_bench.cli import main
from dd_bench.synthetic import SyntheticSet

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plugins_json_lists_provenance_and_presets(capsys):
    code, out, _ = run(capsys, "plugins", "--json")
    listing = json.loads(out)
    assert code == 0 and set(listing) == {"datasets", "models", "distillers", "formats"}
    row = next(r for r in listing["distillers"] if r["name"] == "random")
    assert row["plugin"] == "baselines" and row["distribution"] == "dd-bench" and "smoke" in row["presets"]
    d4m = next(r for r in listing["distillers"] if r["name"] == "d4m")
    assert d4m["plugin"] == "oq" and d4m["module"] == "dd_bench_oq", "the listing says where D4M lives"
    assert {"name", "plugin", "distribution", "version", "description"} <= set(listing["datasets"][0])
    code, out, _ = run(capsys, "plugins")
    assert code == 0 and "digits" in out and "random" in out


def test_distill_then_evaluate_random_on_digits(capsys, tmp_path):
    syn_path = tmp_path / "syn.pt"
    code, _, err = run(
        capsys,
        "distill",
        "--method",
        "random",
        "--dataset",
        "digits",
        "--ipc",
        "2",
        "--seed",
        "0",
        "--out",
        str(syn_path),
        "--grid",
        str(tmp_path / "grid.png"),
        "--device",
        "cpu",
    )
    assert code == 0, err
    syn = SyntheticSet.load(syn_path)
    assert len(syn) == 20 and torch.bincount(syn.labels).tolist() == [2] * 10
    assert (tmp_path / "grid.png").exists()
    code, out, err = run(
        capsys,
        "evaluate",
        str(syn_path),
        "--models",
        "convnet,mlp",
        "--seeds",
        "2",
        "--epochs",
        "20",
        "--json",
        "--device",
        "cpu",
    )
    assert code == 0, err
    report = json.loads(out)
    assert (report["dataset"], report["ipc"], report["method"]) == ("digits", 2, "random")
    for name in ("convnet", "mlp"):
        r = report["results"][name]
        assert r["n"] == 2 and len(r["accs"]) == 2 and 10 < r["mean"] <= 100
        assert r["mean"] == pytest.approx(sum(r["accs"]) / 2)
    code, out, _ = run(
        capsys, "evaluate", str(syn_path), "--models", "mlp", "--seeds", "0,5", "--epochs", "5", "--no-dsa"
    )
    assert code == 0 and "mlp" in out and "n" in out


def test_same_seed_same_set_different_seed_different_set(capsys, tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert (
            run(
                capsys,
                "distill",
                "--method",
                "random",
                "--dataset",
                "toy",
                "--ipc",
                "3",
                "--seed",
                seed,
                "--out",
                str(tmp_path / f"{name}.pt"),
            )[0]
            == 0
        )
    a, b, c = (SyntheticSet.load(tmp_path / f"{n}.pt").images for n in "abc")
    assert torch.equal(a, b) and not torch.equal(a, c)


def corrupt(tmp_path: Path) -> str:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"\x00" * 64)
    return str(path)


def misfit(tmp_path: Path) -> str:
    syn = SyntheticSet(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]), 4, "digits", "random", 1, (0.0,), (1.0,))
    return str(syn.save(tmp_path / "misfit.pt"))


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["distill", "--method", "random", "--dataset", "digts", "--ipc", "1", "--out", "{tmp}/x.pt"],
            ["unknown dataset 'digts'", "did you mean 'digits'"],
        ),
        (
            ["distill", "--method", "randm", "--dataset", "digits", "--ipc", "1", "--out", "{tmp}/x.pt"],
            ["unknown method 'randm'", "'random'"],
        ),
        (
            ["distill", "--method", "random", "--dataset", "toy", "--ipc", "5000", "--out", "{tmp}/x.pt"],
            ["ipc=5000", "smallest class"],
        ),
        (
            [
                "distill",
                "--method",
                "random",
                "--dataset",
                "toy",
                "--ipc",
                "1",
                "--preset",
                "huge",
                "--out",
                "{tmp}/x.pt",
            ],
            ["unknown preset 'huge'", "smoke"],
        ),
        (
            [
                "distill",
                "--method",
                "random",
                "--dataset",
                "toy",
                "--ipc",
                "1",
                "--set",
                "steps=3",
                "--out",
                "{tmp}/x.pt",
            ],
            ["unknown setting steps"],
        ),
        (
            [
                "distill",
                "--method",
                "random",
                "--dataset",
                "cifar10",
                "--ipc",
                "1",
                "--data-root",
                "{tmp}/nodata",
                "--out",
                "{tmp}/x.pt",
            ],
            ["cifar10", "nodata", "is missing"],
        ),
        (["evaluate", "{tmp}/missing.pt"], ["missing.pt does not exist"]),
        (["evaluate", "{corrupt}"], ["not a dd-bench synthetic set"]),
        (["evaluate", "{misfit}", "--epochs", "1"], ["does not fit dataset digits"]),
        (["evaluate", "{misfit}", "--models", "convnett"], ["unknown model 'convnett'", "did you mean 'convnet'"]),
        (
            [
                "distill",
                "--method",
                "random",
                "--dataset",
                "toy",
                "--ipc",
                "1",
                "--device",
                "cuda:7",
                "--out",
                "{tmp}/x.pt",
            ],
            ["cuda:7"],
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, words):
    fill = {"tmp": str(tmp_path), "corrupt": corrupt(tmp_path), "misfit": misfit(tmp_path)}
    code, out, err = run(capsys, *[a.format(**fill) for a in argv])
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("dd-bench: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "x.pt").exists()


def test_traceback_flag_reraises(tmp_path):
    from dd_bench.errors import DataError

    with pytest.raises(DataError):
        main(["--traceback", "evaluate", str(tmp_path / "missing.pt")])


def test_argument_errors_exit_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "x.pt", "--seeds", "abc"])
    assert exc.value.code == 2 and "count from 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["distill", "--method", "random", "--dataset", "digits", "--ipc", "0", "--out", "x.pt"])
    assert exc.value.code == 2 and "--ipc: '0' is not allowed: use an integer >= 1" in capsys.readouterr().err


@pytest.mark.skipif(not FMNIST.exists(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_slice_end_to_end(capsys, tmp_path):
    syn_path = tmp_path / "fm.pt"
    code, _, err = run(
        capsys, "distill", "--method", "random", "--dataset", "fashion_mnist", "--ipc", "1", "--out", str(syn_path)
    )
    assert code == 0, err
    syn = SyntheticSet.load(syn_path)
    assert syn.images.shape == (10, 1, 28, 28)
    code, out, err = run(
        capsys, "evaluate", str(syn_path), "--models", "mlp", "--seeds", "1", "--epochs", "30", "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["results"]["mlp"]["mean"] > 20  # 10 classes: chance is 10%


def test_buffer_then_mtt_distill_reuses_the_experts(capsys, tmp_path):
    cache = str(tmp_path / "cache")
    code, out, err = run(
        capsys,
        "buffer",
        "--dataset",
        "toy",
        "--model",
        "convnet_w32",
        "--experts",
        "2",
        "--epochs",
        "2",
        "--cache-dir",
        cache,
        "--device",
        "cpu",
    )
    assert code == 0 and "2 experts x 2 epochs" in out and "training 2 expert(s)" in err
    code, _, err = run(
        capsys,
        "distill",
        "--method",
        "mtt",
        "--dataset",
        "toy",
        "--ipc",
        "2",
        "--preset",
        "smoke",
        "--set",
        "iterations=3",
        "--model",
        "convnet_w32",
        "--cache-dir",
        cache,
        "--out",
        str(tmp_path / "m.pt"),
    )
    assert code == 0 and "training" not in err, err  # the smoke preset's 2 experts x 2 epochs were already there
    syn = SyntheticSet.load(tmp_path / "m.pt")
    assert syn.method == "mtt" and syn.lr is not None
    code, _, err = run(capsys, "buffer", "--dataset", "toy", "--optimizer", "adamw", "--cache-dir", cache)
    assert code == 2 and "unknown expert optimizer 'adamw'" in err and "sgd" in err
