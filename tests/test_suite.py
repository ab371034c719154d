"""Suite files: parsing, validation of every name and value up front, config hashes."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dd_bench import hookimpl
from dd_bench.cells import parse_only, plan, select
from dd_bench.specs import DistillerSpec
from dd_bench.suite import SuiteError, load_suite, parse, validate
from dd_bench.testing import make_registry, toy_suite_doc

ROOT = Path(__file__).resolve().parent.parent

GOOD = toy_suite_doc(
    name="unit",
    ipcs=[1, 2],
    methods={"random": {}, "full": {"eval": {"epochs": 1}, "seeds": [0]}},
    seeds=[0, 1],
    eval_seeds=2,
    eval={"epochs": 2, "dsa": False},
)


@dataclass(frozen=True)
class KnobConfig:
    steps: int = 3


class KnobPlugin:
    @hookimpl
    def ddb_register_distillers(self):
        return [
            DistillerSpec(name="knob", config_cls=KnobConfig, distill=lambda r: None, presets={"smoke": {"steps": 1}})
        ]


def write(tmp_path: Path, doc: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_shipped_suites_parse_and_the_demo_validates():
    for path in sorted((ROOT / "dd_bench" / "suites").glob("*.yaml")):
        assert not load_suite(path, strict=True).problems  # shape only: data may be absent (cifar10)
    suite = validate(load_suite("demo"), make_registry())
    assert {"random", "full"} <= {m.name for m in suite.methods}
    assert suite.method("full").seeds == (0,) and suite.method("full").eval == {}  # trained as long as every row


def test_a_good_suite_plans_one_cell_per_method_dataset_ipc_seed_and_full_ignores_ipc(tmp_path):
    reg = make_registry()
    suite = validate(load_suite(write(tmp_path, GOOD)), reg)
    cells = plan(suite, reg)
    keys = sorted(c.key for c in cells)
    assert keys == sorted(["full/toy/ipcall/seed0"] + [f"random/toy/ipc{i}/seed{s}" for i in (1, 2) for s in (0, 1)])
    full = next(c for c in cells if c.method == "full")
    assert full.ipc is None and full.role == "full" and full.eval["epochs"] == 1
    assert all(c.eval_seeds == (0, 1) for c in cells)


def test_every_problem_is_reported_at_once(tmp_path):
    bad = dict(GOOD)
    bad.update(
        datasets=["toy", "imagenet9"],
        ipcs=[0, 2],
        methods={"random": {}, "mttt": {}, "full": {"overrides": {"nope": 1}}},
        eval_models=["mlp", "resnet99"],
        eval={"epochs": "many", "colour": True},
        seeds=[-1],
        typo_key=1,
    )
    with pytest.raises(SuiteError) as err:
        validate(load_suite(write(tmp_path, bad)), make_registry())
    msg = str(err.value)
    for needle in ("typo_key", "ipcs=[0, 2]", "seeds=[-1]", "colour", "'imagenet9'", "'mttt'", "nope", "'resnet99'"):
        assert needle in msg, needle
    assert "8 problems" in msg


def test_ipc_larger_than_a_class_and_a_model_too_small_for_the_images_fail_before_work(tmp_path):
    doc = dict(GOOD, ipcs=[1, 5000], eval_models=["mlp", "lenet"])
    with pytest.raises(SuiteError) as err:
        validate(load_suite(write(tmp_path, doc)), make_registry())
    assert "ipc=5000" in str(err.value) and "lenet" in str(err.value)


def test_methods_all_includes_every_registered_distiller_and_keeps_listed_settings(tmp_path):
    reg = make_registry(KnobPlugin())
    suite = validate(load_suite(write(tmp_path, dict(GOOD, methods="all"))), reg)
    assert [m.name for m in suite.methods] == sorted(reg.distillers)
    doc = dict(GOOD, methods={"all": {}, "knob": {"overrides": {"steps": 7}}})
    suite = validate(load_suite(write(tmp_path, doc)), reg)
    assert suite.method("knob").overrides == {"steps": 7} and suite.method("random").preset == "smoke"


def test_config_hash_follows_the_resolved_config(tmp_path):
    reg = make_registry(KnobPlugin())
    doc = dict(GOOD, methods={"knob": {}, "random": {}, "full": {}})
    a = {c.key: c.config_hash for c in plan(validate(load_suite(write(tmp_path, doc)), reg), reg)}
    b = {c.key: c.config_hash for c in plan(validate(load_suite(write(tmp_path, doc)), reg), reg)}
    assert a == b and len(set(a.values())) == len(a)
    doc["methods"] = {"knob": {"overrides": {"steps": 2}}, "random": {}, "full": {}}
    c = {c.key: c.config_hash for c in plan(validate(load_suite(write(tmp_path, doc)), reg), reg)}
    assert (
        c["knob/toy/ipc1/seed0"] != a["knob/toy/ipc1/seed0"]
        and c["random/toy/ipc1/seed0"] == a["random/toy/ipc1/seed0"]
    )


def test_only_filters_cells_and_rejects_unknown_values(tmp_path):
    reg = make_registry()
    cells = plan(validate(load_suite(write(tmp_path, GOOD)), reg), reg)
    assert {c.key for c in select(cells, parse_only(["method=random", "ipc=2"]))} == {
        "random/toy/ipc2/seed0",
        "random/toy/ipc2/seed1",
    }
    with pytest.raises(Exception, match="matches no cell"):
        select(cells, parse_only(["method=nope"]))
    with pytest.raises(Exception, match="KEY"):
        parse_only(["colour=red"])


def test_not_a_mapping_and_bad_yaml_are_clear(tmp_path):
    assert parse([1, 2])[1]
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(Exception, match="not readable YAML"):
        load_suite(tmp_path / "bad.yaml")
    with pytest.raises(Exception, match="not found"):
        load_suite(tmp_path / "missing.yaml")


def test_cli_rejects_a_bad_suite_with_one_line_and_does_no_work(tmp_path):
    path = write(tmp_path, dict(GOOD, datasets=["nope"]))
    proc = subprocess.run(
        [sys.executable, "-m", "dd_bench.cli", "run", str(path), "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown dataset 'nope'" in lines[0], proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    "name,datasets,ipcs,methods",
    [
        ("imagenette-gpu", ["imagenette"], ["1", "10", "50", "all"], {"random", "full", "sre2l", "rded", "d4m", "oq"}),
        ("imagewoof-gpu", ["imagewoof"], ["1", "10", "50", "all"], {"random", "full", "sre2l", "rded", "d4m", "oq"}),
        ("imagenet1k-gpu", ["imagenet1k"], ["10", "50"], {"random", "sre2l", "rded", "d4m", "oq"}),
    ],
)
def test_the_imagenet_gpu_suites_plan_under_the_decoupled_recipe_without_data(
    name, datasets, ipcs, methods, capsys, tmp_path
):
    from dd_bench.cells import plan
    from dd_bench.cli import main

    assert main(["run", name, "--plan", "--device", "cuda", "--data-root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert f"on cuda: {len(methods)} methods" in err and f"data root {tmp_path}" in err
    registry = make_registry()
    suite = validate(load_suite(name), registry, check_data=False)
    cells = plan(suite, registry, "cuda")
    assert len(out.strip().splitlines()) == len(cells)
    assert {c.method for c in cells} == methods and sorted({c.ipc_label for c in cells}) == sorted(ipcs)
    assert {c.dataset for c in cells} == set(datasets)
    assert all(c.eval["recipe"] == "decoupled" and c.eval["labels"] == "teacher" for c in cells)
    assert all(
        c.eval_models == ("tv:resnet18", "tv:resnet50", "tv:mobilenet_v2", "timm:efficientnet_b0") for c in cells
    )
    teacher = (suite.eval["teacher_model"], suite.eval["teacher_epochs"])
    for c in cells:
        if c.method in ("sre2l", "rded"):  # the sets' teacher is the relabelling one, or evaluation refuses them
            assert (c.config["teacher_model"], c.config["teacher_epochs"]) == teacher
        if c.method == "oq":
            assert c.config["labels"] == "hard", "streams: expert labels would need the whole split in memory"


def test_shards_apply_to_methods_that_declare_them_and_leave_the_hash_alone(tmp_path):
    reg = make_registry(KnobPlugin())
    doc = dict(GOOD, methods={"knob": {}, "random": {}, "full": {}})
    before = {c.key: c.config_hash for c in plan(validate(load_suite(write(tmp_path, doc)), reg), reg)}
    cells = plan(validate(load_suite(write(tmp_path, dict(doc, shards=2))), reg), reg)
    assert {c.key: c.shards for c in cells if c.ipc == 1 and c.seed == 0} == {
        "knob/toy/ipc1/seed0": 1,
        "random/toy/ipc1/seed0": 2,
    }  # knob and full do not declare shards
    assert {c.key: c.config_hash for c in cells} == before
    per_method = dict(doc, methods={"knob": {}, "random": {"shards": 3}, "full": {}})
    assert {
        c.shards for c in plan(validate(load_suite(write(tmp_path, per_method)), reg), reg) if c.method == "random"
    } == {3}


def test_shards_on_a_method_that_does_not_declare_them_are_refused(tmp_path):
    reg = make_registry(KnobPlugin())
    bad = dict(GOOD, methods={"knob": {"shards": 2}, "random": {"shards": 0}, "full": {}})
    with pytest.raises(SuiteError) as err:
        validate(load_suite(write(tmp_path, bad)), reg)
    text = str(err.value)
    assert "methods.knob: shards=2 is not allowed for knob: its classes are not declared independent" in text
    assert "methods.random.shards=0 is not allowed: use an integer >= 1" in text


def test_the_demo_gives_a_plugin_without_a_demo_preset_its_smoke_preset():
    """methods: all with default_preset demo: a third-party method that has no demo preset runs its smoke one."""
    reg = make_registry(KnobPlugin())
    assert "demo" not in reg.distiller("knob").presets
    suite = validate(load_suite("demo"), reg)
    assert suite.method("knob").preset == "smoke" and suite.method("dc").preset == "demo"
