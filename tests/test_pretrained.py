"""Pretrained weights for tv:/timm: models: local caches or a file, nothing downloads unless asked."""

from __future__ import annotations

import pytest
import torch
import torchvision

from dd_bench.cli import main
from dd_bench.errors import ConfigError, DataError
from dd_bench.runtime import DOWNLOAD_ENV
from dd_bench.specs import DataShape
from dd_bench.testing import make_registry

IMAGENET = DataShape(3, 32, 32, 1000)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache; ``reference`` is written where torchvision keeps IMAGENET1K_V1."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(DOWNLOAD_ENV, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def reference_resnet18(hub) -> torch.nn.Module:
    torch.manual_seed(7)
    ref = torchvision.models.resnet18(num_classes=1000)
    hub.mkdir(parents=True, exist_ok=True)
    torch.save(ref.state_dict(), hub / "resnet18-f37072fd.pth")  # the file name of the enum's URL
    return ref


def test_torchvision_weights_come_from_the_hub_cache(hub):
    ref = reference_resnet18(hub)
    model = make_registry().model("tv:resnet18@IMAGENET1K_V1").build(IMAGENET)
    for key, value in ref.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    grey = make_registry().model("tv:resnet18@IMAGENET1K_V1").build(DataShape(1, 32, 32, 1000))
    torch.testing.assert_close(grey.conv1.weight, ref.conv1.weight.sum(1, keepdim=True)), "stem derived from RGB"


def test_missing_weights_are_one_line_naming_the_file_and_nothing_is_fetched(hub, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(
        DataError,
        match=r"weights file .*resnet18-f37072fd.pth not found; put resnet18-f37072fd.pth"
        r" there \(from https://download.pytorch.org/models/resnet18-f37072fd.pth\)"
        r", or pass --download",
    ):
        make_registry().model("tv:resnet18@IMAGENET1K_V1").build(IMAGENET)


def test_download_is_asked_for_with_the_flag(hub, monkeypatch):
    ref = torchvision.models.resnet18(num_classes=1000)
    fetched = []

    def fake_fetch(url, *args, **kwargs):
        fetched.append(url)
        return ref.state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_fetch)
    monkeypatch.setenv(DOWNLOAD_ENV, "1")
    model = make_registry().model("tv:resnet18@IMAGENET1K_V1").build(IMAGENET)
    assert fetched == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]
    assert torch.equal(model.fc.weight, ref.fc.weight)


def test_the_cli_download_flag_allows_downloads(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv(DOWNLOAD_ENV, "0")  # recorded, so the flag's setting is undone after the test
    main(["plugins"])
    assert os.environ[DOWNLOAD_ENV] == "0"
    main(
        [
            "distill",
            "--method",
            "random",
            "--dataset",
            "toy",
            "--ipc",
            "1",
            "--device",
            "cpu",
            "--download",
            "--data-root",
            str(tmp_path),
            "--out",
            str(tmp_path / "x.pt"),
        ]
    )
    assert os.environ[DOWNLOAD_ENV] == "1"


def test_a_checkpoint_file_for_the_same_architecture_loads_and_another_is_one_line(tmp_path):
    registry, shape = make_registry(), DataShape(3, 32, 32, 10)
    for namespace in ("tv", "timm"):
        trained = registry.model(f"{namespace}:resnet18").build(shape)
        path = tmp_path / f"{namespace}.pth"
        torch.save({"state_dict": trained.state_dict(), "epoch": 3}, path)
        loaded = registry.model(f"{namespace}:resnet18@{path}").build(shape)
        assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(ConfigError, match="does not fit this architecture and dataset .* missing"):
        registry.model(f"tv:resnet34@{tmp_path / 'tv.pth'}").build(shape)
    with pytest.raises(ConfigError, match="fc.bias is \\[10\\], the model's \\[100\\]"):
        registry.model(f"tv:resnet18@{tmp_path / 'tv.pth'}").build(DataShape(3, 32, 32, 100))
    with pytest.raises(DataError, match="weights file .*nothing.pth not found"):
        registry.model(f"tv:resnet18@{tmp_path / 'nothing.pth'}").build(shape)


def test_bad_weight_names_are_one_line(hub):
    registry = make_registry()
    with pytest.raises(
        ConfigError, match="torchvision has no weights 'V9' for resnet18 .allowed: IMAGENET1K_V1, DEFAULT"
    ):
        registry.model("tv:resnet18@V9").build(IMAGENET)
    with pytest.raises(ConfigError, match="classify 1000 classes but the dataset has 10"):
        registry.model("tv:resnet18@IMAGENET1K_V1").build(DataShape(3, 32, 32, 10))
    with pytest.raises(ConfigError, match="name the weights after '@'"):
        registry.model("tv:resnet18@")
    with pytest.raises(ConfigError, match="timm has no pretrained weights 'resnet18.nope'"):
        registry.model("timm:resnet18@nope").build(IMAGENET)


def test_timm_tags_read_the_local_cache_only(tmp_path, monkeypatch):
    from dd_bench_models import zoo

    monkeypatch.delenv(DOWNLOAD_ENV, raising=False)
    monkeypatch.setattr(zoo, "_timm_cached_file", lambda full: None)
    with pytest.raises(DataError, match="resnet18.a1_in1k are not in the local Hugging Face cache; pass --download"):
        make_registry().model("timm:resnet18@a1_in1k").build(IMAGENET)
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    ref = timm.create_model("resnet18", num_classes=1000)
    save_file(ref.state_dict(), tmp_path / "model.safetensors")
    monkeypatch.setattr(zoo, "_timm_cached_file", lambda full: str(tmp_path / "model.safetensors"))
    model = make_registry().model("timm:resnet18@a1_in1k").build(IMAGENET)
    assert torch.equal(model.fc.weight, ref.fc.weight)


def test_a_pretrained_teacher_with_zero_epochs_is_used_as_it_is(tmp_path):
    from dd_bench import api
    from dd_bench.teachers import TeacherRecipe, resolve_teacher

    registry = make_registry()
    data = api.load_data(registry, "digits")
    trained = registry.model("tv:resnet18").build(data.shape)
    torch.save(trained.state_dict(), tmp_path / "teacher.pth")
    recipe = TeacherRecipe(model=f"tv:resnet18@{tmp_path / 'teacher.pth'}", epochs=0)
    teacher = resolve_teacher(registry, data, recipe, tmp_path / "cache", torch.device("cpu"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), teacher.model.state_dict().values()))
    with pytest.raises(
        ConfigError, match="teacher epochs=0 is not allowed for mlp: 0 uses pretrained weights as they are"
    ):
        TeacherRecipe(model="mlp", epochs=0)
