"""``dd-bench evaluate`` and ``report``: train fresh networks on sets under one protocol."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .options import (
    check_folder,
    command_line,
    data_options,
    eval_config_from,
    eval_options,
    eval_overrides,
    int_from,
    load_registry,
    name_list,
    progress,
    references,
    resolve_device,
)


def format_report(report: Any) -> str:
    lines = [
        f"{report.method} on {report.dataset}, ipc {report.ipc}, labels={report.config.labels} (test accuracy %, final epoch)"
    ]
    lines.append(f"  {'model':<20} {'mean':>7} {'std':>6} {'n':>3}   accs")
    for name, s in report.results.items():
        accs = ", ".join(f"{a:.2f}" for a in s.accs)
        lines.append(f"  {name:<20} {s.mean:7.2f} {s.std:6.2f} {s.n:>3}   {accs}")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate in this process, in the process group ``torchrun`` started, or (``--nproc N``)
    in N processes this command starts: the same figures, each network trained data-parallel."""
    from .. import distributed

    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        _evaluation_inputs(args)  # bad input fails here in one line, and data caches are built once
        distributed.launch(_evaluate_in_group, args.nproc, str(resolve_device(args)), args)
        return 0
    distributed.init_from_env(resolve_device(args))
    return _evaluate(args)


def _evaluate_in_group(args: argparse.Namespace) -> None:
    _evaluate(args)


def _evaluation_inputs(args: argparse.Namespace) -> tuple:
    from .. import api, distributed
    from ..synthetic import SyntheticSet

    registry = load_registry()
    check_folder(args.cache_dir, "--cache-dir")
    syn = SyntheticSet.load(args.synthetic)
    models = [(name, registry.model(name)) for name in args.models]  # typos fail first
    config = eval_config_from(args)
    device = distributed.device_for_rank(resolve_device(args))
    resolution = args.resolution if args.resolution is not None else syn.metadata.get("resolution")
    data = api.load_data(registry, syn.dataset, args.data_root, args.download, resolution, config.test_crop_pct)
    syn.check_compatible(data)
    return registry, syn, models, config, device, data


def _evaluate(args: argparse.Namespace) -> int:
    from .. import api, distributed
    from ..evaluate import evaluate

    registry, syn, models, config, device, data = _evaluation_inputs(args)
    main = distributed.is_main()
    teacher = api.eval_teacher(
        registry, syn, data, config, args.cache_dir, device, progress=main
    )  # a missing teacher fails before training
    if teacher is not None and main:
        print(
            f"teacher {teacher.recipe.model} {teacher.key}: validation accuracy {teacher.val_acc:.2f}%", file=sys.stderr
        )
    with progress(config.epochs * len(models) * len(args.seeds), f"evaluate {syn.method}", main) as bar:
        report = evaluate(syn, data, models, args.seeds, config, device, bar.update, teacher=teacher)
    if main:
        print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .. import tracking
    from ..errors import ConfigError
    from ..results import report

    seen: dict[Path, Path] = {}
    for path in args.sets:
        if path.resolve() in seen:
            raise ConfigError(f"SET {path} is given twice (as {seen[path.resolve()]} too): name each set once")
        seen[path.resolve()] = path
    data = {
        "root": str(args.data_root) if args.data_root else None,
        "download": args.download,
        "resolution": args.resolution,
    }
    result, files = report.make(
        args.sets,
        args.models,
        args.seeds,
        eval_overrides(args),
        args.out,
        references=args.references,
        full_epochs=args.full_epochs,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri,
        device=args.device,
        deterministic=args.deterministic,
        cache_dir=str(args.cache_dir) if args.cache_dir else None,
        data=data,
        command=command_line(),
        quiet=args.quiet,
    )
    for ds, ipc, rows in result.groups():
        print(f"{ds}, IPC {ipc} (test accuracy %):")
        for r in rows:
            print(f"  {r.label:<40} " + "  ".join(f"{m} {r.text(m)}" for m in args.models))
    uri = tracking.normalise_uri(args.tracking_uri)
    print(
        f"wrote {args.out}/ ({', '.join(sorted({f.relative_to(args.out).parts[0] for f in files}))}); runs in {uri}",
        file=sys.stderr,
    )
    return 1 if any(r.error for r in result.rows) else 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="train fresh models on a synthetic set and report test accuracy")
    p.add_argument("synthetic", type=Path, help="a synthetic set written by `dd-bench distill`")
    p.add_argument(
        "--models", type=name_list, default=["convnet"], help="comma-separated model names (default convnet)"
    )
    eval_options(p)
    p.add_argument(
        "--cache-dir", type=Path, help="cache folder of teachers (default $DD_BENCH_CACHE or ~/.cache/dd-bench)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--nproc",
        type=int_from(1),
        default=1,
        help="train each network data-parallel in N processes (gloo on the CPU, NCCL on GPUs; the same figures"
        " to float tolerance); under torchrun the group is torchrun's",
    )
    data_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "report",
        help="a cross-architecture report on sets, beside the random subset and the whole training set"
        " (Markdown, HTML, PNG; every cell tracked in MLflow)",
    )
    p.add_argument("sets", type=Path, nargs="+", metavar="SET", help="sets written by dd-bench (distill, import)")
    p.add_argument(
        "--models",
        type=name_list,
        default=["convnet"],
        help="comma-separated evaluation architectures (default convnet)",
    )
    eval_options(p)
    p.add_argument(
        "--references",
        type=references,
        default=["random", "full"],
        help="reference rows: random (a random subset of the same IPC), full (the whole training set), both"
        " (random,full; default) or none",
    )
    p.add_argument("--full-epochs", type=int_from(1), help="epochs of the whole-training-set row (default: --epochs)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for report.md, report.html, report.png, report.json, per_class.csv",
    )
    p.add_argument(
        "--experiment",
        default="report",
        help="MLflow experiment of the cells (default report); a suite's name reuses its finished reference cells"
        " when they are the same cells (same protocol and seeds, the suite's distillation model first in --models)",
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db in the working directory)")
    p.add_argument(
        "--cache-dir", type=Path, help="cache folder of teachers (default $DD_BENCH_CACHE or ~/.cache/dd-bench)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    data_options(p)
    p.set_defaults(func=cmd_report)
