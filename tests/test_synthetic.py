from __future__ import annotations

import pytest
import torch

from dd_bench.errors import DataError
from dd_bench.synthetic import SyntheticSet, atomic_torch_save, expand, read_checkpoint


def make(**kw):
    g = torch.Generator().manual_seed(0)
    args = dict(
        images=torch.randn(6, 1, 4, 4, generator=g),
        labels=torch.tensor([0, 0, 1, 1, 2, 2]),
        num_classes=3,
        dataset="toy",
        method="random",
        ipc=2,
        mean=(0.5,),
        std=(0.25,),
    )
    args.update(kw)
    return SyntheticSet(**args)


def test_round_trip_with_soft_labels_lr_and_weights(tmp_path):
    syn = make(labels=torch.randn(6, 3), lr=0.02, weights=torch.rand(6), metadata={"note": "x", "list": [1, 2]})
    path = syn.save(tmp_path / "sub" / "syn.pt")
    blob = torch.load(path, weights_only=True)  # plain tensors and builtins only
    assert blob["format_version"] == 1
    back = SyntheticSet.load(path)
    assert torch.equal(back.images, syn.images) and torch.equal(back.labels, syn.labels)
    assert torch.equal(back.weights, syn.weights)
    assert back.lr == 0.02 and back.metadata == {"note": "x", "list": [1, 2]} and back.soft_labels
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left behind


def test_load_rejects_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        SyntheticSet.load(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="not a dd-bench synthetic set"):
        SyntheticSet.load(tmp_path / "junk.pt")
    whole = make().save(tmp_path / "whole.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="not a readable synthetic set"):
        SyntheticSet.load(tmp_path / "half.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a dd-bench synthetic set"):
        SyntheticSet.load(tmp_path / "other.pt")
    blob = make().to_dict()
    blob["format_version"] = 99
    torch.save(blob, tmp_path / "future.pt")
    with pytest.raises(DataError, match="format version 99"):
        SyntheticSet.load(tmp_path / "future.pt")


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"labels": torch.tensor([0, 0, 1, 1, 2, 3])}, "hard labels"),
        ({"labels": torch.randn(6, 4)}, "labels must be"),
        ({"weights": -torch.ones(6)}, "weights"),
        ({"lr": 0.0}, "lr"),
        ({"images": torch.zeros(6, 3, 4, 4)}, "images"),
        ({"ipc": 0}, "ipc"),
        ({"factor": 5}, "factor=5 is not allowed for \\[4, 4\\] images"),
    ],
)
def test_invalid_sets_are_rejected(kw, match):
    with pytest.raises(DataError, match=match):
        make(**kw)


def test_grid_png_and_bytes(tmp_path):
    syn = make()
    path = syn.save_grid(tmp_path / "grid.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert syn.nbytes() == 6 * 16 * 4 + 6 * 8
    assert make(zca=True).denormalized().min() >= 0


def test_a_factor_set_stores_its_images_and_decodes_to_their_expansion(tmp_path):
    """Partition and expansion: storage counts the stored images, training reads ``decoded()``."""
    syn = make(labels=torch.randn(6, 3), weights=torch.rand(6), factor=2)
    assert syn.nbytes() == make(labels=torch.randn(6, 3), weights=torch.rand(6)).nbytes()
    back = SyntheticSet.load(syn.save(tmp_path / "syn.pt"))
    assert back.factor == 2
    decoded = back.decoded()
    assert decoded.factor == 1 and len(decoded) == 24 and decoded.ipc == 2
    torch.testing.assert_close(decoded.images, expand(syn.images, 2))
    # patch k of image i is row k*6 + i: it keeps image i's label and weight
    assert torch.equal(decoded.labels, syn.labels.repeat(4, 1)) and torch.equal(decoded.weights, syn.weights.repeat(4))
    assert make().decoded().factor == 1 and len(make().decoded()) == 6


def test_evaluation_trains_on_the_decoded_images(registry, toy, monkeypatch):
    import dd_bench.evaluate as evaluate

    seen = {}
    monkeypatch.setattr(evaluate, "train_classifiers", lambda models, x, y, *a, **k: seen.update(x=x, y=y))
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, *toy.train_x.shape[1:], generator=g)
    syn = SyntheticSet(images, torch.arange(4).repeat_interleave(2), 4, toy.name, "x", 2, toy.mean, toy.std, factor=2)
    evaluate.evaluate_model(syn, toy, registry.model("mlp"), [0], evaluate.EvalConfig(), torch.device("cpu"), {})
    torch.testing.assert_close(seen["x"], expand(images, 2))
    assert seen["y"].tolist() == syn.labels.repeat(4).tolist()


def test_a_checkpoint_of_another_version_is_ignored_and_removed(tmp_path, capsys):
    path = tmp_path / "ckpt.pt"
    assert read_checkpoint(path, 1) is None  # none yet
    atomic_torch_save({"version": 1, "iteration": 3}, path)
    assert read_checkpoint(path, 1) == {"version": 1, "iteration": 3}
    assert read_checkpoint(path, 2) is None and not path.exists()
    assert "(version 1, this dd-bench writes 2); starting over" in capsys.readouterr().err


def test_atomic_writes_leave_files_readable_as_the_umask_allows(tmp_path):
    import os

    from dd_bench.synthetic import atomic_write_bytes, atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "page.md", "x")
        atomic_write_bytes(tmp_path / "plot.png", b"x")
    finally:
        os.umask(old)
    assert {oct((tmp_path / n).stat().st_mode & 0o777) for n in ("page.md", "plot.png")} == {oct(0o644)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.md", "plot.png"], "no temporary file is left"
