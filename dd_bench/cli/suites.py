"""``dd-bench run``, ``leaderboard``, ``verify`` and ``demo``: suites on the command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .options import check_folder, command_line, device_options, int_from

if TYPE_CHECKING:
    from ..plugins import Registry
    from ..runner import SuiteRun

DEMO_SUITE = "demo"
DEMO_OUT = Path("leaderboards") / "demo"


def _run(args: argparse.Namespace, suite_name: str) -> tuple[SuiteRun, Registry]:
    """Run a suite; also return the registry it ran with, for the leaderboard."""
    from ..plugins import Registry
    from ..runner import run_suite
    from ..suite import load_suite

    suite = _with_data_root(load_suite(suite_name), args)
    registry = Registry()
    result = run_suite(
        suite,
        registry=registry,
        tracking_uri=args.tracking_uri,
        executor=args.executor,
        only=args.only or [],
        device=args.device,
        deterministic=args.deterministic,
        cache_dir=str(args.cache_dir) if args.cache_dir else None,
        quiet=args.quiet,
        ray_address=args.ray_address,
        ray_cpus_per_task=args.ray_cpus_per_task,
    )
    return result, registry


def _with_data_root(suite, args: argparse.Namespace):
    """``--data-root`` replaces the suite's ``data.root``."""
    import dataclasses

    root = getattr(args, "data_root", None)
    return dataclasses.replace(suite, data_root=str(root.expanduser())) if root else suite


def cmd_plan(args: argparse.Namespace) -> int:
    """The cells a run would make, with every name and value checked, without loading any data."""
    from ..cells import plan
    from ..plugins import Registry
    from ..suite import load_suite, validate

    registry = Registry()
    suite = validate(_with_data_root(load_suite(args.suite), args), registry, check_data=False)
    device_type = "cuda" if args.device == "cuda" else "cpu"
    cells = plan(suite, registry, device_type)
    for cell in cells:
        print(f"{cell.key}  preset={cell.preset}  eval={cell.eval['recipe']}:{','.join(cell.eval_models)}")
    methods, ipcs = sorted({c.method for c in cells}), sorted({c.ipc_label for c in cells})
    print(
        f"{len(cells)} cells on {device_type}: {len(methods)} methods ({', '.join(methods)}) x datasets"
        f" {', '.join(suite.datasets)} x IPC {', '.join(ipcs)}; data root {suite.data_root or 'not set (--data-root DIR)'}",
        file=sys.stderr,
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .. import tracking

    if args.plan:
        return cmd_plan(args)
    result, _ = _run(args, args.suite)
    uri = tracking.normalise_uri(args.tracking_uri)
    print(f"runs tracked in {uri}; browse them with: {tracking.ui_command(uri)}", file=sys.stderr)
    return 1 if result.count("failed") else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..plugins import Registry
    from ..results import make
    from ..suite import load_suite

    suite = load_suite(args.suite)
    out = args.out or Path("leaderboards") / suite.name
    check_folder(out, "--out")
    _, files = make(
        suite, Registry(), args.tracking_uri, out, command_line(), args.device_type, sources=args.sources or ()
    )
    print(f"wrote {out}/ ({', '.join(p.name for p in files)})", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..results.verify import verify

    return verify(
        args.folder,
        count=args.cells,
        ids=args.cell or (),
        tolerance=args.tolerance,
        suite_name=args.suite,
        data_root=str(args.data_root.expanduser()) if args.data_root else None,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from .. import tracking
    from ..results import make

    check_folder(args.out, "--out")  # a file there would fail only once every cell has run
    started = time.perf_counter()
    result, registry = _run(args, DEMO_SUITE)
    make(result.suite, registry, args.tracking_uri, args.out, command_line())  # the methods that ran
    uri = tracking.normalise_uri(args.tracking_uri)
    readme = args.out / "README.md"
    print(f"demo finished in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    print(f"leaderboard: {readme} (also {args.out / 'index.html'}, leaderboard.csv and PNG plots)")
    print(f"MLflow UI:   {tracking.ui_command(uri)}   then open http://127.0.0.1:5000")
    return 1 if result.count("failed") else 0


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: one cell after another (default); ray: cells as Ray tasks",
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db in the working directory)")
    p.add_argument(
        "--only",
        action="append",
        metavar="KEY=V1,V2",
        help="run only matching cells; KEY is method, dataset, ipc or seed (repeatable)",
    )
    device_options(p)
    p.add_argument(
        "--cache-dir", type=Path, help="cache for expert buffers (default $DD_BENCH_CACHE or ~/.cache/dd-bench)"
    )
    p.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS or a local Ray instance)")
    p.add_argument(
        "--ray-cpus-per-task",
        type=int_from(1),
        metavar="N",
        help="CPUs (and threads) per Ray task (default: the cluster's CPUs per GPU for GPU cells, 1 for CPU cells)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--data-root", type=Path, help="folder of the suite's dataset files (replaces the suite's data.root)"
    )


def _count(text: str) -> int:
    """A count of cells: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use an integer >= 1")
    return value


def _points(text: str) -> float:
    """A tolerance in accuracy points: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a number of points >= 0")
    return value


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run``, ``leaderboard``, ``verify`` and ``demo`` to the ``dd-bench`` parser."""
    p = subparsers.add_parser("run", help="run a suite: distil, evaluate and track every cell in MLflow")
    p.add_argument("suite", help="a suite YAML file, or a name in ./suites (demo, fmnist-cpu, ...)")
    p.add_argument(
        "--plan",
        action="store_true",
        help="print the cells the run would make (names and values checked, no data loaded) and exit",
    )
    _run_options(p)
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser(
        "leaderboard", help="write a suite's leaderboard (README.md, CSV, HTML, PNG) from its MLflow runs"
    )
    p.add_argument("suite", help="a suite YAML file, or a name in ./suites")
    p.add_argument("--out", type=Path, help="output folder (default leaderboards/<suite name>)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db in the working directory)")
    p.add_argument(
        "--device-type",
        choices=("cpu", "cuda"),
        help="the runs to rank when the store holds both (default: the only one there)",
    )
    p.add_argument(
        "--from",
        dest="sources",
        action="append",
        type=Path,
        metavar="RESULTS_JSONL",
        help="build the page from results files (a leaderboard's results.jsonl) instead of MLflow; repeatable:"
        " the files are merged, and two different records of one network are an error",
    )
    p.set_defaults(func=cmd_leaderboard)

    p = subparsers.add_parser(
        "verify",
        help="rerun a leaderboard's cells at HEAD from scratch and compare every network with its results.jsonl",
    )
    p.add_argument("folder", type=Path, help="a leaderboard folder holding results.jsonl (leaderboards/NAME)")
    p.add_argument(
        "--cells",
        type=_count,
        metavar="K",
        help="verify K cells: the cheapest (recorded distillation + evaluation seconds), one per method first"
        " (default: every cell)",
    )
    p.add_argument(
        "--cell", action="append", metavar="ID", help="verify this cell (method/dataset/ipcN/seedS; repeatable)"
    )
    p.add_argument(
        "--tolerance",
        type=_points,
        metavar="POINTS",
        help="accuracy points a network may differ by (default: 0, bit-identical, on CPU; 2 on a GPU)",
    )
    p.add_argument("--suite", help="the suite file (default: the one the records name)")
    p.add_argument(
        "--data-root", type=Path, help="folder of the suite's dataset files (replaces the suite's data.root)"
    )
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser(
        "demo", help="run the demo suite (all built-in methods on digits) and write its leaderboard"
    )
    p.add_argument("--out", type=Path, default=DEMO_OUT, help=f"leaderboard folder (default {DEMO_OUT})")
    _run_options(p)
    p.set_defaults(func=cmd_demo)
