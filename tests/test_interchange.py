"""Published sets in (dc, mtt, datm, image-folder, tensors) and ours out, written the way the source code writes them.

The method formats are their plugins' (tests/test_formats.py tests the mechanism)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dd_bench import api
from dd_bench.cli import main
from dd_bench.interchange import REFERENCE_NORMALIZATION, export_set, import_set
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import make_registry, one_error_line, write_image_folder
from dd_bench.zca import ZCA

MEAN = "0.5/0.25"  # a source normalisation unlike digits' own, so conversion is visible


@pytest.fixture(scope="module")
def digits():
    return api.load_data(make_registry(), "digits")


def real_subset(data, ipc: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` real images of every class, class-major, in [0, 1] pixels."""
    idx = torch.cat([data.indices_of_class(c)[offset : offset + ipc] for c in range(data.num_classes)])
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    return data.train_x[idx] * std + mean, data.train_y[idx]


def as_source(pixels: torch.Tensor, mean: float = 0.5, std: float = 0.25) -> torch.Tensor:
    return (pixels - mean) / std


def write_dc(path, experiments):
    """DC's ``torch.save({'data': data_save, 'accs_all_exps': accs_all_exps}, 'res_<method>_<data>_<model>_<ipc>ipc.pt')``."""
    accs = {"ConvNet": [np.float64(0.61), np.float64(0.63)]}  # DC keeps numpy floats
    torch.save({"data": [[x.clone(), y.clone()] for x, y in experiments], "accs_all_exps": accs}, path)
    return path


def test_dc_picks_the_last_experiment_by_default_and_converts_the_normalisation(tmp_path, digits):
    (a, ya), (b, yb) = real_subset(digits, 2), real_subset(digits, 2, offset=5)
    path = write_dc(tmp_path / "res_DM_digits_ConvNet_2ipc.pt", [(as_source(a), ya), (as_source(b), yb)])
    syn = import_set("dc", path, digits, 2, normalization=MEAN)
    first = import_set("dc", path, digits, 2, normalization=MEAN, experiment=0)
    assert (
        syn.method == "dm" and syn.metadata["source"]["experiment"] == 1 and first.metadata["source"]["experiment"] == 0
    )
    assert torch.allclose(syn.denormalized(), b, atol=1e-5) and torch.allclose(first.denormalized(), a, atol=1e-5)
    assert torch.equal(syn.labels, yb) and syn.mean == digits.mean and syn.ipc == 2
    assert not torch.allclose(syn.images, as_source(b), atol=1e-3)  # renormalised to the dataset's mean/std, not copied
    source = syn.metadata["source"]
    assert source["format"] == "dc" and len(source["sha256"]) == 64 and source["normalization"] == MEAN
    assert source["model"] == "ConvNet" and "then normalised" in source["converted"]


def test_dc_file_naming_another_ipc_is_refused(capsys, tmp_path, digits):
    x, y = real_subset(digits, 2)
    path = write_dc(tmp_path / "res_DM_digits_ConvNet_2ipc.pt", [(as_source(x), y)])
    line = one_error_line(
        capsys,
        [
            "import",
            "dc",
            str(path),
            "--dataset",
            "digits",
            "--ipc",
            "3",
            "--out",
            str(tmp_path / "s.pt"),
            "--normalization",
            MEAN,
        ],
    )
    assert "says 2 images per class" in line and not (tmp_path / "s.pt").exists()
    line = one_error_line(
        capsys,
        [
            "import",
            "dc",
            str(path),
            "--dataset",
            "digits",
            "--ipc",
            "2",
            "--out",
            str(tmp_path / "s.pt"),
            "--normalization",
            MEAN,
            "--experiment",
            "4",
        ],
    )
    assert "holds experiments 0-0" in line


def test_reference_normalisation_is_the_references_table():
    assert REFERENCE_NORMALIZATION["cifar10"] == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert REFERENCE_NORMALIZATION["fashion_mnist"] == ((0.2861,), (0.3530,))


def test_mtt_folder_takes_the_best_set_and_a_learned_lr_given_by_hand(tmp_path, digits):
    x, y = real_subset(digits, 1)
    torch.save(as_source(x) + 1.0, tmp_path / "images_500.pt")
    torch.save(y, tmp_path / "labels_500.pt")
    torch.save(as_source(x), tmp_path / "images_best.pt")
    torch.save(y, tmp_path / "labels_best.pt")
    torch.save(as_source(x) * 0, tmp_path / "images_zca_500.pt")  # MTT's inverse-whitened copy: not a set
    syn = import_set("mtt", tmp_path, digits, 1, normalization=MEAN, lr=0.02)
    assert torch.allclose(syn.denormalized(), x, atol=1e-5) and syn.metadata["source"]["iteration"] == "best"
    assert syn.lr == 0.02 and syn.method == "mtt" and not syn.soft_labels
    assert (
        import_set("mtt", tmp_path / "images_500.pt", digits, 1, normalization=MEAN).metadata["source"]["iteration"]
        == "500"
    )


def test_datm_folder_carries_soft_logits_and_its_saved_lr(tmp_path, digits):
    x, y = real_subset(digits, 1)
    normal = tmp_path / "Normal"
    normal.mkdir()
    logits = torch.nn.functional.one_hot(y, 10).float() * 5 + torch.randn(
        10, 10, generator=torch.Generator().manual_seed(0)
    )
    torch.save(as_source(x), normal / "images_best.pt")
    torch.save(logits, normal / "labels_best.pt")
    torch.save(torch.tensor(0.0123), normal / "lr_best.pt")
    syn = import_set("datm", tmp_path, digits, 1, normalization=MEAN)
    assert syn.soft_labels and torch.equal(syn.labels, logits) and syn.lr == pytest.approx(0.0123)
    assert syn.metadata["source"]["files"] == 3


def test_zca_sets_are_flagged_and_the_flag_is_checked_against_their_statistics(tmp_path, digits):
    x, y = real_subset(digits, 2)
    zca = ZCA.fit(digits.train_x)
    whitened = zca.transform(
        (x - torch.tensor(digits.mean).view(1, -1, 1, 1)) / torch.tensor(digits.std).view(1, -1, 1, 1)
    )
    torch.save(whitened, tmp_path / "images_best.pt")
    torch.save(y, tmp_path / "labels_best.pt")
    warnings: list[str] = []  # lr given: only the ZCA check speaks (without one, mtt warns that it uses the default)
    syn = import_set("mtt", tmp_path, digits, 2, normalization="dataset", zca=True, lr=0.01, warn=warnings.append)
    assert syn.zca and torch.equal(syn.images, whitened) and warnings == []
    import_set("mtt", tmp_path, digits, 2, normalization="dataset", lr=0.01, warn=warnings.append)
    assert len(warnings) == 1 and "looks ZCA-whitened" in warnings[0]
    plain = tmp_path / "plain"
    plain.mkdir()
    torch.save(as_source(x), plain / "images_best.pt")
    torch.save(y, plain / "labels_best.pt")
    warnings.clear()
    import_set("mtt", plain, digits, 2, normalization="dataset", zca=True, lr=0.01, warn=warnings.append)
    assert len(warnings) == 1 and "does not look whitened" in warnings[0]


def test_image_folder_maps_index_folders_by_number_and_class_folders_by_name(tmp_path):
    classes = tuple(f"c{i:02d}" for i in range(12))
    data = api.load_data(
        make_registry(), "image_folder", write_image_folder(tmp_path / "data", classes, per_class=2, val_per_class=1)
    )
    published = write_image_folder(tmp_path / "pub", classes=("2", "10", "c05"), per_class=1, val_per_class=0)
    with pytest.raises(Exception, match="class 0 has 0 images"):  # not every class: refused, after the folders mapped
        import_set("image-folder", published / "train", data, 1)
    (published / "train" / "zebra").mkdir()
    with pytest.raises(Exception, match="'zebra' is not a class of image_folder"):
        import_set("image-folder", published / "train", data, 1)
    full = tmp_path / "full"
    for i in range(12):  # index folders; "10" sorts before "2" as text
        (full / str(i)).mkdir(parents=True)
        src = next((tmp_path / "data" / "train" / classes[i]).iterdir())
        (full / str(i) / src.name).write_bytes(src.read_bytes())
    syn = import_set("image-folder", full, data, 1)
    assert syn.labels.tolist() == sorted(range(12), key=str)  # folders read in text order, labelled by number
    assert syn.metadata["source"]["normalization"] == "255"


def test_export_then_import_gives_the_same_set(tmp_path, digits):
    x, y = real_subset(digits, 2)
    mean, std = torch.tensor(digits.mean).view(1, -1, 1, 1), torch.tensor(digits.std).view(1, -1, 1, 1)
    soft = torch.nn.functional.one_hot(y, 10).float() * 3
    syn = SyntheticSet((x - mean) / std, soft, 10, "digits", "mine", 2, digits.mean, digits.std, lr=0.05)
    export_set(syn, "tensors", tmp_path / "set.pt")
    back = import_set("tensors", tmp_path / "set.pt", digits, 2)
    assert torch.allclose(back.images, syn.images, atol=1e-5) and torch.equal(back.labels, soft) and back.lr == 0.05
    export_set(syn, "image-folder", tmp_path / "folder")
    assert (tmp_path / "folder" / "soft_labels.pt").is_file() and len(list((tmp_path / "folder").glob("*/*.png"))) == 20
    back = import_set("image-folder", tmp_path / "folder", digits, 2)
    assert torch.allclose(back.denormalized(), x.clamp(0, 1), atol=0.5 / 255 + 1e-6)
    export_set(syn, "mtt", tmp_path / "mtt")
    back = import_set("mtt", tmp_path / "mtt", digits, 2, normalization="dataset")
    assert torch.allclose(back.images, syn.images) and back.lr == pytest.approx(0.05) and back.soft_labels


def test_export_replaces_nothing_and_keeps_zca_sets_out_of_image_folders(capsys, tmp_path, digits):
    x, y = real_subset(digits, 1)
    path = SyntheticSet(x, y, 10, "digits", "mine", 1, digits.mean, digits.std, zca=True).save(tmp_path / "z.pt")
    line = one_error_line(capsys, ["export", str(path), "--format", "image-folder", "--out", str(tmp_path / "f")])
    assert "ZCA" in line and not (tmp_path / "f").exists()
    (tmp_path / "t.pt").write_text("mine")
    line = one_error_line(capsys, ["export", str(path), "--format", "tensors", "--out", str(tmp_path / "t.pt")])
    assert "replaces nothing" in line and (tmp_path / "t.pt").read_text() == "mine"


def test_import_cli_writes_a_set_that_evaluates(capsys, tmp_path, digits):
    x, y = real_subset(digits, 2)
    torch.save({"images": x, "labels": y}, tmp_path / "pub.pt")
    out = tmp_path / "s.pt"
    assert (
        main(
            [
                "import",
                "tensors",
                str(tmp_path / "pub.pt"),
                "--dataset",
                "digits",
                "--ipc",
                "2",
                "--out",
                str(out),
                "--normalization",
                "unit",
                "--method",
                "Published",
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--epochs", "2", "--seeds", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "published" and report["dataset"] == "digits"


@pytest.mark.parametrize("case", ["channels", "size", "range", "count", "truncated", "no-normalization", "foreign"])
def test_bad_files_are_one_line_and_write_nothing(capsys, tmp_path, digits, case):
    x, y = real_subset(digits, 2)
    blob: object = {"images": x, "labels": y, "normalization": "unit"}
    if case == "channels":
        blob["images"] = x.repeat(1, 3, 1, 1)
    elif case == "size":
        blob["images"] = x[..., :6, :6]
    elif case == "range":
        blob["labels"] = y + 5
    elif case == "count":
        blob = {**blob, "images": x[1:], "labels": y[1:]}
    elif case == "no-normalization":
        del blob["normalization"]
    elif case == "foreign":
        blob = {"images": x, "labels": y, "normalization": "unit", "extra": SyntheticSet}  # an arbitrary object
    path = tmp_path / "pub.pt"
    torch.save(blob, path)
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    out = tmp_path / "s.pt"
    line = one_error_line(
        capsys, ["import", "tensors", str(path), "--dataset", "digits", "--ipc", "2", "--out", str(out)]
    )
    expected = {
        "channels": "images are [3, 16, 16]",
        "size": "images are [1, 6, 6]",
        "range": "labels lie in",
        "count": "class 0 has 1",
        "truncated": "not a readable torch file",
        "no-normalization": "--normalization",
        "foreign": "refusing to unpickle",
    }
    assert expected[case] in line and not out.exists()


def test_unknown_format_names_the_formats(capsys, tmp_path):
    code = main(["import", "npz", str(tmp_path), "--dataset", "digits", "--ipc", "1", "--out", str(tmp_path / "s.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "'npz'" in err and "dc" in err and "image-folder" in err and "tensors" in err and "ftd" in err


def test_a_suite_row_from_a_published_set_is_evaluated_and_labelled(tmp_path):
    from dd_bench.results import make
    from dd_bench.runner import plan, run_suite
    from dd_bench.suite import SuiteError, parse, validate
    from dd_bench.testing import toy_suite_doc

    registry = make_registry()
    toy = api.load_data(registry, "toy")
    idx = torch.cat([toy.indices_of_class(c)[:1] for c in range(toy.num_classes)])
    (tmp_path / "sets").mkdir()
    torch.save(
        {"images": toy.train_x[idx], "labels": toy.train_y[idx], "normalization": "dataset"},
        tmp_path / "sets" / "pub.pt",
    )
    doc = toy_suite_doc(
        methods={"random": {}, "full": {}, "mine": {"import": {"format": "tensors", "path": {1: "sets/pub.pt"}}}},
        seeds=[0, 1],
    )
    suite, errors = parse(doc, tmp_path / "suite.yaml")
    assert errors == []
    cells = [c for c in plan(validate(suite, registry), registry) if c.method == "mine"]
    assert [(c.ipc, c.seed) for c in cells] == [(1, 0)] and len(cells[0].source["sha256"]) == 64
    uri = f"sqlite:///{tmp_path}/m.db"
    result = run_suite(suite, registry=registry, tracking_uri=uri, quiet=True)
    assert {r.key: r.status for r in result.results}["mine/toy/ipc1/seed0"] == "done"
    board, _ = make(suite, registry, uri, tmp_path / "lb", "dd-bench leaderboard test")
    assert board.acc[("toy", "mine", "1", "mlp")].complete
    page = (tmp_path / "lb" / "README.md").read_text()
    assert "mine (published set)" in page and "tensors IPC 1" in page

    torch.save(
        {"images": toy.train_x[idx] + 1, "labels": toy.train_y[idx], "normalization": "dataset"},
        tmp_path / "sets" / "pub.pt",
    )
    assert plan(validate(suite, registry), registry)[-1].config_hash != cells[0].config_hash  # new content, new cell
    bad, _ = parse(
        toy_suite_doc(
            methods={"random": {}, "Mine": {"import": {"format": "npz", "path": {1: "nowhere"}}, "preset": "x"}}
        ),
        tmp_path / "suite.yaml",
    )
    with pytest.raises(SuiteError) as err:
        validate(bad, registry)
    text = str(err.value)
    assert (
        "format='npz'" in text
        and "preset cannot go with import" in text
        and "nowhere does not exist" in text
        and "lower-case" in text
    )


def test_a_dd_bench_set_imports_as_it_is_with_its_source(capsys, tmp_path, digits):
    registry = make_registry()
    syn = api.distill(registry, "random", digits, 2, seed=3)
    syn.save(tmp_path / "set.pt")
    again = import_set("dd-bench", tmp_path / "set.pt", digits, 2)
    assert torch.equal(again.images, syn.images) and torch.equal(again.labels, syn.labels) and again.method == "random"
    assert again.metadata["source"]["format"] == "dd-bench" and len(again.metadata["source"]["sha256"]) == 64
    line = one_error_line(
        capsys,
        [
            "import",
            "dd-bench",
            str(tmp_path / "set.pt"),
            "--dataset",
            "digits",
            "--ipc",
            "3",
            "--out",
            str(tmp_path / "x.pt"),
        ],
    )
    assert "--ipc 3" in line and not (tmp_path / "x.pt").exists()
    line = one_error_line(
        capsys,
        [
            "import",
            "dd-bench",
            str(tmp_path / "set.pt"),
            "--dataset",
            "digits",
            "--ipc",
            "2",
            "--zca",
            "--out",
            str(tmp_path / "x.pt"),
        ],
    )
    assert "carries its own" in line and not (tmp_path / "x.pt").exists()
