"""``dd-bench check-plugin``: the conformance checks over loaded plugins, one line per check."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from ..errors import UnknownNameError


def add_commands(sub: Any) -> None:
    p = sub.add_parser("check-plugin", help="check that plugins keep dd-bench's contract (exit 1 on any failure)")
    p.add_argument(
        "names",
        nargs="*",
        metavar="DISTRIBUTION_OR_PLUGIN",
        help="distributions or plugins to check (default: every loaded plugin)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--time-limit",
        type=_seconds,
        metavar="SECONDS",
        help="the most one smoke run of a distiller may take (default 60)",
    )
    p.set_defaults(func=cmd_check_plugin)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: use a positive number of seconds")
    return value


def _selected(registry: Any, names: list[str]) -> list[tuple[str, Any]]:
    """``(kind, Registered)`` of every dataset, model and distiller from the named plugins or distributions."""
    tables = (("dataset", registry.datasets), ("model", registry.models), ("distiller", registry.distillers))
    entries = [(kind, reg) for kind, table in tables for _, reg in sorted(table.items())]
    known = {reg.plugin for _, reg in entries} | {reg.distribution for _, reg in entries if reg.distribution}
    for name in names:
        if name not in known:
            raise UnknownNameError("plugin or distribution", name, known)
    return [(kind, reg) for kind, reg in entries if not names or {reg.plugin, reg.distribution} & set(names)]


def cmd_check_plugin(args: argparse.Namespace) -> int:
    from .. import conformance
    from ..plugins import Registry

    registry = Registry()
    entries = _selected(registry, args.names)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for kind, reg in entries:
        if kind == "distiller":
            limit = conformance.TIME_LIMIT if args.time_limit is None else args.time_limit
            results = conformance.distiller_checks(reg.spec, registry, time_limit=limit)
        elif kind == "model":
            results = conformance.model_checks(reg.spec, registry)
        else:
            results = conformance.dataset_checks(reg.spec)
        rows.extend({**asdict(r), "plugin": reg.plugin, "distribution": reg.distribution} for r in results)
        if not args.json:
            origin = f"{reg.distribution or 'unpackaged'} {reg.version or ''}".strip()
            print(f"{kind} {reg.spec.name} (plugin {reg.plugin}, {origin})")
            for r in results:
                print(f"  {r.status:<4}  {r.check:<16} {r.seconds:6.1f} s  {r.reason}", flush=True)
    statuses = [row["status"] for row in rows]
    counts = {"passed": statuses.count("pass"), "failed": statuses.count("fail"), "skipped": statuses.count("skip")}
    seconds = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps({"results": rows, **counts, "seconds": seconds}, indent=2))
    else:
        print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped in {seconds} s")
    sys.stdout.flush()
    return 1 if counts["failed"] else 0
