"""The distiller checks: four smoke runs of the ``smoke`` preset, then a few repeats."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .. import api
from ..plugins import Registry
from ..specs import DataRequest, DistillerSpec, RealData
from ..synthetic import SyntheticSet
from .base import (
    CPU,
    DISTILL_MODEL,
    GLOBAL_SEEDS,
    REFERENCE_QUIET_SECONDS,
    SMOKE_RUNS,
    SPLIT_TENSORS,
    TIME_LIMIT,
    CheckResult,
    Checks,
    NotChecked,
    Sandbox,
    global_rng_restored,
    load_factor,
    moments,
    one_line,
    reference_seconds,
    run_checks,
    seed_globals,
)


def _content_difference(a: SyntheticSet, b: SyntheticSet) -> str | None:
    """How two sets differ in what training sees (images, labels, weights, lr), or None."""
    for field in ("images", "labels", "weights"):
        x, y = getattr(a, field), getattr(b, field)
        if (x is None) != (y is None) or (x is not None and (x.shape != y.shape or x.dtype != y.dtype)):
            return f"{field} differ in presence, shape or dtype"
        if x is not None and not torch.equal(x, y):
            return f"{field} differ (max |difference| {(x.double() - y.double()).abs().max().item():.3g})"
    if a.lr != b.lr:
        return f"learned lr differs ({a.lr} vs {b.lr})"
    return None


def _same(a: object, b: object) -> bool:
    """Equality that looks inside tensors, dicts and sequences (metadata may hold tensors)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b or (a != a and b != b)  # NaN == NaN here


def _set_problem(syn: SyntheticSet, data: RealData, ipc: int, spec: DistillerSpec) -> str | None:
    """What makes ``syn`` not a set of ``ipc`` images per class of ``data``, or None."""
    if syn.dataset != data.name:
        return f"dataset is {syn.dataset!r}, expected {data.name!r}"
    counts = torch.bincount(syn.hard_labels(), minlength=data.num_classes).tolist()
    if spec.ignores_ipc:
        if 0 in counts:
            return f"class {counts.index(0)} has no images"
    elif syn.ipc != ipc or counts != [ipc] * data.num_classes:
        return f"ipc is {syn.ipc} with {counts} images per class, asked for {ipc} of each"
    for field in ("images", "labels", "weights"):
        value = getattr(syn, field)
        if value is not None and value.is_floating_point() and not torch.isfinite(value).all():
            return f"{field} are not all finite"
    return None


def _distance(m: torch.Tensor, s: torch.Tensor, ref_m: torch.Tensor, ref_s: torch.Tensor) -> float:
    """How far per-channel moments are from a reference: mean shift in reference stds plus |log std ratio|."""
    return float(((m - ref_m).abs() / ref_s + (s.clamp_min(1e-12) / ref_s).log().abs()).mean())


def _space_problem(syn: SyntheticSet, data: RealData) -> str | None:
    """Why ``syn`` does not live in ``data``'s normalised space, or None.

    The set's mean/std must be the data's, and its images' per-channel statistics must be
    closer to those of the normalised training images than to those of the same images in
    pixel space (a set returned un-normalised). ZCA sets are compared by mean/std only.
    """
    if not (np.allclose(syn.mean, data.mean) and np.allclose(syn.std, data.std)):
        return (
            f"the set says mean {syn.mean}, std {syn.std}; the data is normalised with mean {data.mean}, std {data.std}"
        )
    if syn.zca:
        return None
    m, s = moments(syn.images)
    ref_m, ref_s = moments(data.train_x)
    mean, std = torch.tensor(data.mean, dtype=torch.float64), torch.tensor(data.std, dtype=torch.float64)
    if _distance(m, s, ref_m, ref_s) > _distance(m, s, ref_m * std + mean, ref_s * std):
        return (
            f"the images look like pixel values, not normalised ones (mean {m.mean():.3g}, std {s.mean():.3g};"
            f" normalised training images have mean {ref_m.mean():.3g}, std {ref_s.mean():.3g})"
        )
    return None


class _DistillerChecks:
    """The distiller checks, sharing their runs: four smoke runs, then a few repeats."""

    def __init__(self, spec: DistillerSpec, registry: Registry, box: Sandbox, time_limit: float, model: str):
        self.spec, self.registry, self.box, self.time_limit, self.model = spec, registry, box, time_limit, model
        self.data: dict[str, RealData] = {}
        self.pristine: dict[str, dict[str, torch.Tensor]] = {}
        self.sets: dict[tuple[str, int], SyntheticSet] = {}
        self.seconds: dict[tuple[str, int], float] = {}
        self.cache = box.fresh_cache()
        self.global_rng_difference: str | None = None
        self.same_seed_ok: bool | None = None

    def checks(self) -> Checks:
        return [
            ("presets", self.presets),
            ("smoke", self.smoke),
            ("valid-set", self.valid_set),
            ("normalised", self.normalised),
            ("round-trip", self.round_trip),
            ("same-seed", self.same_seed),
            ("global-rng", self.global_rng),
            ("seeds-differ", self.seeds_differ),
            ("data-untouched", self.data_untouched),
            ("no-stray-files", self.no_stray_files),
        ]

    def _distill(self, dataset: str, ipc: int, seed: int, global_seed: int, cache_dir: Path) -> SyntheticSet:
        seed_globals(global_seed)
        return api.distill(
            self.registry,
            self.spec,
            self.data[dataset],
            ipc,
            seed=seed,
            preset="smoke",
            device=CPU,
            cache_dir=cache_dir,
            model=self.model,
            progress=False,
        )

    def _smoke_sets(self) -> dict[tuple[str, int], SyntheticSet]:
        if len(self.sets) != len(SMOKE_RUNS):
            raise NotChecked("the smoke runs failed")
        return self.sets

    def presets(self) -> tuple[bool, str]:
        bad = []
        for name in self.spec.presets:
            try:
                self.spec.resolve_config(name)
            except Exception as exc:
                bad.append(f"{name!r}: {one_line(exc)}")
        n = len(self.spec.presets)
        if bad:
            return False, f"{len(bad)} of {n} presets do not resolve; {bad[0]}"
        return True, f"all {n} presets resolve to a valid {self.spec.config_cls.__name__}"

    def smoke(self) -> tuple[bool, str]:
        for name in dict(SMOKE_RUNS):
            self.data[name] = self.registry.dataset(name).load(DataRequest())
            self.pristine[name] = {k: getattr(self.data[name], k).clone() for k in SPLIT_TENSORS}
        reference = reference_seconds()
        for dataset, ipc in SMOKE_RUNS:
            started = time.perf_counter()
            try:
                self.sets[dataset, ipc] = self._distill(dataset, ipc, 0, GLOBAL_SEEDS[0], self.cache)
            except Exception as exc:
                return False, f"{dataset} IPC {ipc}: {one_line(exc)}"
            self.seconds[dataset, ipc] = time.perf_counter() - started
        reference = max(reference, reference_seconds())  # the load may have risen while the runs ran
        factor = load_factor(reference)
        (dataset, ipc), slowest = max(self.seconds.items(), key=lambda item: item[1])
        limit = self.time_limit * factor
        ok = slowest <= limit
        verdict = "within" if ok else "over"
        return ok, (
            f"digits and toy at IPC 1 and 2; slowest {dataset} IPC {ipc}: {slowest:.1f} s, {verdict} the"
            f" {self.time_limit:g} s limit x {factor:.1f} for the load now (a reference workload took"
            f" {reference:.2f} s, {REFERENCE_QUIET_SECONDS:g} s on a quiet machine)"
        )

    def valid_set(self) -> tuple[bool, str]:
        sets = self._smoke_sets()
        for (dataset, ipc), syn in sets.items():
            problem = _set_problem(syn, self.data[dataset], ipc, self.spec)
            if problem:
                return False, f"{dataset} IPC {ipc}: {problem}"
        if self.spec.ignores_ipc:
            for dataset in self.data:
                difference = _content_difference(sets[dataset, 1], sets[dataset, 2])
                if difference:
                    return False, f"declared ignores_ipc, but on {dataset} IPC 1 and 2 {difference}"
            return True, "declared ignores_ipc: every class present, the same set at IPC 1 and 2"
        return True, "the asked dataset, IPC images of every class, finite values"

    def normalised(self) -> tuple[bool, str]:
        for (dataset, ipc), syn in self._smoke_sets().items():
            problem = _space_problem(syn, self.data[dataset])
            if problem:
                return False, f"{dataset} IPC {ipc}: {problem}"
        return True, "the data's mean/std, and images with the statistics of normalised ones"

    def round_trip(self) -> tuple[bool, str]:
        for (dataset, ipc), syn in self._smoke_sets().items():
            loaded = SyntheticSet.load(syn.save(self.box.out / f"{dataset}-{ipc}.pt"))
            difference = _content_difference(syn, loaded)
            for field in ("num_classes", "dataset", "method", "ipc", "mean", "std", "zca"):
                if difference is None and getattr(syn, field) != getattr(loaded, field):
                    difference = f"{field} changes from {getattr(syn, field)!r} to {getattr(loaded, field)!r}"
            for key, value in syn.metadata.items():
                if difference is None and not _same(value, loaded.metadata.get(key)):
                    difference = f"metadata[{key!r}] changes"
            if difference:
                return False, f"{dataset} IPC {ipc}: after save and load, {difference}"
        return True, "every smoke set saves and loads back unchanged"

    def same_seed(self) -> tuple[bool, str]:
        first = self._smoke_sets()["digits", 1]
        other_global = self._distill("digits", 1, 0, GLOBAL_SEEDS[1], self.box.fresh_cache())
        self.global_rng_difference = _content_difference(first, other_global)
        if self.global_rng_difference is None:
            self.same_seed_ok = True
            return True, "digits IPC 1, seed 0, again from an empty cache: bit-identical"
        repeat = self._distill("digits", 1, 0, GLOBAL_SEEDS[0], self.box.fresh_cache())
        difference = _content_difference(first, repeat)
        self.same_seed_ok = difference is None
        if difference:
            return False, f"digits IPC 1, seed 0 twice, from empty caches and the same global seeds: {difference}"
        return True, "digits IPC 1, seed 0, again from an empty cache under the same global seeds: bit-identical"

    def global_rng(self) -> tuple[bool, str]:
        if self.same_seed_ok is None:
            raise NotChecked("the same-seed check failed")
        if self.global_rng_difference is None:
            return True, "the same set whatever the global torch, random and numpy seeds"
        if not self.same_seed_ok:
            raise NotChecked("the same seed does not repeat even under the same global seeds")
        return False, (
            f"digits IPC 1, seed 0: {self.global_rng_difference} when only the global torch/random/numpy"
            " seeds change; draw from request.generator()"
        )

    def seeds_differ(self) -> tuple[bool, str]:
        first = self._smoke_sets()["digits", 2]
        other = self._distill("digits", 2, 1, GLOBAL_SEEDS[0], self.cache)
        difference = _content_difference(first, other)
        if self.spec.deterministic:
            if difference:
                return (
                    False,
                    f"declared deterministic, but on digits IPC 2 seeds 0 and 1 give different sets: {difference}",
                )
            return True, "declared deterministic: seeds 0 and 1 give the same set"
        if difference is None:
            return (
                False,
                "digits IPC 2: seeds 0 and 1 give the same set (declare deterministic=True if the seed is unused)",
            )
        return True, f"digits IPC 2: seeds 0 and 1 give different sets ({difference})"

    def data_untouched(self) -> tuple[bool, str]:
        if not self.pristine:
            raise NotChecked("digits and toy did not load")
        for dataset, before in self.pristine.items():
            for key, tensor in before.items():
                if not torch.equal(getattr(self.data[dataset], key), tensor):
                    return (
                        False,
                        f"{dataset} {key} changed during distillation; copy request.data's tensors before changing them",
                    )
        return True, "digits and toy tensors are unchanged after every run"

    def no_stray_files(self) -> tuple[bool, str]:
        stray = self.box.stray_files()
        if stray:
            more = f" and {len(stray) - 3} more" if len(stray) > 3 else ""
            return False, f"wrote outside request.cache_dir: {', '.join(stray[:3])}{more}"
        return True, "nothing left in the working directory, $HOME, $DD_BENCH_CACHE or the temp dir"


def distiller_checks(
    spec: DistillerSpec, registry: Registry, *, time_limit: float = TIME_LIMIT, model: str = DISTILL_MODEL
) -> list[CheckResult]:
    """Check a distiller's ``smoke`` preset on ``digits`` and ``toy`` (from ``registry``, which
    also supplies ``model`` and expert optimizers). Runs in a :class:`Sandbox`; the global RNG
    states are restored afterwards."""
    with global_rng_restored(), Sandbox() as box:
        return run_checks("distiller", spec.name, _DistillerChecks(spec, registry, box, time_limit, model).checks())


# ---------------------------------------------------------------------------- models
