"""Expert buffers as MTT, FTD and DATM save them (``replay_buffer_<n>.pt``) read as the trajectory engine's experts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dd_bench.errors import DataError
from dd_bench.matching.buffers import read_replay_buffers
from dd_bench.matching.student import FlatModel


def net(hidden: int = 5) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def write_buffer(path, model, trajectories=2, epochs=3):
    """buffer.py: ``timestamps.append([p.detach().cpu() for p in teacher_net.parameters()])`` per epoch, init first;
    every ``save_interval`` experts, ``torch.save(trajectories, replay_buffer_<n>.pt)``."""
    g = torch.Generator().manual_seed(0)
    saved = [
        [[torch.randn(p.shape, generator=g) for p in model.parameters()] for _ in range(epochs + 1)]
        for _ in range(trajectories)
    ]
    torch.save(saved, path)
    return saved


def test_replay_buffers_become_flat_trajectories_in_parameter_order(tmp_path):
    model = net()
    a = write_buffer(tmp_path / "replay_buffer_0.pt", model)
    b = write_buffer(tmp_path / "replay_buffer_1.pt", model, trajectories=1)
    experts = read_replay_buffers([tmp_path / "replay_buffer_0.pt", tmp_path / "replay_buffer_1.pt"], model)
    assert len(experts) == 3 and all(t.shape == (4, sum(p.numel() for p in model.parameters())) for t in experts)
    flat = FlatModel(model)
    assert torch.equal(experts[0][2], torch.cat([p.reshape(-1) for p in a[0][2]]))
    assert torch.equal(experts[2][3], torch.cat([p.reshape(-1) for p in b[0][3]]))
    named = flat.unflatten(experts[1][0])
    assert torch.equal(named["1.weight"], a[1][0][0]) and torch.equal(named["3.bias"], a[1][0][3])


def test_a_buffer_of_another_architecture_is_one_line(tmp_path):
    write_buffer(tmp_path / "replay_buffer_0.pt", net(hidden=7))
    with pytest.raises(
        DataError,
        match=r"trajectory 0 epoch 0 does not match the architecture: .*parameter 0 is \[7, 16\], the network's \[5, 16\]",
    ) as err:
        read_replay_buffers([tmp_path / "replay_buffer_0.pt"], net())
    assert "\n" not in str(err.value)
    torch.save({"not": "a buffer"}, tmp_path / "x.pt")
    with pytest.raises(DataError, match="is not a replay buffer"):
        read_replay_buffers([tmp_path / "x.pt"], net())


def test_our_experts_exported_as_replay_buffers_distil_the_same_set_when_imported(registry, digits, tmp_path, capsys):
    """dd-bench buffer --export writes buffer.py's layout; expert_files reads it back as the experts: the same set,
    bit for bit, with the files recorded and nothing trained."""
    from dd_bench import api
    from dd_bench.cli import main

    out = tmp_path / "exported"
    assert main(["buffer", "--dataset", "digits", "--model", "convnet_w32", "--experts", "2", "--epochs", "3",
                 "--cache-dir", str(tmp_path / "ours"), "--export", str(out), "--device", "cpu"]) == 0  # fmt: skip
    assert [p.name for p in out.iterdir()] == ["replay_buffer_0.pt"]
    blob = torch.load(out / "replay_buffer_0.pt", weights_only=True)
    model = registry.model("convnet_w32").build(digits.shape)
    assert (
        len(blob) == 2 and len(blob[0]) == 4 and [p.shape for p in blob[0][0]] == [p.shape for p in model.parameters()]
    )

    kw = dict(seed=0, preset="smoke", model="convnet_w32", progress=False)
    same = {"num_experts": 2, "expert_train_epochs": 3, "max_start_epoch": 2, "expert_epochs": 1}
    trained = api.distill(registry, "mtt", digits, 1, overrides=same, cache_dir=tmp_path / "ours", **kw)
    imported = api.distill(registry, "mtt", digits, 1, overrides={**same, "expert_files": str(out)},
                           cache_dir=tmp_path / "fresh", **kw)  # fmt: skip
    assert torch.equal(trained.images, imported.images) and trained.lr == imported.lr
    record = imported.metadata["buffers_imported"]
    assert record["files"] == ["replay_buffer_0.pt"] and len(record["sha256"]) == 64
    assert not (tmp_path / "fresh" / "buffers").exists(), "imported experts train nothing"
    assert main(["buffer", "--dataset", "digits", "--model", "convnet_w32", "--experts", "2", "--epochs", "3",
                 "--cache-dir", str(tmp_path / "ours"), "--export", str(out), "--device", "cpu"]) == 2  # fmt: skip
    assert "exists" in capsys.readouterr().err


def test_expert_files_without_replay_buffers_or_with_too_few_experts_is_one_line(registry, digits, tmp_path):
    from dd_bench import api
    from dd_bench.errors import ConfigError

    kw = dict(seed=0, preset="smoke", model="mlp", progress=False, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="expert_files=.* names no folder holding replay_buffer_<n>.pt files"):
        api.resolve_config(registry, "mtt", "smoke", {"expert_files": str(tmp_path)})  # before any data loads
    model = registry.model("mlp").build(digits.shape)
    write_buffer(tmp_path / "replay_buffer_0.pt", model, trajectories=1, epochs=4)
    with pytest.raises(ConfigError, match="num_experts=2 is not allowed .* its files hold 1 trajectories"):
        api.distill(registry, "mtt", digits, 1, overrides={"expert_files": str(tmp_path), "num_experts": 2}, **kw)
