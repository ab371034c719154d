"""Conformance checks: does a registered distiller, model or dataset keep the host's contract?

``dd-bench check-plugin`` runs them over loaded plugins and ``dd_bench.testing`` wraps them
for an author's own tests. Each check gives a :class:`CheckResult` with a one-line reason:
``pass``, ``fail``, or ``skip`` (only for a dataset whose files are not on this machine).
Everything runs on the CPU, from seeded generators, on the built-in ``digits`` and ``toy``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import api
from .errors import DataError, DDBenchError
from .matching.student import FlatModel
from .plugins import Registry
from .runtime import CACHE_ENV, seeded_build
from .specs import DatasetSpec, DataRequest, DataShape, DistillerSpec, ModelSpec, RealData
from .streaming import Images
from .synthetic import SyntheticSet

PASS, FAIL, SKIP = "pass", "fail", "skip"
TIME_LIMIT = 60.0
"""Seconds one smoke run (one dataset, one IPC) may take on the CPU."""
DISTILL_MODEL = "convnet_w32"
"""The distillation architecture of the smoke runs: the CPU-sized ConvNet the demo suite uses."""
SMOKE_RUNS = (("digits", 1), ("digits", 2), ("toy", 1), ("toy", 2))
GLOBAL_SEEDS = (11, 22)
"""Global torch/random/numpy seeds set before runs that must not depend on them."""
MODEL_SHAPES = tuple((c, s) for c in (1, 3) for s in (16, 28, 32))
MODEL_CLASSES = 10
MODEL_BATCH = 4
INPUT_DEPENDENCE = 1e-3
"""Logits of different images that agree to within this share of their size ignore the input."""
TRAIN_IMAGES, TRAIN_STEPS, TRAIN_FALL = 32, 20, 0.9
"""The training check: Adam (lr 1e-3) on a fixed batch of toy images must bring the loss to
at most ``TRAIN_FALL`` of its first value."""
SHARED_IMAGES = 0.01
"""Images that appear in two splits, as a share of the smaller split, before they count as a leak
(real datasets hold a few exact duplicates; a leaked split shares nearly all)."""
MEAN_TOLERANCE, STD_FACTOR = 0.05, 1.5
"""The normalised training split must have a per-channel mean within ``MEAN_TOLERANCE`` of 0 and
a std within a factor ``STD_FACTOR`` of 1: the literature's CIFAR-10 and Tiny-ImageNet stds are
means of per-image stds, which leave up to 1.3."""
BALANCE = 1.5
"""A balanced dataset's largest class is at most this many times its smallest (MNIST: 1.24)."""
SPLIT_TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
CPU = torch.device("cpu")

Checks = list[tuple[str, Callable[[], tuple[bool, str]]]]
"""Named checks, run in order; each returns (passed, one-line reason)."""


@dataclass(frozen=True)
class CheckResult:
    """One check of one registered object, as ``dd-bench check-plugin`` prints it."""

    kind: str
    """``distiller``, ``model`` or ``dataset``."""
    name: str
    check: str
    status: str
    """``pass``, ``fail`` or ``skip``."""
    reason: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status != FAIL


class _NotChecked(Exception):
    """A check that could not run because one it depends on failed."""


class _Skip(Exception):
    """The object cannot be checked on this machine (a dataset whose files are missing)."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, DDBenchError) else f"{type(exc).__name__}: {text}"


def _run(kind: str, name: str, checks: Checks) -> list[CheckResult]:
    """Run ``checks`` in order; an unexpected exception fails that check with its message."""
    results = []
    for check, fn in checks:
        started = time.perf_counter()
        try:
            ok, reason = fn()
            status = PASS if ok else FAIL
        except _Skip as exc:
            status, reason = SKIP, str(exc)
        except _NotChecked as exc:
            status, reason = FAIL, f"not checked: {exc}"
        except Exception as exc:
            status, reason = FAIL, _one_line(exc)
        results.append(CheckResult(kind, name, check, status, reason, round(time.perf_counter() - started, 3)))
    return results


def _seed_globals(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


@contextlib.contextmanager
def _global_rng_restored() -> Iterator[None]:
    """The checks reseed the global generators; the caller gets its own states back."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


# ---------------------------------------------------------------------------- distillers


class _Sandbox:
    """Fresh folders for the working directory, ``$HOME``, ``$DD_BENCH_CACHE`` and the temp dir
    (``TMPDIR`` and ``tempfile.tempdir``) while distillers run.

    Any file left in them afterwards was written outside ``request.cache_dir`` (its own
    folders here) and the checks' output folder. Files written to other absolute paths are
    not seen.
    """

    WATCHED = {"cwd": ".", "home": "$HOME", "tmp": "$TMPDIR", "env-cache": f"${CACHE_ENV}"}

    def __enter__(self) -> _Sandbox:
        self.root = Path(tempfile.mkdtemp(prefix="dd-bench-check-"))
        for name in (*self.WATCHED, "caches", "out"):
            (self.root / name).mkdir()
        self.out = self.root / "out"
        self._saved = (os.getcwd(), {k: os.environ.get(k) for k in ("HOME", CACHE_ENV, "TMPDIR")}, tempfile.tempdir)
        os.chdir(self.root / "cwd")
        os.environ.update(HOME=str(self.root / "home"), TMPDIR=str(self.root / "tmp"))
        os.environ[CACHE_ENV] = str(self.root / "env-cache")
        tempfile.tempdir = str(self.root / "tmp")
        return self

    def fresh_cache(self) -> Path:
        """A new, empty folder to pass as ``cache_dir``."""
        path = self.root / "caches" / str(len(list((self.root / "caches").iterdir())))
        path.mkdir()
        return path

    def stray_files(self) -> list[str]:
        return sorted(
            f"{label}/{path.relative_to(self.root / name)}"
            for name, label in self.WATCHED.items()
            for path in (self.root / name).rglob("*")
            if not path.is_dir()
        )

    def __exit__(self, *exc: object) -> None:
        cwd, env, tmp = self._saved
        os.chdir(cwd)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        tempfile.tempdir = tmp
        shutil.rmtree(self.root, ignore_errors=True)


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


def _chunks(x: Images, size: int = 4096) -> Iterator[torch.Tensor]:
    """``x`` in consecutive batches (a streamed split is never read whole)."""
    for s in range(0, len(x), size):
        yield x[s : s + size].detach()


def _moments(*images: Images) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of ``[N,C,H,W]`` images (all of ``images`` together), in float64."""
    count, total, squares = 0, 0.0, 0.0
    for x in images:
        for chunk in _chunks(x):
            chunk = chunk.to(torch.float64)
            count += chunk.numel() // chunk.shape[1]
            total = total + chunk.sum(dim=(0, 2, 3))
            squares = squares + chunk.square().sum(dim=(0, 2, 3))
    mean = total / count
    return mean, (squares / count - mean.square()).clamp_min(0).sqrt()


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
        return f"the set says mean {syn.mean}, std {syn.std}; the data is normalised with mean {data.mean}, std {data.std}"
    if syn.zca:
        return None
    m, s = _moments(syn.images)
    ref_m, ref_s = _moments(data.train_x)
    mean, std = torch.tensor(data.mean, dtype=torch.float64), torch.tensor(data.std, dtype=torch.float64)
    if _distance(m, s, ref_m, ref_s) > _distance(m, s, ref_m * std + mean, ref_s * std):
        return (
            f"the images look like pixel values, not normalised ones (mean {m.mean():.3g}, std {s.mean():.3g};"
            f" normalised training images have mean {ref_m.mean():.3g}, std {ref_s.mean():.3g})"
        )
    return None


class _DistillerChecks:
    """The distiller checks, sharing their runs: four smoke runs, then a few repeats."""

    def __init__(self, spec: DistillerSpec, registry: Registry, box: _Sandbox, time_limit: float, model: str):
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
        _seed_globals(global_seed)
        return api.distill(self.registry, self.spec, self.data[dataset], ipc, seed=seed, preset="smoke",
                           device=CPU, cache_dir=cache_dir, model=self.model, progress=False)  # fmt: skip

    def _smoke_sets(self) -> dict[tuple[str, int], SyntheticSet]:
        if len(self.sets) != len(SMOKE_RUNS):
            raise _NotChecked("the smoke runs failed")
        return self.sets

    def presets(self) -> tuple[bool, str]:
        bad = []
        for name in self.spec.presets:
            try:
                self.spec.resolve_config(name)
            except Exception as exc:
                bad.append(f"{name!r}: {_one_line(exc)}")
        n = len(self.spec.presets)
        if bad:
            return False, f"{len(bad)} of {n} presets do not resolve; {bad[0]}"
        return True, f"all {n} presets resolve to a valid {self.spec.config_cls.__name__}"

    def smoke(self) -> tuple[bool, str]:
        for name in dict(SMOKE_RUNS):
            self.data[name] = self.registry.dataset(name).load(DataRequest())
            self.pristine[name] = {k: getattr(self.data[name], k).clone() for k in SPLIT_TENSORS}
        for dataset, ipc in SMOKE_RUNS:
            started = time.perf_counter()
            try:
                self.sets[dataset, ipc] = self._distill(dataset, ipc, 0, GLOBAL_SEEDS[0], self.cache)
            except Exception as exc:
                return False, f"{dataset} IPC {ipc}: {_one_line(exc)}"
            self.seconds[dataset, ipc] = time.perf_counter() - started
        (dataset, ipc), slowest = max(self.seconds.items(), key=lambda item: item[1])
        ok = slowest <= self.time_limit
        verdict = "within" if ok else "over"
        return ok, f"digits and toy at IPC 1 and 2; slowest {dataset} IPC {ipc}: {slowest:.1f} s, {verdict} the {self.time_limit:g} s limit"

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
            raise _NotChecked("the same-seed check failed")
        if self.global_rng_difference is None:
            return True, "the same set whatever the global torch, random and numpy seeds"
        if not self.same_seed_ok:
            raise _NotChecked("the same seed does not repeat even under the same global seeds")
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
                return False, f"declared deterministic, but on digits IPC 2 seeds 0 and 1 give different sets: {difference}"
            return True, "declared deterministic: seeds 0 and 1 give the same set"
        if difference is None:
            return False, "digits IPC 2: seeds 0 and 1 give the same set (declare deterministic=True if the seed is unused)"
        return True, f"digits IPC 2: seeds 0 and 1 give different sets ({difference})"

    def data_untouched(self) -> tuple[bool, str]:
        if not self.pristine:
            raise _NotChecked("digits and toy did not load")
        for dataset, before in self.pristine.items():
            for key, tensor in before.items():
                if not torch.equal(getattr(self.data[dataset], key), tensor):
                    return False, f"{dataset} {key} changed during distillation; copy request.data's tensors before changing them"
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
    also supplies ``model`` and expert optimizers). Runs in a :class:`_Sandbox`; the global RNG
    states are restored afterwards."""
    with _global_rng_restored(), _Sandbox() as box:
        return _run("distiller", spec.name, _DistillerChecks(spec, registry, box, time_limit, model).checks())


# ---------------------------------------------------------------------------- models


def _shape_name(shape: DataShape) -> str:
    return f"{shape.channels}x{shape.height}x{shape.width}"


class _ModelChecks:
    def __init__(self, spec: ModelSpec, registry: Registry):
        self.spec, self.registry = spec, registry
        self.built: dict[DataShape, nn.Module] = {}
        self.logits: dict[DataShape, object] = {}

    def checks(self) -> Checks:
        return [
            ("shapes", self.shapes),
            ("logits", self.logits_shape),
            ("seeded-init", self.seeded_init),
            ("trains", self.trains),
            ("functional-call", self.functional_call),
        ]

    def _build(self, shape: DataShape) -> nn.Module:
        return seeded_build(lambda: self.spec.build(shape), 0, CPU)

    def _first(self) -> DataShape:
        if not self.built:
            raise _NotChecked("it builds for no shape")
        return next(iter(self.built))

    def shapes(self) -> tuple[bool, str]:
        refused: dict[DataShape, str] = {}
        g = torch.Generator().manual_seed(0)
        for channels, size in MODEL_SHAPES:
            shape = DataShape(channels, size, size, MODEL_CLASSES)
            x = torch.randn(MODEL_BATCH, channels, size, size, generator=g)
            try:
                model = self._build(shape)
            except DDBenchError as exc:
                refused[shape] = _one_line(exc)
                continue
            except Exception as exc:
                return False, f"build for {_shape_name(shape)} raises {_one_line(exc)} (refuse with a ConfigError)"
            try:
                self.logits[shape] = model.train()(x)
            except Exception as exc:
                return False, f"built for {_shape_name(shape)}, but its forward pass raises {_one_line(exc)}"
            self.built[shape] = model
        if not self.built:
            return False, f"refuses every shape; {next(iter(refused.values()))}"
        reason = f"builds {', '.join(map(_shape_name, self.built))}"
        if refused:
            reason += f"; refuses {', '.join(map(_shape_name, refused))}: {next(iter(refused.values()))}"
        return True, reason

    def logits_shape(self) -> tuple[bool, str]:
        self._first()
        for shape, out in self.logits.items():
            if not isinstance(out, torch.Tensor):
                return False, f"{_shape_name(shape)}: forward returns {type(out).__name__}, not a logits tensor"
            if tuple(out.shape) != (MODEL_BATCH, MODEL_CLASSES):
                return False, f"{_shape_name(shape)}: logits have shape {list(out.shape)}, expected [{MODEL_BATCH}, {MODEL_CLASSES}]"
            if not out.is_floating_point() or not torch.isfinite(out).all():
                return False, f"{_shape_name(shape)}: logits are not finite floats"
            size, spread = out.abs().max().item(), (out - out[0]).abs().max().item()
            if size > 0 and spread <= INPUT_DEPENDENCE * size:
                return False, f"{_shape_name(shape)}: the logits of {MODEL_BATCH} random images differ by {spread:.1e} at most: they ignore the input"
        return True, f"finite [N, K] = [{MODEL_BATCH}, {MODEL_CLASSES}] logits that depend on the input, for every shape it builds"

    def seeded_init(self) -> tuple[bool, str]:
        shape = self._first()
        _seed_globals(GLOBAL_SEEDS[0])
        a = self._build(shape).state_dict()
        _seed_globals(GLOBAL_SEEDS[1])
        b = self._build(shape).state_dict()
        for key, value in a.items():
            if key not in b or not torch.equal(value, b[key]):
                return False, f"seed 0 twice gives different initial {key!r} (draw from torch's seeded generator only)"
        return True, f"seed 0 twice gives the same {len(a)} initial tensors"

    def trains(self) -> tuple[bool, str]:
        toy = self.registry.dataset("toy").load(DataRequest())
        pick = torch.randperm(len(toy.train_y), generator=torch.Generator().manual_seed(0))[:TRAIN_IMAGES]
        x, y, shape, where = toy.train_x[pick], toy.train_y[pick], toy.shape, "toy"
        try:
            model = self._build(shape)
        except DDBenchError:  # too small for it: toy resized to the first shape it builds for
            first = self._first()
            shape = DataShape(first.channels, first.height, first.width, toy.num_classes)
            x = F.interpolate(x, size=(first.height, first.width), mode="bilinear", align_corners=False)
            x = x.repeat(1, first.channels, 1, 1)
            model, where = self._build(shape), f"toy resized to {_shape_name(shape)}"
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses = []
        for _ in range(TRAIN_STEPS):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        ok = losses[-1] <= TRAIN_FALL * losses[0]
        return ok, f"{where}, {TRAIN_IMAGES} images: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {TRAIN_STEPS} Adam steps"

    def functional_call(self) -> tuple[bool, str]:
        if not self.spec.functional:
            return True, "declared functional=False: not tried (trajectory matching cannot use it)"
        shape = self._first()
        model = self.built[shape].eval()
        x = torch.randn(MODEL_BATCH, shape.channels, shape.height, shape.width, generator=torch.Generator().manual_seed(1))
        y = torch.arange(MODEL_BATCH) % MODEL_CLASSES
        model.zero_grad(set_to_none=True)
        direct = model(x)
        F.cross_entropy(direct, y).backward()
        flat_model = FlatModel(model)
        flat = flat_model.flatten().requires_grad_(True)
        out = flat_model(flat, x)
        if not torch.allclose(out, direct, rtol=1e-4, atol=1e-5):
            return False, "under functional_call the logits differ from the module's own"
        (grad,) = torch.autograd.grad(F.cross_entropy(out, y), flat, allow_unused=True)
        grads = dict(zip(flat_model.names, (grad if grad is not None else torch.zeros_like(flat)).split(flat_model.sizes)))
        for name, p in model.named_parameters():
            if p.grad is not None and p.grad.any() and not grads[name].any():
                return False, f"no gradient reaches {name!r} through functional_call (declare functional=False?)"
        return True, f"{_shape_name(shape)}: the same logits, and gradients reach every parameter"


def model_checks(spec: ModelSpec, registry: Registry) -> list[CheckResult]:
    """Check a model family: shapes it builds, logits, seeded init, training on ``toy``, functional_call."""
    with _global_rng_restored():
        return _run("model", spec.name, _ModelChecks(spec, registry).checks())


# ---------------------------------------------------------------------------- datasets


def _image_keys(x: Images) -> list[bytes]:
    """One fingerprint per image (a hash of its bytes), to compare splits."""
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest()
            for chunk in _chunks(x) for row in chunk.reshape(len(chunk), -1).contiguous().numpy()]


def _class_counts(y: torch.Tensor, k: int) -> torch.Tensor:
    """Images per class; labels out of range are the labels check's business."""
    return torch.bincount(y[(y >= 0) & (y < k)], minlength=k)


def _same_split(a: RealData, b: RealData, split: str) -> bool:
    xa, xb = getattr(a, f"{split}_x"), getattr(b, f"{split}_x")
    return (xa.shape == xb.shape and all(torch.equal(p, q) for p, q in zip(_chunks(xa), _chunks(xb)))
            and torch.equal(getattr(a, f"{split}_y"), getattr(b, f"{split}_y")))


class _DatasetChecks:
    def __init__(self, spec: DatasetSpec):
        self.spec = spec
        self.data: RealData | None = None
        self.missing = False
        self.test_same: tuple[bool, bool] | None = None

    def checks(self) -> Checks:
        return [
            ("loads", self.loads),
            ("labels", self.labels),
            ("disjoint-splits", self.disjoint),
            ("val-seeded", self.val_seeded),
            ("test-fixed", self.test_fixed),
            ("normalisation", self.normalisation),
            ("balanced", self.balanced),
        ]

    def _need(self) -> RealData:
        if self.missing:
            raise _Skip("its data is not on this machine (see loads)")
        if self.data is None:
            raise _NotChecked("it did not load")
        return self.data

    def loads(self) -> tuple[bool, str]:
        try:
            data = self.spec.load(DataRequest(seed=0))
        except DataError as exc:
            self.missing = True
            raise _Skip(f"its data is not on this machine: {_one_line(exc)}") from None
        if not isinstance(data, RealData):
            return False, f"load returns {type(data).__name__}, not RealData"
        if data.name != self.spec.name:
            return False, f"RealData.name is {data.name!r}; it must be the registered name {self.spec.name!r}"
        for split in ("train", "val", "test"):
            x = getattr(data, f"{split}_x")
            if not all(chunk.is_floating_point() and torch.isfinite(chunk).all() for chunk in _chunks(x)):
                return False, f"{split} images are not finite floats"
        self.data = data
        c, h, w = data.train_x.shape[1:]
        return True, (
            f"{len(data.train_y)} train, {len(data.val_y)} val, {len(data.test_y)} test images of {c}x{h}x{w},"
            f" {data.num_classes} classes"
        )

    def labels(self) -> tuple[bool, str]:
        data = self._need()
        k = data.num_classes
        if len(set(data.classes)) != k:
            return False, f"class names repeat: {list(data.classes)}"
        for split in ("train", "val", "test"):
            y = getattr(data, f"{split}_y")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
                return False, f"{split} labels span {int(y.min())}..{int(y.max())}, but there are {k} classes"
        empty = [data.classes[c] for c, n in enumerate(data.class_counts().tolist()) if n == 0]
        if empty:
            return False, f"no training images for class {', '.join(map(repr, empty))}"
        return True, f"labels of every split in 0..{k - 1}; every class has training images"

    def disjoint(self) -> tuple[bool, str]:
        data = self._need()
        keys = {split: set(_image_keys(getattr(data, f"{split}_x"))) for split in ("train", "val", "test")}
        shared = []
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            n, smaller = len(keys[a] & keys[b]), min(len(keys[a]), len(keys[b]))
            if n > SHARED_IMAGES * smaller:
                return False, f"{n} images appear in both {a} and {b} ({n / smaller:.0%} of the smaller split)"
            if n:
                shared.append(f"{n} in both {a} and {b}")
        if shared:
            return True, f"under {SHARED_IMAGES:.0%} of a split shared (duplicates in the source?): {', '.join(shared)}"
        return True, "no image appears in two of train, val and test"

    def val_seeded(self) -> tuple[bool, str]:
        a = self._need()
        again, other = self.spec.load(DataRequest(seed=0)), self.spec.load(DataRequest(seed=1))
        self.test_same = (_same_split(a, again, "test"), _same_split(a, other, "test"))
        if len(a.val_y) == 0:
            return False, "the validation split is empty (asked for val_fraction=0.1)"
        if not _same_split(a, again, "val"):
            return False, "seed 0 twice gives different validation splits"
        if _same_split(a, other, "val"):
            return False, "seeds 0 and 1 give the same validation split; carve it with the request's seed"
        if sorted(_image_keys(a.train_x) + _image_keys(a.val_x)) != sorted(_image_keys(other.train_x) + _image_keys(other.val_x)):
            return False, "seeds 0 and 1 carve validation out of different training images"
        return True, f"{len(a.val_y)} validation images, fixed for seed 0, others for seed 1, from the same training pool"

    def test_fixed(self) -> tuple[bool, str]:
        self._need()
        if self.test_same is None:
            raise _NotChecked("the seeded loads failed")
        again, other = self.test_same
        if not again:
            return False, "loading twice with seed 0 gives different test splits"
        if not other:
            return False, "the test split changes with the seed (0 vs 1)"
        return True, "the same test images and labels for seeds 0 and 1"

    def normalisation(self) -> tuple[bool, str]:
        data = self._need()
        mean, std = _moments(data.train_x, data.val_x)  # the training split, before validation was carved
        figures = f"mean {[round(v, 3) for v in mean.tolist()]}, std {[round(v, 3) for v in std.tolist()]}"
        if (mean.abs() > MEAN_TOLERANCE).any() or (std > STD_FACTOR).any() or (std < 1 / STD_FACTOR).any():
            return False, (
                f"normalised training images have {figures}; mean/std must be the training split's"
                f" (mean within {MEAN_TOLERANCE} of 0, std within x{STD_FACTOR} of 1)"
            )
        return True, f"normalised training images have {figures}"

    def balanced(self) -> tuple[bool, str]:
        data = self._need()
        train, test = (_class_counts(y, data.num_classes) for y in (torch.cat([data.train_y, data.val_y]), data.test_y))
        figures = f"train {int(train.min())}..{int(train.max())}, test {int(test.min())}..{int(test.max())} per class"
        if not self.spec.balanced:
            return True, f"declared balanced=False: {figures}"
        for counts in (train, test):
            if len(counts) and (counts.min() == 0 or counts.max() > BALANCE * counts.min()):
                return False, f"{figures}, more than x{BALANCE} apart (declare balanced=False if that is the data)"
        return True, figures


def dataset_checks(spec: DatasetSpec) -> list[CheckResult]:
    """Check a dataset: labels, disjoint splits, seeded validation, fixed test, normalisation, balance.

    A loader that raises ``DataError`` (its files are missing) is skipped, not failed.
    """
    return _run("dataset", spec.name, _DatasetChecks(spec).checks())
