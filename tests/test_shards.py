"""Class-sharded distillation: the merged set is the unsharded one, bit for bit, for every
method that declares its classes (or batches) independent; shards resume one by one."""

from __future__ import annotations

import pytest
import torch

from dd_bench import api, shards
from dd_bench.errors import ConfigError
from dd_bench.synthetic import SyntheticSet

SHARDED = {
    "random": {},
    "oq": {},
    "d4m": {},
    "rded": {},
    "sre2l": {"iterations": 5, "group": 1},
}


def _distill(registry, digits, method, tmp_path, count, ipc=3, **kw):
    return api.distill(
        registry,
        method,
        digits,
        ipc,
        seed=4,
        preset="smoke",
        overrides=SHARDED[method],
        cache_dir=tmp_path,
        progress=False,
        shards=count,
        **kw,
    )


def _same(a: SyntheticSet, b: SyntheticSet) -> None:
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)
    assert (a.weights is None) == (b.weights is None)
    if a.weights is not None:
        assert torch.equal(a.weights, b.weights)


def test_every_sharded_builtin_is_declared(registry):
    declared = {name for name, d in registry.distillers.items() if d.spec.sharding is not None}
    assert set(SHARDED) <= declared


@pytest.mark.parametrize("method", sorted(SHARDED))
def test_shards_merge_into_the_unsharded_set(registry, digits, method, tmp_path, one_thread):
    whole = _distill(registry, digits, method, tmp_path, 1)
    units = registry.distiller(method).sharding.units(_request(registry, digits, method, tmp_path))
    parts = _distill(registry, digits, method, tmp_path, 3)
    _same(whole, parts)
    assert parts.metadata["shards"]["count"] == 3
    assert [a for a, _ in parts.metadata["shards"]["units"]] == [r.start for r in shards.partition(units, 3)]
    assert "shards" not in whole.metadata
    for key, value in whole.metadata.items():  # per-unit lists in unit order, aggregates over all units
        if key.endswith("seconds") or key in ("teacher_seconds", "expert_dir", "ae_path"):
            continue
        assert (
            parts.metadata[key] == pytest.approx(value) if isinstance(value, float) else parts.metadata[key] == value
        ), key


def _request(registry, digits, method, tmp_path):
    from dd_bench.specs import DistillRequest

    spec = registry.distiller(method)
    return DistillRequest(
        data=digits,
        ipc=3,
        seed=4,
        config=api.resolve_config(registry, spec, "smoke", SHARDED[method]),
        device=torch.device("cpu"),
        model="convnet",
        build_model=lambda s: None,
        cache_dir=tmp_path,
    )


def test_sre2l_shards_keep_its_batch_composition(registry, digits, tmp_path, one_thread):
    """group=2 at IPC 5: 3 recovery batches (2, 2, 1 slots of every class); 2 shards split them 2 + 1."""
    kw = {"iterations": 3, "group": 2}

    def run(n):
        return api.distill(
            registry,
            "sre2l",
            digits,
            5,
            seed=1,
            preset="smoke",
            overrides=kw,
            cache_dir=tmp_path,
            progress=False,
            shards=n,
        )

    whole, parts = run(1), run(2)
    _same(whole, parts)
    assert len(parts.metadata["final_ce"]) == 3 and parts.metadata["shards"]["units"] == [[0, 2], [2, 3]]
    with pytest.raises(ConfigError, match="shards=4 is not allowed for sre2l.*it has 3 independent units"):
        run(4)


def test_a_units_draws_do_not_depend_on_the_shards(registry, digits, tmp_path):
    """Removing per-unit seeding (one generator over the shard) makes the shards disagree."""
    whole = _distill(registry, digits, "random", tmp_path, 1)
    request = _request(registry, digits, "random", tmp_path)
    assert request.unit_generator(3).initial_seed() != request.unit_generator(4).initial_seed()
    assert (
        request.unit_generator(3).initial_seed()
        == _request(registry, digits, "random", tmp_path).unit_generator(3).initial_seed()
    )
    # class 5's images from a shard that starts at class 5 are whole's class-5 images
    spec = registry.distiller("random")
    alone = shards.run_shard(spec, request, range(5, 6))
    assert torch.equal(alone.images, whole.images[whole.labels == 5])


def test_a_failed_shard_is_the_only_one_run_again(registry, digits, tmp_path):
    spec = registry.distiller("random")
    calls = []
    real = spec.distill

    def flaky(request):
        calls.append(request.units)
        if request.units.start == 5 and len(calls) == 2:
            raise RuntimeError("killed")
        return real(request)

    object.__setattr__(spec, "distill", flaky)  # the spec is frozen
    try:
        with pytest.raises(RuntimeError, match="killed"):
            _distill(registry, digits, "random", tmp_path, 2)
        assert calls == [range(0, 5), range(5, 10)]
        merged = _distill(registry, digits, "random", tmp_path, 2)
        assert calls[2:] == [range(5, 10)]  # shard 0 was read back from the cache
    finally:
        object.__setattr__(spec, "distill", real)
    _same(merged, _distill(registry, digits, "random", tmp_path, 1))


def test_shards_refused_in_one_line(registry, digits, tmp_path):
    with pytest.raises(ConfigError, match=r"shards=2 is not allowed for mtt: its classes are not declared independent"):
        api.distill(registry, "mtt", digits, 1, preset="smoke", cache_dir=tmp_path, progress=False, shards=2)
    with pytest.raises(
        ConfigError,
        match=r"shards=11 is not allowed for random on digits at ipc=3: it has 10 independent units; use 1 <= shards <= 10",
    ):
        _distill(registry, digits, "random", tmp_path, 11)
    with pytest.raises(ConfigError, match=r"shards=0 is not allowed: use an integer >= 1"):
        _distill(registry, digits, "random", tmp_path, 0)


def test_partition_is_consecutive_and_even():
    assert shards.partition(10, 3) == [range(0, 4), range(4, 7), range(7, 10)]
    assert shards.partition(3, 3) == [range(0, 1), range(1, 2), range(2, 3)]
