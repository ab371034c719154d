"""The evaluation protocol: train fresh models on a synthetic set, report test accuracy.

Defaults follow the literature (SGD momentum 0.9, weight decay 5e-4, batch 256, the set's
learned lr or 0.01, x0.1 at half of 1000 epochs, DSA on). The reported figure is the
final-epoch test accuracy; nothing is selected on test. Validation accuracy is reported
beside it for anyone who tunes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

import torch

from .augment import DEFAULT_STRATEGY, DSA, crop_flip, parse_strategy
from .errors import ConfigError
from .runtime import seeded_build
from .specs import ModelSpec, RealData
from .synthetic import SyntheticSet
from .training import TrainRecipe, class_accuracy, compile_wanted, train_classifiers

LabelProtocol = Literal["hard", "set", "teacher"]
LABEL_PROTOCOLS: tuple[str, ...] = get_args(LabelProtocol)
RecipeName = Literal["classic", "decoupled"]

EVAL_RECIPES: dict[str, dict[str, Any]] = {
    # SGD momentum 0.9, weight decay 5e-4, x0.1 at half of 1000 epochs, DSA: the protocol of
    # DC/DSA/DM/MTT and the default
    "classic": {},
    # SRe2L's and RDED's evaluation of ImageNet-scale sets (SRe2L validate/train_KD.py, RDED's
    # main.py): AdamW lr 0.001, weight decay 0.01, cosine over 300 epochs (set per epoch),
    # RandomResizedCrop (scale 0.08-1) + horizontal flip instead of DSA, the teacher's soft
    # labels of every augmented batch at temperature 20 (their scripts' -T 20), RDED's batch
    # size rule (batch_size none: see EvalConfig.train_recipe), and the test split's images resized
    # so that the centre crop is 0.875 of their shorter side (224 px from 256)
    "decoupled": {
        "optimizer": "adamw",
        "lr": 0.001,
        "weight_decay": 0.01,
        "schedule": "cosine",
        "epochs": 300,
        "batch_size": None,
        "dsa": False,
        "crop_flip": True,
        "labels": "teacher",
        "temperature": 20.0,
        "test_crop_pct": 0.875,
    },
}
"""Named evaluation recipes: the field values each sets before a suite's or the command line's
own overrides (``EvalConfig.named``)."""


@dataclass(frozen=True)
class EvalConfig:
    """Every knob of the protocol; ``lr=None`` means the set's learned lr, else 0.01."""

    epochs: int = 1000
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int | None = 256
    """None: RDED's rule by IPC and classes (see ``train_recipe``)."""
    decay_at: float | None = 0.5
    dsa: bool = True
    dsa_strategy: str = DEFAULT_STRATEGY
    use_weights: bool = True
    """Train with the set's per-sample weights when it has them (weighted loss)."""
    labels: LabelProtocol = "set"
    """The label protocol: ``hard`` trains on class indices (argmax of soft labels), ``set`` on
    the labels stored in the set (hard or soft), ``teacher`` on the teacher's softened outputs
    for every augmented batch (KL at ``temperature``; SRe2L/RDED's relabelling, DD-Ranking's
    soft-label protocol). The teacher is the one the set names, else ``teacher_model``'s."""
    temperature: float = 4.0
    """Softmax temperature of the teacher protocol's KL loss."""
    teacher_model: str | None = None
    """labels=teacher: the teacher's architecture for sets that name none (a set that names one
    must name this same recipe); none: the set's own teacher only."""
    teacher_epochs: int = 30
    teacher_lr: float = 0.01
    recipe: RecipeName = "classic"
    """The named recipe (``EVAL_RECIPES``) the other fields started from; build with ``named``."""
    optimizer: Literal["sgd", "adamw"] = "sgd"
    schedule: Literal["step", "cosine"] = "step"
    """``step``: x0.1 at ``decay_at``; ``cosine``: 0.5 (1 + cos(pi epoch / epochs)) per epoch."""
    crop_flip: bool = False
    """RandomResizedCrop (area 0.08-1, aspect 3/4-4/3) back to the image size and a horizontal
    flip, per image (the decoupled papers' augmentation; use it instead of DSA)."""
    test_crop_pct: float = 1.0
    """The test images' centre crop as a fraction of their resized shorter side (timm's crop_pct):
    1 evaluates the dataset's own preprocessing; 0.875 resizes to 256 and crops 224 (image-file
    datasets only; others refuse any other value)."""

    @classmethod
    def named(cls, recipe: str = "classic", **overrides: Any) -> EvalConfig:
        """The ``recipe``'s values (``EVAL_RECIPES``), then ``overrides``."""
        if recipe not in EVAL_RECIPES:
            raise ConfigError(f"eval recipe={recipe!r} is not allowed: use one of {', '.join(EVAL_RECIPES)}")
        return cls(**{**EVAL_RECIPES[recipe], **overrides, "recipe": recipe})

    def __post_init__(self) -> None:
        """A config that would not train (zero epochs, a bad lr or DSA strategy) fails here, before any work."""
        if self.recipe not in EVAL_RECIPES:
            raise ConfigError(f"recipe={self.recipe!r} is not allowed: use one of {', '.join(EVAL_RECIPES)}")
        TrainRecipe(
            self.epochs,
            self.lr if self.lr is not None else 0.01,
            self.momentum,
            self.weight_decay,
            self.batch_size or 1,
            self.decay_at,
            self.optimizer,
            self.schedule,
        )
        parse_strategy(self.dsa_strategy)
        if self.dsa and self.crop_flip:
            raise ConfigError("dsa=true and crop_flip=true are not allowed together: pick one augmentation")
        if not 0 < self.test_crop_pct <= 1:
            raise ConfigError(f"test_crop_pct={self.test_crop_pct} is not allowed: use a fraction in (0, 1]")
        if self.labels not in get_args(LabelProtocol):
            raise ConfigError(f"labels={self.labels!r} is not allowed: use one of {', '.join(get_args(LabelProtocol))}")
        if (
            isinstance(self.temperature, bool)
            or not isinstance(self.temperature, (int, float))
            or not 0 < self.temperature < math.inf
        ):
            raise ConfigError(f"temperature={self.temperature!r} is not allowed: use a finite number > 0")
        self.teacher_recipe()

    def teacher_recipe(self) -> Any:
        """The ``TeacherRecipe`` this config names (None without ``teacher_model``)."""
        if self.teacher_model is None:
            return None
        from .teachers import TeacherRecipe

        return TeacherRecipe(model=self.teacher_model, epochs=self.teacher_epochs, lr=float(self.teacher_lr))

    def train_recipe(self, syn: SyntheticSet) -> TrainRecipe:
        """The training recipe for ``syn``; ``batch_size`` none is RDED's rule: 10, 50 or 100 for
        IPC 1, up to 10 and more, doubled for 100 classes or more."""
        lr = self.lr if self.lr is not None else (syn.lr if syn.lr is not None else 0.01)
        batch = self.batch_size or (10 if syn.ipc <= 1 else 50 if syn.ipc <= 10 else 100) * (
            2 if syn.num_classes >= 100 else 1
        )
        return TrainRecipe(
            self.epochs, lr, self.momentum, self.weight_decay, batch, self.decay_at, self.optimizer, self.schedule
        )

    def augment(self) -> Any:
        """The training augmentation: DSA, crop and flip, or none."""
        return DSA(self.dsa_strategy) if self.dsa else crop_flip if self.crop_flip else None


@dataclass(frozen=True)
class Summary:
    """Accuracies (percent) over seeds with mean, sample std, n and a 95% t-interval."""

    accs: tuple[float, ...]
    val_accs: tuple[float, ...] = ()
    class_accs: tuple[tuple[float, ...], ...] = ()
    """Per seed, the test accuracy of each class (nan for a class without test images)."""

    @property
    def n(self) -> int:
        return len(self.accs)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accs) if self.accs else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.accs) if self.n > 1 else 0.0

    @property
    def ci95(self) -> float:
        """Half-width of the 95% confidence interval of the mean (t distribution)."""
        if self.n < 2:
            return math.nan
        from scipy.stats import t

        return float(t.ppf(0.975, self.n - 1) * self.std / math.sqrt(self.n))

    def to_dict(self) -> dict[str, Any]:
        return {
            "accs": list(self.accs),
            "mean": self.mean,
            "std": self.std,
            "n": self.n,
            "ci95": self.ci95,
            "val_accs": list(self.val_accs),
            "class_accs": [[None if math.isnan(a) else a for a in seed] for seed in self.class_accs],
        }


@dataclass
class EvalReport:
    dataset: str
    ipc: int
    method: str
    config: EvalConfig
    results: dict[str, Summary] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "ipc": self.ipc,
            "method": self.method,
            "config": asdict(self.config),
            "results": {name: s.to_dict() for name, s in self.results.items()},
        }


def evaluate_model(
    syn: SyntheticSet,
    data: RealData,
    model_spec: ModelSpec,
    seeds: Sequence[int],
    config: EvalConfig,
    device: torch.device,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    progress: Callable[[int], None] | None = None,
    batched: bool | None = None,
    teacher: Any = None,
) -> list[dict[str, Any]]:
    """Train a fresh ``model_spec`` network on ``syn`` per seed; per seed, each split's accuracy
    (``{split: acc}``) and its classes' (``{split}_classes``: a tuple in class order).

    ``batched``: train the networks together (``train_classifiers``), each with its own seeded
    weights, batch order and DSA draws. By default only on CUDA: on the CPU the vmapped
    (grouped) convolutions train slower than the networks in turn (``benchmarks/eval_speed.py``:
    0.4-0.7x for ConvNets at IPC 10-50 on 2 cores). ``splits`` are ``(x, y)`` pairs already in
    the set's space (see ``eval_splits``). A set with ``factor`` > 1 trains on its decoded images.
    Networks trained in turn run compiled where :func:`dd_bench.training.compile_wanted` says so
    (long evaluations of ``compile_on_cpu`` architectures on the CPU; equal to eager training to
    float tolerance, not bit for bit; runs record ``DD_BENCH_COMPILE``).
    ``config.labels`` picks the targets (see ``EvalConfig.labels``); ``teacher`` (a
    :class:`dd_bench.teachers.Teacher`) is required for ``teacher`` and unused otherwise.
    """
    syn = syn.decoded()
    labels = syn.hard_labels() if config.labels == "hard" else syn.labels
    if config.labels == "teacher" and teacher is None:
        raise ConfigError(
            f"labels=teacher needs a teacher for the {syn.method} set: resolve one with dd_bench.api.eval_teacher"
        )
    models = [seeded_build(lambda: model_spec.build(data.shape), seed, device) for seed in seeds]
    augment = config.augment()
    weights = syn.weights.to(device) if (config.use_weights and syn.weights is not None) else None
    recipe = config.train_recipe(syn)
    train_classifiers(
        models,
        syn.images.to(device),
        labels.to(device),
        recipe,
        [torch.Generator().manual_seed(seed) for seed in seeds],
        weights=weights,
        augment=augment,
        batched=(device.type == "cuda" if batched is None else batched) and model_spec.functional,
        progress=progress,
        teacher=None if config.labels != "teacher" else _on(teacher, device),
        temperature=config.temperature,
        compile=compile_wanted(device, len(seeds) * recipe.steps(syn.images.shape[0]), model_spec.compile_on_cpu),
    )
    out = []
    for model in models:
        measured = {name: class_accuracy(model, x, y, data.num_classes) for name, (x, y) in splits.items()}
        out.append(
            {
                **{name: acc for name, (acc, _) in measured.items()},
                **{f"{name}_classes": c for name, (_, c) in measured.items()},
            }
        )
    return out


def _on(teacher: Any, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The teacher's logits function, its network moved to ``device`` and kept in eval mode."""
    teacher.model.to(device).eval()
    return lambda xb: teacher.model(xb).float()


def eval_splits(syn: SyntheticSet, data: RealData) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Validation and test images in the space the synthetic set lives in (ZCA if it is)."""
    syn.check_compatible(data)
    val_x, test_x = data.val_x, data.test_x
    if syn.zca:
        from .zca import fitted_zca

        zca = fitted_zca(data)
        val_x, test_x = zca.transform(val_x), zca.transform(test_x)
    return {"val": (val_x, data.val_y), "test": (test_x, data.test_y)}


def evaluate(
    syn: SyntheticSet,
    data: RealData,
    models: Sequence[tuple[str, ModelSpec]],
    seeds: Sequence[int],
    config: EvalConfig = EvalConfig(),
    device: torch.device = torch.device("cpu"),
    progress: Callable[[int], None] | None = None,
    teacher: Any = None,
) -> EvalReport:
    """Every model x seed; the models are ``(name, spec)`` pairs; ``teacher`` for labels=teacher."""
    if not seeds:
        raise ConfigError("seeds must name at least one seed")
    splits = eval_splits(syn, data)
    report = EvalReport(data.name, syn.ipc, syn.method, config)
    for name, spec in models:
        runs = evaluate_model(syn, data, spec, seeds, config, device, splits, progress, teacher=teacher)
        report.results[name] = Summary(
            tuple(r["test"] for r in runs), tuple(r["val"] for r in runs), tuple(r["test_classes"] for r in runs)
        )
    return report


def with_overrides(config: EvalConfig, **overrides: Any) -> EvalConfig:
    """``config`` with the non-None overrides applied."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
