"""The ``dd-bench`` command line: one module per command group, the shared options in ``options``.

Errors are one line on stderr and exit status 2 (``--traceback`` or ``DD_BENCH_TRACEBACK=1`` for the
full traceback); so are a full disk, whatever was writing, and a path the file system refuses.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import DDBenchError
from . import check, evaluation, plugins, sets, suites
from .options import Parser, eval_config_from, eval_overrides

TRACEBACK_ENV = "DD_BENCH_TRACEBACK"

COMMAND_GROUPS = (plugins, sets, evaluation, suites, check)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dd-bench", description="Distil, evaluate and rank dataset-distillation methods.")
    parser.add_argument("--version", action="version", version=f"dd-bench {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
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
    from ..runtime import DOWNLOAD_ENV, set_deterministic, tune_cpu_allocator

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
    except Exception as exc:
        from ..synthetic import disk_full  # torch is imported by now: a command ran

        failed = disk_full(exc) or (
            exc if isinstance(exc, OSError) and exc.filename and exc.errno in PATH_ERRORS else None
        )
        if failed is None or args.traceback or os.environ.get(TRACEBACK_ENV):
            raise
        print(f"dd-bench: error: {os_error_message(failed)}", file=sys.stderr)
        return 2


PATH_ERRORS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.EEXIST: "it exists already",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "file name too long",
}
"""What a file-system error means to a user: a full disk wherever it hides, the others when they name a path."""


def os_error_message(exc: OSError) -> str:
    """One line: the path, what happened, what to do (the atomic writers left nothing half-written)."""
    what = PATH_ERRORS.get(exc.errno, exc.strerror or str(exc))
    where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "") if exc.filename else "a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{what} writing {where} ({errno.errorcode[exc.errno]}): free some space or write elsewhere, then run the command again"
    return f"{where}: {what} ({errno.errorcode[exc.errno]}): give another path or fix this one"


__all__ = ["build_parser", "eval_config_from", "eval_overrides", "main"]
