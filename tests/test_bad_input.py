"""A wider bad-input battery (issue 32): a full disk, an empty set, a suite naming a key twice,
a broken third-party plugin, a name list with an empty item.

Each ends in one line on stderr that names what was wrong, exit status 2, and nothing lost: no
half-written file, and a file that was there keeps its old content.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
import yaml

import dd_bench.plugins as plugins
from dd_bench.cli import main
from dd_bench.errors import DataError
from dd_bench.synthetic import SyntheticSet, atomic_write_text
from dd_bench.testing import toy_suite_doc


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def last_line(code: int, err: str) -> str:
    """The refusal: exit 2, no traceback, and the error is the last line (progress lines may come first)."""
    assert code == 2 and "Traceback" not in err, (code, err)
    line = err.strip().splitlines()[-1]
    assert line.startswith("dd-bench: error:"), err
    return line


def toy_set(n: int = 2) -> SyntheticSet:
    return SyntheticSet(
        images=torch.zeros(n, 1, 8, 8),
        labels=torch.arange(n) % 2,
        num_classes=2,
        dataset="toy",
        method="random",
        ipc=1,
        mean=(0.0,),
        std=(1.0,),
    )


# ---------------------------------------------------------------------------- a full disk


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def torch_zip_writer_on_a_full_disk(obj, fh):
    """What ``torch.save`` does when the disk fills: its zip writer's OSError, then a RuntimeError
    from the writer's clean-up that hides it."""
    fh.write(b"PK\x03\x04 half a file")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1472 vs 1366") from None


@pytest.mark.parametrize("where", ["fsync", "torch.save"])
def test_distill_onto_a_full_disk_is_one_line_and_keeps_the_old_set(capsys, tmp_path, monkeypatch, where):
    out = tmp_path / "syn.pt"
    out.write_bytes(b"the old set")
    if where == "fsync":
        monkeypatch.setattr(os, "fsync", no_space)
    else:
        monkeypatch.setattr(torch, "save", torch_zip_writer_on_a_full_disk)
    code, _, err = run(
        capsys, "distill", "--method", "random", "--dataset", "toy", "--ipc", "1", "--out", out, "--device", "cpu"
    )
    line = last_line(code, err)
    assert str(out) in line and "no space left" in line.lower(), line
    assert out.read_bytes() == b"the old set"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn.pt"]  # no temporary file left


def test_any_command_that_fills_the_disk_is_one_line_naming_the_file(capsys, tmp_path, monkeypatch):
    """Not only sets: here an expert buffer's files, written through the same atomic writer."""
    monkeypatch.setattr(os, "fsync", no_space)
    cache = tmp_path / "cache"
    code, _, err = run(
        capsys, "buffer", "--dataset", "toy", "--experts", "1", "--epochs", "1", "--cache-dir", cache, "--device", "cpu"
    )
    line = last_line(code, err)
    assert "no space left on device writing" in line and str(cache) in line and "(ENOSPC)" in line, line
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_a_page_written_on_a_full_disk_keeps_the_old_page(tmp_path, monkeypatch):
    page = tmp_path / "README.md"
    page.write_text("old page")
    monkeypatch.setattr(os, "fsync", lambda fd: no_space())
    with pytest.raises(OSError) as caught:
        atomic_write_text(page, "new page")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(page)
    assert page.read_text() == "old page" and [p.name for p in tmp_path.iterdir()] == ["README.md"]


def test_a_full_quota_is_said_too(capsys, tmp_path, monkeypatch):
    def quota(fd):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(os, "fsync", quota)
    code, _, err = run(
        capsys,
        "buffer",
        "--dataset",
        "toy",
        "--experts",
        "1",
        "--epochs",
        "1",
        "--cache-dir",
        tmp_path,
        "--device",
        "cpu",
    )
    assert "disk quota exceeded writing" in last_line(code, err)


# ---------------------------------------------------------------------------- a set with no images


def test_a_set_with_no_images_is_refused_when_made_and_when_loaded(capsys, tmp_path):
    with pytest.raises(DataError, match="at least one image"):
        toy_set(0)
    blob = toy_set().to_dict()
    blob["images"], blob["labels"] = blob["images"][:0], blob["labels"][:0]
    path = tmp_path / "empty.pt"
    torch.save(blob, path)
    code, out, err = run(capsys, "evaluate", path, "--device", "cpu", "--epochs", "1", "--models", "mlp")
    line = last_line(code, err)
    assert out == "" and str(path) in line and "holds none" in line, line


# ---------------------------------------------------------------------------- a suite naming a key twice


@pytest.mark.parametrize(
    "text, words",
    [
        ("ipcs: [1]\nseeds: [0]\nipcs: [2]\n", "key 'ipcs' appears twice (lines 1 and 3)"),
        ("methods:\n  random: {}\n  random: {preset: smoke}\n", "key 'random' appears twice (lines 2 and 3)"),
        ("eval: {epochs: 1, epochs: 2}\n", "key 'epochs' appears twice (line 1)"),
    ],
)
def test_a_suite_naming_a_key_twice_is_refused_with_both_lines(capsys, tmp_path, text, words):
    doc = toy_suite_doc(name="dups", methods={"full": {}})
    doc.pop("eval", None)
    path = tmp_path / "suite.yaml"
    path.write_text(text + yaml.safe_dump({k: v for k, v in doc.items() if f"{k}:" not in text}))
    code, out, err = run(
        capsys, "run", path, "--quiet", "--device", "cpu", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"
    )
    line = last_line(code, err)
    assert out == "" and f"suite {path}: {words}" in line, line
    assert not (tmp_path / "m.db").exists()


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    from dd_bench.suite import _unique_keys_loader

    doc = yaml.load("base: &b {epochs: 1}\nmine:\n  <<: *b\n  epochs: 2\n", Loader=_unique_keys_loader())
    assert doc["mine"] == {"epochs": 2}


# ---------------------------------------------------------------------------- a broken third-party plugin


@pytest.fixture
def broken_plugin(tmp_path, monkeypatch) -> Path:
    """An installed distribution ``bad-plugin`` whose entry point ``badone`` raises on import."""
    site = tmp_path / "site"
    info = site / "bad_plugin-1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text("[dd_bench]\nbadone = dd_bench_bad_plugin_for_tests\n")
    (site / "dd_bench_bad_plugin_for_tests.py").write_text("raise RuntimeError('needs a CUDA extension')\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(plugins, "_BROKEN", {})
    monkeypatch.delenv(plugins.BLOCK_ENV, raising=False)
    monkeypatch.delenv(plugins.AUTOLOAD_ENV, raising=False)
    return site


def test_a_plugin_that_fails_to_import_is_one_warning_and_commands_keep_working(capsys, tmp_path, broken_plugin):
    code, out, err = run(capsys, "plugins")
    assert code == 0 and "random" in out and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for words in (
        "'badone'",
        "bad-plugin 1.2",
        "RuntimeError: needs a CUDA extension",
        "DD_BENCH_BLOCK_PLUGINS=badone",
    ):
        assert words in lines[0], lines[0]
    code, _, err = run(
        capsys,
        "distill",
        "--method",
        "random",
        "--dataset",
        "toy",
        "--ipc",
        "1",
        "--out",
        tmp_path / "s.pt",
        "--device",
        "cpu",
    )
    assert code == 0 and "warning" not in err, err  # warned once per process
    code, _, err = run(
        capsys, "distill", "--method", "badmethod", "--dataset", "toy", "--ipc", "1", "--out", tmp_path / "b.pt"
    )
    line = last_line(code, err)
    assert "unknown method 'badmethod'" in line and "'badone' (bad-plugin)" in line, line


def test_a_blocked_broken_plugin_is_not_even_mentioned(capsys, broken_plugin, monkeypatch):
    monkeypatch.setenv(plugins.BLOCK_ENV, "badone")
    code, _, err = run(capsys, "plugins")
    assert code == 0 and err == "", err


# ---------------------------------------------------------------------------- lists with an empty item


@pytest.mark.parametrize("value", ["mlp,", ",mlp", "convnet,,mlp", " , "])
def test_a_name_list_with_an_empty_item_is_refused(capsys, tmp_path, value):
    code, out, err = run(capsys, "evaluate", tmp_path / "s.pt", "--models", value)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "none empty" in err and repr(value) in err, err


@pytest.mark.parametrize("value", ["0,4,", ",1", "0,,1"])
def test_a_seed_list_with_an_empty_item_is_refused(capsys, tmp_path, value):
    code, out, err = run(capsys, "evaluate", tmp_path / "s.pt", "--seeds", value)
    assert code == 2 and len(err.strip().splitlines()) == 1 and repr(value) in err, err


# ---------------------------------------------------------------------------- found by the battery


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("images", torch.zeros(2, 1, 8, 8, dtype=torch.float64), "images is a torch.float64 tensor"),
        ("metadata", None, "metadata is None: it must be a mapping"),
        ("factor", True, "factor is True"),
        ("ipc", 10**30, "ipc is 1000000000000000000000000000000"),
        ("lr", "0.1", "lr is '0.1'"),
        ("std", [0.0], "std=[0.0]: use finite values and a std > 0"),
    ],
)
def test_a_set_file_with_fields_of_the_wrong_type_is_one_line(capsys, tmp_path, field, value, words):
    """Each of these was evaluated (exit 0) or ended in a traceback when the training met it."""
    blob = toy_set().to_dict()
    blob[field] = value
    path = tmp_path / "odd.pt"
    torch.save(blob, path)
    code, _, err = run(capsys, "evaluate", path, "--device", "cpu", "--epochs", "1", "--models", "mlp", "--seeds", "1")
    line = last_line(code, err)
    assert str(path) in line and words in line, line


def test_a_set_from_before_these_checks_still_loads(tmp_path):
    """A learned lr saved as a one-element tensor (as an lr_best.pt holds it) was readable and stays so."""
    blob = toy_set().to_dict()
    blob["lr"] = torch.tensor(0.01)
    torch.save(blob, tmp_path / "old.pt")
    assert float(SyntheticSet.load(tmp_path / "old.pt").lr) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["distill", "--out", "{dir}"], "--out {dir} is a folder"),
        (["distill", "--out", "{file}/syn.pt"], "{file} is a file, not a folder"),
        (["distill", "--out", "{dir}/syn.pt", "--grid", "{dir}"], "--grid {dir} is a folder"),
        (["distill", "--out", "{dir}/syn.pt", "--cache-dir", "{file}"], "--cache-dir {file} is a file"),
        (["buffer", "--cache-dir", "{file}"], "--cache-dir {file} is a file"),
        (["buffer", "--export", "{file}/x"], "{file} is a file, not a folder"),
        (["evaluate", "{file}", "--cache-dir", "{file}"], "--cache-dir {file} is a file"),
        (["export", "{file}", "--format", "tensors", "--out", "{file}/x"], "{file} is a file, not a folder"),
    ],
)
def test_a_file_where_a_folder_belongs_is_refused_before_any_work(capsys, tmp_path, argv, words):
    """These ended in a traceback (NotADirectoryError, IsADirectoryError), some only after the work was done."""
    folder, file = tmp_path / "a_folder", tmp_path / "a_file.pt"
    folder.mkdir()
    toy_set().save(file)
    fill = {"dir": folder, "file": file}
    extra = {"distill": ["--method", "random", "--dataset", "toy", "--ipc", "1"], "buffer": ["--dataset", "toy"]}
    argv = [a.format(**fill) for a in argv]
    device = [] if argv[0] == "export" else ["--device", "cpu"]
    code, out, err = run(capsys, *argv, *extra.get(argv[0], []), *device)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert words.format(**fill) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.pt", "a_folder"] and not list(folder.iterdir())


def test_an_atomic_write_under_a_file_names_the_path(capsys, tmp_path):
    """The file-system errors a path can meet are one line naming the path, whichever command writes."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError) as caught:
        atomic_write_text(tmp_path / "f" / "page.md", "text")
    assert caught.value.filename == str(tmp_path / "f" / "page.md")
    from dd_bench.cli import os_error_message

    assert os_error_message(caught.value).startswith(f"{tmp_path / 'f' / 'page.md'}: a part of the path is a file")


def test_unknown_names_fail_before_the_device_is_picked(capsys, tmp_path):
    for argv in (
        ["distill", "--method", "random", "--dataset", "nope", "--ipc", "1", "--out", tmp_path / "s.pt"],
        ["distill", "--method", "random", "--dataset", "toy", "--ipc", "1", "--out", tmp_path / "s.pt", "--model", "x"],
        ["buffer", "--dataset", "nope"],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown" in err, err


def test_an_only_filter_with_an_empty_value_and_zero_cpus_per_task_are_refused(capsys):
    from dd_bench.cells import parse_only
    from dd_bench.errors import ConfigError

    for item in ("method=random,", "method=,random", "ipc=1,,10"):
        with pytest.raises(ConfigError, match="no empty value"):
            parse_only([item])
    code, _, err = run(capsys, "run", "demo", "--plan", "--ray-cpus-per-task", "0")
    assert code == 2 and "--ray-cpus-per-task" in err and len(err.strip().splitlines()) == 1


def test_a_tracking_store_that_is_no_sqlite_database_is_one_line(capsys, tmp_path):
    """It ended in an 84-line SQLAlchemy traceback."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a database\n")
    code, out, err = run(capsys, "run", "demo", "--only", "method=random", "--tracking-uri", f"sqlite:///{notes}",
                         "--device", "cpu", "--quiet")  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is not an SQLite database" in err, err
    assert notes.read_text() == "my notes, not a database\n"


def test_a_set_named_twice_in_a_report_and_a_file_as_a_page_folder_are_refused_before_any_work(capsys, tmp_path):
    toy_set().save(tmp_path / "s.pt")
    (tmp_path / "a_file").write_text("x")
    for argv, words in (
        (["report", tmp_path / "s.pt", tmp_path / "." / "s.pt", "--out", tmp_path / "r"], "is given twice"),
        (["demo", "--out", tmp_path / "a_file", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"], "is a file"),
        (["leaderboard", "demo", "--out", tmp_path / "a_file", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"],
         "is a file"),
    ):  # fmt: skip
        code, out, err = run(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "s.pt"], "nothing was written"
