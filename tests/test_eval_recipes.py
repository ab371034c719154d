"""Named evaluation recipes: the classic protocol (default) and the decoupled papers' ImageNet one."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from dd_bench_datasets.folder import load_image_folder

from dd_bench import api
from dd_bench.augment import crop_flip
from dd_bench.cells import hashed_eval
from dd_bench.cli import build_parser, eval_config_from
from dd_bench.errors import ConfigError, DataError
from dd_bench.evaluate import EVAL_RECIPES, EvalConfig, evaluate
from dd_bench.specs import DataRequest
from dd_bench.suite import eval_config
from dd_bench.synthetic import SyntheticSet
from dd_bench.testing import make_registry, write_image_folder
from dd_bench.training import TrainRecipe, train_classifier


def _syn(ipc: int, classes: int) -> SyntheticSet:
    n = ipc * classes
    return SyntheticSet(
        images=torch.zeros(n, 1, 4, 4),
        labels=torch.arange(n) % classes,
        num_classes=classes,
        dataset="toy",
        method="random",
        ipc=ipc,
        mean=(0.0,),
        std=(1.0,),
    )


def test_the_decoupled_recipe_sets_the_papers_values_and_overrides_come_after_it():
    classic, decoupled = EvalConfig(), EvalConfig.named("decoupled")
    assert EvalConfig.named("classic") == classic and classic.recipe == "classic"
    assert (decoupled.recipe, decoupled.optimizer, decoupled.lr, decoupled.weight_decay, decoupled.schedule) == (
        "decoupled",
        "adamw",
        0.001,
        0.01,
        "cosine",
    )
    assert (
        decoupled.epochs,
        decoupled.dsa,
        decoupled.crop_flip,
        decoupled.labels,
        decoupled.temperature,
        decoupled.test_crop_pct,
    ) == (300, False, True, "teacher", 20.0, 0.875)
    assert EvalConfig.named("decoupled", epochs=5).epochs == 5
    suite_level = eval_config({"recipe": "decoupled", "epochs": 50}, {"temperature": 4})
    assert (suite_level.recipe, suite_level.optimizer, suite_level.epochs, suite_level.temperature) == (
        "decoupled",
        "adamw",
        50,
        4,
    )
    args = build_parser().parse_args(["evaluate", "x.pt", "--recipe", "decoupled", "--epochs", "7"])
    assert eval_config_from(args) == EvalConfig.named("decoupled", epochs=7)
    with pytest.raises(ConfigError, match="recipe='paper' is not allowed: use one of classic, decoupled"):
        EvalConfig.named("paper")
    with pytest.raises(ConfigError, match="dsa=true and crop_flip=true are not allowed together"):
        EvalConfig(crop_flip=True)
    assert set(EVAL_RECIPES) == {"classic", "decoupled"}


def test_batch_size_none_follows_rdeds_rule_by_ipc_and_classes():
    config = EvalConfig.named("decoupled")
    assert [config.train_recipe(_syn(ipc, 10)).batch_size for ipc in (1, 10, 50)] == [10, 50, 100]
    assert config.train_recipe(_syn(50, 100)).batch_size == 200
    assert EvalConfig.named("decoupled", batch_size=64).train_recipe(_syn(10, 10)).batch_size == 64


def test_cosine_and_step_schedules_set_each_epochs_lr_and_adamw_is_built():
    cosine, step = TrainRecipe(epochs=4, lr=0.1, schedule="cosine"), TrainRecipe(epochs=4, lr=0.1)
    assert [round(cosine.lr_factor(e), 6) for e in range(4)] == [
        1.0,
        round(0.5 * (1 + math.cos(math.pi / 4)), 6),
        0.5,
        round(0.5 * (1 + math.cos(3 * math.pi / 4)), 6),
    ]
    assert [step.lr_factor(e) for e in range(4)] == [1.0, 1.0, 0.1, 0.1]
    opt = TrainRecipe(lr=0.002, weight_decay=0.01, optimizer="adamw").make_optimizer(
        [torch.nn.Parameter(torch.zeros(1))]
    )
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 0.002 and opt.defaults["weight_decay"] == 0.01
    model = torch.nn.Linear(16, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    train_classifier(
        model,
        torch.randn(8, 16),
        torch.arange(8) % 2,
        cosine,
        torch.Generator().manual_seed(0),
        optimizer=opt,
        on_epoch_end=lambda epoch, _: seen.append(opt.param_groups[0]["lr"]),
    )
    assert seen == pytest.approx([0.1 * cosine.lr_factor(e) for e in range(4)])
    with pytest.raises(ConfigError, match="schedule='linear' is not allowed"):
        TrainRecipe(schedule="linear")


def test_the_decoupled_evaluation_trains_with_its_optimizer_schedule_and_crops():
    registry = make_registry()
    data = api.load_data(registry, "digits")
    syn = api.distill(registry, "random", data, ipc=2, progress=False)
    models = [("mlp", registry.model("mlp"))]
    base = EvalConfig(epochs=3, dsa=False, batch_size=8)
    variants = {
        "base": base,
        "adamw": dataclasses.replace(base, optimizer="adamw", lr=0.001, weight_decay=0.01),
        "cosine": dataclasses.replace(base, schedule="cosine"),
        "crop_flip": dataclasses.replace(base, crop_flip=True),
    }
    accs = {name: evaluate(syn, data, models, [0], config).results["mlp"].accs for name, config in variants.items()}
    assert len({accs[name] for name in variants}) == len(variants), accs  # each mechanism changes the training
    assert variants["crop_flip"].augment() is crop_flip and base.augment() is None


def test_test_crop_pct_crops_the_test_images_of_image_folders_and_is_refused_elsewhere(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=4, val_per_class=2, size=(16, 12))
    plain = load_image_folder(DataRequest(root=root, resolution=8))
    cropped = load_image_folder(DataRequest(root=root, resolution=8, test_crop_pct=0.5))
    assert cropped.test_crop_pct == 0.5 and plain.test_crop_pct == 1.0
    assert torch.equal(plain.train_x[:], cropped.train_x[:]) and cropped.test_x.shape == plain.test_x.shape
    assert not torch.equal(plain.test_x[:], cropped.test_x[:]), "the centre half of a 16 px short side, not all of it"
    registry = make_registry()
    with pytest.raises(
        ConfigError, match="^test_crop_pct=0.875 is not allowed for digits: its test images come preprocessed"
    ):
        api.load_data(registry, "digits", test_crop_pct=0.875)
    with pytest.raises(DataError, match="test_crop_pct=0.875 needs a resolution"):
        load_image_folder(DataRequest(root=root, test_crop_pct=0.875))


def test_old_cells_keep_their_hash_and_a_recipe_is_part_of_it():
    classic = hashed_eval(dataclasses.asdict(EvalConfig()))
    assert not {"recipe", "optimizer", "schedule", "crop_flip", "test_crop_pct"} & set(classic)
    assert hashed_eval(dataclasses.asdict(EvalConfig.named("decoupled")))["recipe"] == "decoupled"
