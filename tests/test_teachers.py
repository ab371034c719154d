"""Teachers (cached, seeded, keyed) and the evaluation label protocol (hard | set | teacher)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dd_bench import api
from dd_bench.cells import hashed_eval
from dd_bench.errors import ConfigError, DataError
from dd_bench.evaluate import EvalConfig, eval_splits, evaluate, evaluate_model
from dd_bench.runtime import seeded_build
from dd_bench.synthetic import SyntheticSet
from dd_bench.teachers import TeacherRecipe, ensure_teacher, resolve_teacher, set_teacher, teacher_key
from dd_bench.tracked_cell import protocol_bytes
from dd_bench.training import TrainRecipe, distillation_loss, train_classifier, train_classifiers

CPU = torch.device("cpu")
RECIPE = TeacherRecipe(model="convnet_w32_bn", epochs=3, lr=0.05, batch_size=32, dsa=False)


def _set(data, labels=None, metadata=None):
    idx = torch.cat([data.indices_of_class(c)[:2] for c in range(data.num_classes)])
    return SyntheticSet(
        data.train_x[idx].clone(),
        data.train_y[idx].clone() if labels is None else labels,
        data.num_classes,
        data.name,
        "toyset",
        2,
        data.mean,
        data.std,
        metadata=metadata or {},
    )


def test_teacher_is_cached_keyed_and_records_val_acc(registry, toy, tmp_path, one_thread):
    first = resolve_teacher(registry, toy, RECIPE, tmp_path, CPU, progress=False)
    assert first.path.exists() and first.trained_seconds > 0
    assert first.val_acc > 50.0  # toy is easy: a trained teacher beats chance (25%) by far
    again = resolve_teacher(registry, toy, RECIPE, tmp_path, CPU, progress=False)
    assert again.trained_seconds == 0.0 and again.key == first.key
    x = toy.val_x[:16]
    assert torch.equal(first.logits(x), again.logits(x))  # BN running statistics saved with it
    other = dataclasses.replace(RECIPE, epochs=4)
    assert teacher_key(toy, other) != first.key  # a changed recipe never reuses the old teacher
    ref = first.ref()
    assert ref["key"] == first.key and ref["recipe"]["model"] == "convnet_w32_bn" and ref["bytes"] == first.nbytes > 0


def test_teacher_file_of_another_key_is_refused(registry, toy, tmp_path, one_thread):
    teacher = resolve_teacher(registry, toy, RECIPE, tmp_path, CPU, progress=False)
    blob = torch.load(teacher.path, weights_only=True)
    blob["key"] = "0" * 16
    torch.save(blob, teacher.path)
    with pytest.raises(DataError, match="holds key"):
        resolve_teacher(registry, toy, RECIPE, tmp_path, CPU, progress=False)


def test_distillation_loss_targets_the_teacher_softened_output():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 4, generator=g, requires_grad=True), torch.randn(5, 4, generator=g)
    T = 3.0
    manual = (F.softmax(t / T, 1) * (F.log_softmax(t / T, 1) - F.log_softmax(s / T, 1))).sum(1).mean() * T * T
    loss = distillation_loss(s, t, T)
    assert torch.allclose(loss, manual)
    (grad,) = torch.autograd.grad(loss, s)
    # d/ds of T^2 KL = T (softmax(s/T) - softmax(t/T)) / B: its zero is the teacher's softened output
    assert torch.allclose(grad, T * (F.softmax(s / T, 1) - F.softmax(t / T, 1)) / 5, atol=1e-6)
    assert distillation_loss(t.clone().requires_grad_(), t, T).abs() < 1e-6


def test_teacher_labels_each_augmented_batch(toy, one_thread):
    """The KL target is the teacher's output on exactly the augmented batch the student sees."""
    seen_student, seen_teacher, targets = [], [], []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(64, 4)

        def forward(self, x):
            seen_student.append(x.detach().clone())
            return self.lin(x.flatten(1))

    def teacher(x):
        seen_teacher.append(x.detach().clone())
        out = x.flatten(1)[:, :4] * 3.0
        targets.append(out)
        return out

    def augment(x, g):
        return x + torch.randn(x.shape, generator=g)

    x, y = toy.train_x[:40], toy.train_y[:40]
    train_classifier(
        Recorder(),
        x,
        y,
        TrainRecipe(epochs=2, batch_size=16),
        torch.Generator().manual_seed(0),
        augment=augment,
        teacher=teacher,
        temperature=2.0,
    )
    assert len(seen_teacher) == len(seen_student) == 6
    for a, b in zip(seen_teacher, seen_student):
        assert torch.equal(a, b)
    assert not torch.equal(seen_teacher[0], x[: len(seen_teacher[0])])  # augmented, not the raw images


def test_batched_falls_back_to_sequential_for_the_teacher(registry, toy, one_thread):
    spec = registry.model("mlp")
    teacher = torch.nn.Linear(64, 4)
    label = lambda xb: teacher(xb.flatten(1))  # noqa: E731
    recipe = TrainRecipe(epochs=2, batch_size=16)
    x, y = toy.train_x[:48], toy.train_y[:48]

    def nets():
        return [seeded_build(lambda: spec.build(toy.shape), s, CPU) for s in (0, 1)]

    batched = train_classifiers(
        nets(),
        x,
        y,
        recipe,
        [torch.Generator().manual_seed(s) for s in (0, 1)],
        batched=True,
        teacher=label,
        temperature=4.0,
    )
    sequential = [
        train_classifier(m, x, y, recipe, torch.Generator().manual_seed(s), teacher=label, temperature=4.0)
        for m, s in zip(nets(), (0, 1))
    ]
    hard = train_classifiers(nets(), x, y, recipe, [torch.Generator().manual_seed(s) for s in (0, 1)], batched=True)
    for a, b, h in zip(batched, sequential, hard):
        pa, pb, ph = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, h))
        assert torch.equal(pa, pb)
        assert not torch.allclose(pa, ph)  # the teacher's targets, not the hard labels, trained them


def test_label_protocols_differ_and_hard_uses_argmax(registry, toy, tmp_path, one_thread):
    syn = _set(toy)
    soft = dataclasses.replace(syn, labels=torch.randn(len(syn), 4, generator=torch.Generator().manual_seed(1)) * 5)
    splits = eval_splits(syn, toy)
    spec = registry.model("mlp")
    cfg = EvalConfig(epochs=3, dsa=False)
    as_hard = evaluate_model(soft, toy, spec, [0], dataclasses.replace(cfg, labels="hard"), CPU, splits)
    hard_copy = evaluate_model(dataclasses.replace(soft, labels=soft.hard_labels()), toy, spec, [0], cfg, CPU, splits)
    assert as_hard == hard_copy
    teacher = resolve_teacher(registry, toy, RECIPE, tmp_path, CPU, progress=False)
    with_teacher = evaluate_model(
        syn, toy, spec, [0], dataclasses.replace(cfg, labels="teacher"), CPU, splits, teacher=teacher
    )
    assert with_teacher != evaluate_model(syn, toy, spec, [0], cfg, CPU, splits)


def test_missing_teacher_is_one_clear_error(registry, toy, tmp_path):
    syn = _set(toy)
    cfg = EvalConfig(epochs=1, labels="teacher")
    with pytest.raises(ConfigError, match="names none in its metadata.*teacher_model"):
        api.eval_teacher(registry, syn, toy, cfg, tmp_path, CPU)
    with pytest.raises(ConfigError, match="needs a teacher"):
        evaluate(syn, toy, [("mlp", registry.model("mlp"))], [0], cfg)
    with pytest.raises(ConfigError, match="labels='soft' is not allowed: use one of hard, set, teacher"):
        EvalConfig(labels="soft")


def test_set_teacher_is_never_silently_replaced(registry, toy, tmp_path, one_thread):
    teacher = resolve_teacher(registry, toy, RECIPE, tmp_path, CPU, progress=False)
    syn = _set(toy, metadata={"teacher": teacher.ref()})
    got = set_teacher(registry, syn.metadata, toy, None, tmp_path, CPU, progress=False)
    assert got.key == teacher.key
    other = dataclasses.replace(RECIPE, model="mlp")
    with pytest.raises(ConfigError, match="make them agree"):
        set_teacher(registry, syn.metadata, toy, other, tmp_path, CPU, progress=False)
    forged = {"teacher": {**teacher.ref(), "key": "f" * 16}}
    with pytest.raises(DataError, match="distilled on other data"):
        set_teacher(registry, forged, toy, None, tmp_path, CPU, progress=False)


def test_cli_missing_teacher_exits_2_with_one_line(toy, tmp_path, capsys, monkeypatch):
    from dd_bench.cli import main

    path = _set(toy).save(tmp_path / "s.pt")
    monkeypatch.setenv("DD_BENCH_CACHE", str(tmp_path / "cache"))
    code = main(
        [
            "evaluate",
            str(path),
            "--models",
            "mlp",
            "--seeds",
            "1",
            "--epochs",
            "1",
            "--labels",
            "teacher",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs a teacher" in err[0]


def test_protocol_is_out_of_old_cell_hashes_and_storage_counts_it(toy, registry, tmp_path, one_thread):
    later = (
        "labels",
        "temperature",
        "teacher_model",
        "teacher_epochs",
        "teacher_lr",
        "recipe",
        "optimizer",
        "schedule",
        "crop_flip",
        "test_crop_pct",
    )
    old = {k: v for k, v in dataclasses.asdict(EvalConfig()).items() if k not in later}
    assert hashed_eval(dataclasses.asdict(EvalConfig())) == old
    assert hashed_eval(dataclasses.asdict(EvalConfig(labels="teacher")))["labels"] == "teacher"
    syn = _set(toy)
    soft = dataclasses.replace(syn, labels=torch.zeros(len(syn), 4))
    teacher = resolve_teacher(registry, toy, RECIPE, tmp_path, CPU, progress=False)
    images = syn.images.numel() * 4
    assert protocol_bytes(soft, "hard", None) == images + len(syn) * 8
    assert protocol_bytes(soft, "set", None) == images + len(syn) * 4 * 4
    assert protocol_bytes(soft, "teacher", teacher) == images + teacher.nbytes


def test_ensure_teacher_is_seeded(toy, registry, tmp_path, one_thread):
    spec = registry.model("mlp")
    build = lambda seed: seeded_build(lambda: spec.build(toy.shape), seed, CPU)  # noqa: E731
    recipe = TeacherRecipe(model="mlp", epochs=1)
    a = ensure_teacher(build, toy, recipe, tmp_path / "a", CPU, progress=False)
    b = ensure_teacher(build, toy, recipe, tmp_path / "b", CPU, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
