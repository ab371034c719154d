"""File formats are plugins': registered through ``ddb_register_formats``, collected with provenance,
read and written through the host's checks. DATM's and FTD's formats as their official code saves them."""

from __future__ import annotations

import types
import warnings

import pytest
import torch

from dd_bench import api, hookimpl
from dd_bench.cli import main
from dd_bench.errors import ConfigError, DataError, UnknownNameError
from dd_bench.formats import FormatRead, FormatSpec
from dd_bench.interchange import (
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    export_formats,
    export_set,
    import_formats,
    import_set,
)
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import make_registry, one_error_line

MEAN = "0.5/0.25"


@pytest.fixture(scope="module")
def digits():
    return api.load_data(make_registry(), "digits")


def real_subset(data, ipc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` real images of every class, class-major, as a source normalised with mean 0.5, std 0.25 saves them."""
    idx = torch.cat([data.indices_of_class(c)[:ipc] for c in range(data.num_classes)])
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    return ((data.train_x[idx] * std + mean) - 0.5) / 0.25, data.train_y[idx]


def format_plugin(name: str, spec: FormatSpec) -> types.SimpleNamespace:
    return types.SimpleNamespace(__name__=name, ddb_register_formats=hookimpl(lambda: [spec]))


def read_pair(path, request):
    blob = torch.load(path)
    return FormatRead(blob[0], blob[1], [path], "unit", details={"reader": "pair"})


def write_pair(syn, out):
    torch.save((syn.denormalized(), syn.labels), out)


PAIR = FormatSpec("pair", "an (images in [0, 1], labels) tuple", read_pair, write_pair)


# ---------------------------------------------------------------------------- the mechanism


def test_the_method_formats_are_their_plugins_and_the_constants_name_the_builtins():
    registry = make_registry()
    assert {name: r.plugin for name, r in registry.formats.items()} == {
        "dc": "dc",
        "mtt": "mtt",
        "datm": "datm",
        "ftd": "ftd",
    }
    assert registry.formats["mtt"].distribution == "dd-bench" and registry.format("datm").learns_lr
    assert sorted(import_formats(registry)) == sorted(IMPORT_FORMATS)  # what the CLI's choices are built from
    assert sorted(export_formats(registry)) == sorted(EXPORT_FORMATS)
    with pytest.raises(UnknownNameError, match="unknown format 'npz'"):
        registry.format("npz")


def test_a_plugin_format_imports_and_exports_through_the_host(tmp_path, digits):
    registry = make_registry(format_plugin("pairs", PAIR))
    assert (
        registry.formats["pair"].plugin == "pairs"
        and "pair" in import_formats(registry)
        and "pair" in export_formats(registry)
    )
    x, y = real_subset(digits, 2)
    torch.save((x * 0.25 + 0.5, y), tmp_path / "set.pt")
    syn = import_set("pair", tmp_path / "set.pt", digits, 2, registry=registry)
    assert (
        syn.method == "pair"
        and syn.metadata["source"]["reader"] == "pair"
        and syn.metadata["source"]["normalization"] == "unit"
    )
    export_set(syn, "pair", tmp_path / "out.pt", registry=registry)
    images, labels = torch.load(tmp_path / "out.pt")
    assert torch.allclose(images, x * 0.25 + 0.5, atol=1e-5) and torch.equal(labels, y)
    with pytest.raises(DataError, match="class 0 has 2 images"):  # the host's checks hold for a plugin's reader
        import_set("pair", tmp_path / "set.pt", digits, 1, registry=registry)
    with pytest.raises(UnknownNameError, match="unknown import format 'pair'"):  # not without its plugin
        import_set("pair", tmp_path / "set.pt", digits, 2, registry=make_registry())


def test_a_format_registered_twice_is_an_error_naming_both_plugins():
    with pytest.raises(
        ConfigError, match="format 'pair' is registered twice: by plugin '(one|two)' and by plugin '(two|one)'"
    ):
        make_registry(format_plugin("one", PAIR), format_plugin("two", PAIR))
    registry = make_registry(format_plugin("mine", FormatSpec("tensors", "mine too", read_pair)))
    with pytest.raises(ConfigError, match="'tensors' is registered twice: by dd-bench itself and by plugin 'mine'"):
        import_formats(registry)


def test_a_format_spec_is_checked_when_made():
    with pytest.raises(ConfigError, match="neither reads nor writes"):
        FormatSpec("nothing", "reads nothing")
    with pytest.raises(ConfigError, match="name='Bad Name'"):
        FormatSpec("Bad Name", "x", read_pair)
    with pytest.raises(ConfigError, match="options"):
        FormatSpec("x", "x", read_pair, options=("shards",))


def test_an_export_the_format_refuses_writes_nothing(tmp_path, digits):
    def refuse(syn, out):
        out.mkdir()
        (out / "half.pt").write_text("half")
        raise ConfigError("not this set")

    registry = make_registry(format_plugin("refusing", FormatSpec("refusing", "refuses", write=refuse)))
    x, y = real_subset(digits, 1)
    syn = SyntheticSet(x, y, 10, "digits", "mine", 1, digits.mean, digits.std)
    with pytest.raises(ConfigError, match="not this set"):
        export_set(syn, "refusing", tmp_path / "out", registry=registry)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- DATM


def write_datm(root, images, labels, lr=0.0123, grad=False):
    """DATM.py: ``<run>/Normal/images_best.pt``, ``labels_best.pt``, ``lr_best.pt``, saved from the optimiser."""
    normal = root / "Normal"
    normal.mkdir(parents=True)
    if grad:  # image_syn and label_syn are leaves that require grad; .cpu() keeps the flag
        images, labels = images.clone().requires_grad_(True) * 1, labels.clone().requires_grad_(True) * 1
    torch.save(images.cpu(), normal / "images_best.pt")
    torch.save(labels.cpu(), normal / "labels_best.pt")
    torch.save(torch.tensor(lr), normal / "lr_best.pt")
    return root


def test_datm_slots_keep_the_class_datm_gave_them_when_learned_labels_move(tmp_path, digits):
    x, y = real_subset(digits, 2)
    logits = torch.nn.functional.one_hot(y, 10).float() * 5
    logits[6, 4] = 9.0  # slot 6 sits in class 3's block; its learned label now peaks at class 4
    syn = import_set("datm", write_datm(tmp_path, x, logits), digits, 2, normalization=MEAN)
    assert syn.soft_labels and torch.equal(syn.labels, logits) and syn.labels.argmax(1)[6] == 4
    with pytest.raises(DataError, match="holds 19 images; DATM lays out --ipc 2 of each"):
        import_set("datm", write_datm(tmp_path / "short", x[1:], logits[1:]), digits, 2, normalization=MEAN)


def test_datm_tensors_saved_with_gradients_import_without_a_warning(tmp_path, digits):
    x, y = real_subset(digits, 2)
    write_datm(tmp_path, x, torch.nn.functional.one_hot(y, 10).float() * 5, grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        syn = import_set("datm", tmp_path, digits, 2, normalization=MEAN)
    assert not syn.images.requires_grad and not syn.labels.requires_grad and syn.lr == pytest.approx(0.0123)


# ---------------------------------------------------------------------------- FTD


def write_ftd(root, images, labels, run="fine-sun-3", dataset="digits"):
    """distill_FTD.py: the raw set in ``logged_files/<dataset>/<run>/`` and the EMA set, the one the
    paper reports, in ``ema_logged_files/<dataset>/<run>/ema_images_<it>.pt`` (no lr saved)."""
    raw, ema = root / "logged_files" / dataset / run, root / "ema_logged_files" / dataset / run
    raw.mkdir(parents=True, exist_ok=True)
    ema.mkdir(parents=True, exist_ok=True)
    torch.save(images + 1.0, raw / "images_best.pt")
    torch.save(labels, raw / "labels_best.pt")
    torch.save(images - 1.0, ema / "ema_images_1000.pt")
    torch.save(labels, ema / "ema_labels_1000.pt")
    torch.save(images, ema / "ema_images_best.pt")
    torch.save(labels, ema / "ema_labels_best.pt")
    torch.save(images * 0, ema / "images_zca_1000.pt")  # inverse-whitened copy for viewing: not a set
    return ema


def test_ftd_imports_its_ema_set_from_the_run_or_the_folder_above(tmp_path, digits):
    x, y = real_subset(digits, 1)
    ema = write_ftd(tmp_path, x, y)
    pixels = x * 0.25 + 0.5
    for path in (ema, tmp_path / "ema_logged_files", tmp_path / "ema_logged_files" / "digits"):
        syn = import_set("ftd", path, digits, 1, normalization=MEAN, lr=0.02, warn=pytest.fail)
        assert torch.allclose(syn.denormalized(), pixels, atol=1e-5) and syn.method == "ftd" and syn.lr == 0.02
        assert syn.metadata["source"]["iteration"] == "best" and syn.metadata["source"]["ema"] is True
    first = import_set("ftd", ema / "ema_images_1000.pt", digits, 1, normalization=MEAN, lr=0.02)
    assert first.metadata["source"]["iteration"] == "1000" and not torch.allclose(first.images, syn.images, atol=1e-3)
    with pytest.raises(DataError, match="raw images .* not its EMA set"):
        import_set("ftd", tmp_path / "logged_files" / "digits" / "fine-sun-3", digits, 1, normalization=MEAN)
    write_ftd(tmp_path, x, y, run="bold-moon-4")
    with pytest.raises(DataError, match="holds 2 FTD runs"):
        import_set("ftd", tmp_path / "ema_logged_files", digits, 1, normalization=MEAN)


@pytest.mark.parametrize("fmt", ["ftd", "mtt", "datm"])
def test_an_import_without_the_learned_lr_says_so_in_one_line(capsys, tmp_path, digits, fmt):
    x, y = real_subset(digits, 1)
    if fmt == "ftd":
        path = write_ftd(tmp_path, x, y)
    else:
        path = tmp_path / "run"
        path.mkdir()
        torch.save(x, path / "images_best.pt")
        torch.save(y, path / "labels_best.pt")
    args = ["import", fmt, str(path), "--dataset", "digits", "--ipc", "1", "--normalization", MEAN]
    assert main([*args, "--out", str(tmp_path / "a.pt")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(said) == 1 and "carries no learned lr" in said[0] and "0.01" in said[0] and "--lr" in said[0]
    assert SyntheticSet.load(tmp_path / "a.pt").lr is None
    assert main([*args, "--out", str(tmp_path / "b.pt"), "--lr", "0.03"]) == 0
    assert "warning" not in capsys.readouterr().err and SyntheticSet.load(tmp_path / "b.pt").lr == 0.03


def test_a_datm_set_that_saved_its_lr_and_a_plain_tensors_file_do_not_warn(tmp_path, digits):
    x, y = real_subset(digits, 1)
    import_set(
        "datm",
        write_datm(tmp_path / "d", x, torch.nn.functional.one_hot(y, 10).float()),
        digits,
        1,
        normalization=MEAN,
        warn=pytest.fail,
    )
    torch.save({"images": x, "labels": y, "normalization": MEAN}, tmp_path / "t.pt")
    assert import_set("tensors", tmp_path / "t.pt", digits, 1, warn=pytest.fail).lr is None


def test_a_bad_ftd_folder_is_one_line_and_writes_nothing(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    line = one_error_line(
        capsys,
        [
            "import",
            "ftd",
            str(tmp_path / "empty"),
            "--dataset",
            "digits",
            "--ipc",
            "1",
            "--out",
            str(tmp_path / "s.pt"),
        ],
    )
    assert "ema_images_best.pt" in line and not (tmp_path / "s.pt").exists()
