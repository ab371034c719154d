"""The ``dd-bench`` command line. Errors are one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tqdm import tqdm

from . import __version__
from .errors import DDBenchError
from .limits import INT64_MAX, MAX_SEED, MAX_SEED_COUNT

TRACEBACK_ENV = "DD_BENCH_TRACEBACK"


def _registry():
    from .plugins import Registry

    return Registry()


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit 2) like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seeds(text: str) -> list[int]:
    """``3`` means seeds 0,1,2; ``0,4,7`` names them."""
    allowed = f"use a count (3) or a list of seeds (0,4,7): a count from 1 to {MAX_SEED_COUNT}, distinct seeds from 0 to {MAX_SEED}"
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            count = int(text)
            seeds = list(range(count)) if 1 <= count <= MAX_SEED_COUNT else []
    except ValueError:
        seeds = []
    if not seeds or any(not 0 <= s <= MAX_SEED for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}")
    return seeds


def _int_from(low: int, high: int = INT64_MAX) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            upper = f" and <= {high}" if high < INT64_MAX else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use an integer >= {low}{upper}")
        return value

    return parse


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a finite number > 0")
    return value


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use distinct comma-separated names")
    return names


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: use key=value")
    return key.strip(), value.strip()


def device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (default: the first CUDA GPU, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic GPU kernels (slower): a GPU run is then a function of its seed, as a CPU run always is")


def _device(args: argparse.Namespace):
    """The checked device of a command, said on stderr when ``auto`` picked it."""
    from .runtime import resolve_device

    return resolve_device(args.device, say=lambda text: print(text, file=sys.stderr))


def _progress(total: int, desc: str, shown: bool = True):
    return tqdm(total=total, desc=desc, unit="epoch", leave=False, disable=None if shown else True, file=sys.stderr)


# ---------------------------------------------------------------------------- plugins


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = _registry()

    def rows(table: dict[str, Any], with_presets: bool = False) -> list[dict[str, Any]]:
        out = []
        for name, reg in sorted(table.items()):
            row = {
                "name": name,
                "plugin": reg.plugin,
                "distribution": reg.distribution,
                "version": reg.version,
                "description": reg.spec.description,
            }
            if with_presets:
                row["presets"] = sorted(reg.spec.presets)
                row["shards"] = reg.spec.sharding is not None
            out.append(row)
        return out

    listing = {
        "datasets": rows(registry.datasets),
        "models": rows(registry.models),
        "distillers": rows(registry.distillers, with_presets=True),
    }
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for section, items in listing.items():
        print(f"{section}:")
        for row in items:
            origin = f"{row['plugin']} ({row['distribution'] or 'unpackaged'} {row['version'] or ''})".replace(" )", ")")
            presets = f" [presets: {', '.join(row['presets'])}]" if "presets" in row else ""
            presets += " [shards]" if row.get("shards") else ""
            print(f"  {row['name']:<16} {origin:<34} {row['description']}{presets}")
    print("models also resolve namespaced names through plugins, e.g. timm:resnet18, tv:vgg11")
    return 0


# ---------------------------------------------------------------------------- distill


def cmd_distill(args: argparse.Namespace) -> int:
    from . import api

    from .shards import check_count

    registry = _registry()
    api.resolve_config(registry, args.method, args.preset, dict(args.set or []))  # typos and bad values fail before any data loads
    check_count(registry.distiller(args.method), args.shards)
    device = _device(args)
    data = api.load_data(registry, args.dataset, args.data_root, args.download, args.resolution)
    shards = f", {args.shards} shards in turn" if args.shards > 1 else ""
    print(f"distilling {args.method} on {args.dataset} at ipc {args.ipc} (seed {args.seed}, {device}{shards})", file=sys.stderr)
    syn = api.distill(
        registry,
        args.method,
        data,
        args.ipc,
        seed=args.seed,
        preset=args.preset,
        overrides=dict(args.set or []),
        device=device,
        cache_dir=args.cache_dir,
        model=args.model,
        resolution=args.resolution,
        shards=args.shards,
    )
    path = syn.save(args.out)
    print(f"wrote {path} ({len(syn)} images, {syn.nbytes() / 1024:.1f} KiB)", file=sys.stderr)
    if args.grid:
        print(f"wrote {syn.save_grid(args.grid)}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- import / export


def cmd_import(args: argparse.Namespace) -> int:
    from . import api
    from .interchange import import_set

    registry = _registry()
    data = api.load_data(registry, args.dataset, args.data_root, args.download, args.resolution)
    syn = import_set(args.format, args.path, data, args.ipc, experiment=args.experiment, zca=args.zca,
                     normalization=args.normalization, lr=args.lr, method=args.method)  # fmt: skip
    if args.resolution is not None:
        syn.metadata["resolution"] = args.resolution  # evaluate reads the data at the set's resolution
    path = syn.save(args.out)
    source = syn.metadata["source"]
    print(f"wrote {path} ({len(syn)} images of {args.dataset} from {args.format} {args.path}; normalisation"
          f" {source['normalization']}, {'ZCA, ' if syn.zca else ''}{'soft' if syn.soft_labels else 'hard'} labels"
          f"{f', learned lr {syn.lr:g}' if syn.lr is not None else ''})", file=sys.stderr)  # fmt: skip
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .interchange import export_set
    from .synthetic import SyntheticSet

    syn = SyntheticSet.load(args.synthetic)
    print(f"wrote {export_set(syn, args.format, args.out)} ({args.format}, {len(syn.decoded())} images)", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- buffer


def cmd_buffer(args: argparse.Namespace) -> int:
    from . import api
    from .matching import ExpertRecipe, ensure_buffers
    from .runtime import default_cache_dir, seeded_build

    registry = _registry()
    model_spec = registry.model(args.model)
    optimizer = registry.optimizer(args.optimizer)
    recipe = ExpertRecipe(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, dsa=not args.no_dsa,
                          optimizer=args.optimizer, optimizer_options=dict(optimizer.defaults) if optimizer else {})
    device = _device(args)
    data = api.load_data(registry, args.dataset, args.data_root, args.download, args.resolution)
    train_x = data.train_x
    if args.zca:
        from .zca import fitted_zca

        train_x = fitted_zca(data, device, args.cache_dir or default_cache_dir()).transform(data.train_x)
    buffers = ensure_buffers(
        args.model,
        lambda seed: seeded_build(lambda: model_spec.build(data.shape), seed, device),
        data,
        train_x,
        recipe,
        args.experts,
        args.cache_dir or default_cache_dir(),
        device,
        zca=args.zca,
        optimizer_factory=optimizer.build if optimizer else None,
    )
    print(f"{len(buffers.trajectories)} experts x {buffers.epochs} epochs in {buffers.directory}")
    return 0


# ---------------------------------------------------------------------------- evaluate


def eval_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The evaluation settings the command line gives (``recipe`` first), as ``EvalConfig`` fields."""
    values = {
        "recipe": getattr(args, "recipe", None),
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "dsa": False if args.no_dsa else None,
        "use_weights": False if args.no_weights else None,
        **{k: getattr(args, k, None) for k in ("labels", "temperature", "teacher_model", "teacher_epochs", "teacher_lr")},
    }
    return {k: v for k, v in values.items() if v is not None}


def eval_config_from(args: argparse.Namespace):
    from .evaluate import EvalConfig

    overrides = eval_overrides(args)
    return EvalConfig.named(overrides.pop("recipe", "classic"), **overrides)


def format_report(report: Any) -> str:
    lines = [f"{report.method} on {report.dataset}, ipc {report.ipc}, labels={report.config.labels} (test accuracy %, final epoch)"]
    lines.append(f"  {'model':<20} {'mean':>7} {'std':>6} {'n':>3}   accs")
    for name, s in report.results.items():
        accs = ", ".join(f"{a:.2f}" for a in s.accs)
        lines.append(f"  {name:<20} {s.mean:7.2f} {s.std:6.2f} {s.n:>3}   {accs}")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate in this process, in the process group ``torchrun`` started, or (``--nproc N``)
    in N processes this command starts: the same figures, each network trained data-parallel."""
    from . import distributed

    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        _evaluation_inputs(args)  # bad input fails here in one line, and data caches are built once
        distributed.launch(_evaluate_in_group, args.nproc, str(_device(args)), args)
        return 0
    distributed.init_from_env(_device(args))
    return _evaluate(args)


def _evaluate_in_group(args: argparse.Namespace) -> None:
    _evaluate(args)


def _evaluation_inputs(args: argparse.Namespace) -> tuple:
    from . import api, distributed
    from .synthetic import SyntheticSet

    registry = _registry()
    syn = SyntheticSet.load(args.synthetic)
    models = [(name, registry.model(name)) for name in args.models]  # typos fail first
    config = eval_config_from(args)
    device = distributed.device_for_rank(_device(args))
    resolution = args.resolution if args.resolution is not None else syn.metadata.get("resolution")
    data = api.load_data(registry, syn.dataset, args.data_root, args.download, resolution, config.test_crop_pct)
    syn.check_compatible(data)
    return registry, syn, models, config, device, data


def _evaluate(args: argparse.Namespace) -> int:
    from . import api, distributed
    from .evaluate import evaluate

    registry, syn, models, config, device, data = _evaluation_inputs(args)
    main = distributed.is_main()
    teacher = api.eval_teacher(registry, syn, data, config, args.cache_dir, device, progress=main)  # a missing teacher fails before training
    if teacher is not None and main:
        print(f"teacher {teacher.recipe.model} {teacher.key}: validation accuracy {teacher.val_acc:.2f}%", file=sys.stderr)
    with _progress(config.epochs * len(models) * len(args.seeds), f"evaluate {syn.method}", main) as bar:
        report = evaluate(syn, data, models, args.seeds, config, device, bar.update, teacher=teacher)
    if main:
        print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0


# ---------------------------------------------------------------------------- report


def _references(text: str) -> list[str]:
    names = [] if text.strip() == "none" else _names(text)
    if any(n not in ("random", "full") for n in names):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use random, full, random,full or none")
    return names


def cmd_report(args: argparse.Namespace) -> int:
    import shlex

    from . import report, tracking

    data = {"root": str(args.data_root) if args.data_root else None, "download": args.download, "resolution": args.resolution}
    result, files = report.make(
        args.sets, args.models, args.seeds, eval_overrides(args), args.out, references=args.references,
        full_epochs=args.full_epochs, experiment=args.experiment, tracking_uri=args.tracking_uri, device=args.device,
        deterministic=args.deterministic, cache_dir=str(args.cache_dir) if args.cache_dir else None, data=data,
        command="dd-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]), quiet=args.quiet,
    )  # fmt: skip
    for ds, ipc, rows in result.groups():
        print(f"{ds}, IPC {ipc} (test accuracy %):")
        for r in rows:
            print(f"  {r.label:<40} " + "  ".join(f"{m} {r.text(m)}" for m in args.models))
    uri = tracking.normalise_uri(args.tracking_uri)
    print(f"wrote {args.out}/ ({', '.join(sorted({f.relative_to(args.out).parts[0] for f in files}))}); runs in {uri}", file=sys.stderr)
    return 1 if any(r.error for r in result.rows) else 0


# ---------------------------------------------------------------------------- parser


def eval_options(p: argparse.ArgumentParser) -> None:
    """The evaluation protocol's options (``evaluate``, ``report``)."""
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="evaluation networks: a count (3 = seeds 0,1,2) or a list 0,4,7")
    p.add_argument("--recipe", choices=["classic", "decoupled"],
                   help="named evaluation recipe the other options override: classic (SGD, step decay, DSA; default) or"
                        " decoupled (SRe2L/RDED: AdamW, cosine, 300 epochs, crop+flip, teacher labels at T=20, 0.875 test crop)")
    p.add_argument("--epochs", type=_int_from(1), help="training epochs (default 1000)")
    p.add_argument("--lr", type=_positive_float, help="learning rate (default: the set's learned lr, else 0.01)")
    p.add_argument("--batch-size", type=_int_from(1), help="minibatch size (default 256)")
    p.add_argument("--no-dsa", action="store_true", help="train without DSA augmentation")
    p.add_argument("--no-weights", action="store_true", help="ignore the set's per-sample weights")
    p.add_argument("--labels", choices=["hard", "set", "teacher"],
                   help="label protocol: hard (class indices), set (the set's labels; default), teacher (the teacher's"
                        " softened outputs on every augmented batch, KL at --temperature)")
    p.add_argument("--temperature", type=_positive_float, help="temperature of the teacher protocol (default 4)")
    p.add_argument("--teacher-model", help="labels=teacher: teacher architecture for a set that names no teacher")
    p.add_argument("--teacher-epochs", type=_int_from(1), help="epochs of that teacher (default 30)")
    p.add_argument("--teacher-lr", type=_positive_float, help="learning rate of that teacher (default 0.01)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dd-bench", description="Distil, evaluate and rank dataset-distillation methods.")
    parser.add_argument("--version", action="version", version=f"dd-bench {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plugins", help="list datasets, models and distillers with their plugins")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-root", type=Path, help="folder holding the dataset files")
        p.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
        p.add_argument("--resolution", type=_int_from(1), metavar="N",
                       help="resize and centre-crop to N x N (datasets read from image files, e.g. image_folder;"
                            " evaluate: default the set's)")
        device_options(p)

    p = sub.add_parser("distill", help="distil a synthetic set and write it to a file")
    p.add_argument("--method", required=True, help="distiller name (see `dd-bench plugins`)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--ipc", type=_int_from(1), required=True, help="images per class")
    p.add_argument("--seed", type=_int_from(0, MAX_SEED), default=0)
    p.add_argument("--out", type=Path, required=True, help="where to write the synthetic set (.pt)")
    p.add_argument("--preset", help="a named preset of the method")
    p.add_argument("--set", type=_key_value, action="append", metavar="KEY=VALUE", help="override one config value (repeatable)")
    p.add_argument("--model", default="convnet", help="distillation architecture (default convnet)")
    p.add_argument("--cache-dir", type=Path, help="cache for expert buffers (default $DD_BENCH_CACHE or ~/.cache/dd-bench)")
    p.add_argument("--grid", type=Path, help="also write a PNG grid of the images here")
    p.add_argument("--shards", type=_int_from(1), default=1, metavar="N",
                   help="run a method whose classes are independent as N shards in turn, each kept in the cache when done"
                        " (the set does not depend on N)")
    data_options(p)
    p.set_defaults(func=cmd_distill)

    from .interchange import EXPORT_FORMATS, IMPORT_FORMATS, NORMALIZATIONS

    p = sub.add_parser("import", help="turn a published distilled set (DC, MTT, DATM, image folders, tensors) into a dd-bench set")
    p.add_argument("format", choices=IMPORT_FORMATS, help="the format the set was published in")
    p.add_argument("path", type=Path, help="the file, or the folder holding the files")
    p.add_argument("--dataset", required=True, help="the dataset it was distilled from")
    p.add_argument("--ipc", type=_int_from(1), required=True, help="images per class")
    p.add_argument("--out", type=Path, required=True, help="where to write the dd-bench set (.pt)")
    p.add_argument("--experiment", type=_int_from(0), help="dc: which experiment's set (default the last)")
    p.add_argument("--zca", action="store_true", help="the set lives in ZCA space (the test set is whitened the same way)")
    p.add_argument("--normalization", help=f"how the images are normalised: {NORMALIZATIONS}"
                                           " (default: the format's; tensors files must say)")  # fmt: skip
    p.add_argument("--lr", type=_positive_float, help="the learned evaluation lr, where the source logged but did not save it")
    p.add_argument("--method", help="the method's name in the set (default: the file's, else the format)")
    data_options(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write a dd-bench set for other tools")
    p.add_argument("synthetic", type=Path, help="a set written by dd-bench")
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True,
                   help="image-folder (PNG class folders 00000/...), tensors (a .pt of images in [0,1] and labels), mtt"
                        " (images_best.pt, labels_best.pt, lr_best.pt)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="the file or folder to create (never replaced)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("buffer", help="train expert trajectories for trajectory matching (cached, resumable)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", default="convnet", help="expert architecture (default convnet)")
    p.add_argument("--experts", type=_int_from(1), default=10, help="number of experts (default 10)")
    p.add_argument("--epochs", type=_int_from(1), default=50, help="epochs per expert (default 50)")
    p.add_argument("--optimizer", default="sgd", help="expert optimizer: sgd (default) or a plugin's, e.g. gsam")
    p.add_argument("--lr", type=_positive_float, default=0.01, help="expert learning rate (default 0.01)")
    p.add_argument("--batch-size", type=_int_from(1), default=256)
    p.add_argument("--no-dsa", action="store_true", help="train experts without DSA")
    p.add_argument("--zca", action="store_true", help="train experts on ZCA-whitened images")
    p.add_argument("--cache-dir", type=Path, help="cache folder (default $DD_BENCH_CACHE or ~/.cache/dd-bench)")
    data_options(p)
    p.set_defaults(func=cmd_buffer)

    p = sub.add_parser("evaluate", help="train fresh models on a synthetic set and report test accuracy")
    p.add_argument("synthetic", type=Path, help="a synthetic set written by `dd-bench distill`")
    p.add_argument("--models", type=_names, default=["convnet"], help="comma-separated model names (default convnet)")
    eval_options(p)
    p.add_argument("--cache-dir", type=Path, help="cache folder of teachers (default $DD_BENCH_CACHE or ~/.cache/dd-bench)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--nproc", type=_int_from(1), default=1,
                   help="train each network data-parallel in N processes (gloo on the CPU, NCCL on GPUs; the same figures"
                        " to float tolerance); under torchrun the group is torchrun's")
    data_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="a cross-architecture report on sets, beside the random subset and the whole training set"
                                      " (Markdown, HTML, PNG; every cell tracked in MLflow)")  # fmt: skip
    p.add_argument("sets", type=Path, nargs="+", metavar="SET", help="sets written by dd-bench (distill, import)")
    p.add_argument("--models", type=_names, default=["convnet"], help="comma-separated evaluation architectures (default convnet)")
    eval_options(p)
    p.add_argument("--references", type=_references, default=["random", "full"],
                   help="reference rows: random (a random subset of the same IPC), full (the whole training set), both"
                        " (random,full; default) or none")  # fmt: skip
    p.add_argument("--full-epochs", type=_int_from(1), help="epochs of the whole-training-set row (default: --epochs)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.md, report.html, report.png, report.json, per_class.csv")
    p.add_argument("--experiment", default="report",
                   help="MLflow experiment of the cells (default report); a suite's name reuses its finished reference cells"
                        " when they are the same cells (same protocol and seeds, the suite's distillation model first in --models)")  # fmt: skip
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db in the working directory)")
    p.add_argument("--cache-dir", type=Path, help="cache folder of teachers (default $DD_BENCH_CACHE or ~/.cache/dd-bench)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    data_options(p)
    p.set_defaults(func=cmd_report)

    from .suite_cli import add_suite_commands

    add_suite_commands(sub)
    from .conformance_cli import add_check_plugin_command

    add_check_plugin_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Bad input: one line on stderr, exit 2. A reader that closes stdout
    early (``dd-bench plugins | head``): the output stops quietly, exit 141 as for SIGPIPE."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here rather than in the interpreter's exit
    except BrokenPipeError:
        try:  # what is still buffered goes nowhere, so the exit-time flush cannot fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file (captured in tests)
            pass
        return 141


def _main(argv: Sequence[str] | None) -> int:
    from .runtime import DOWNLOAD_ENV, set_deterministic, tune_cpu_allocator

    parser = build_parser()
    args = parser.parse_args(argv)
    tune_cpu_allocator()
    if getattr(args, "download", False):
        os.environ[DOWNLOAD_ENV] = "1"  # pretrained weights too, not only datasets
    if getattr(args, "deterministic", False):
        set_deterministic(True)
    try:
        return args.func(args)
    except DDBenchError as exc:
        if args.traceback or os.environ.get(TRACEBACK_ENV):
            raise
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"dd-bench: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dd-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
