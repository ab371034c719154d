"""``dd-bench plugins``: what is installed and who provides it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .options import (
    load_registry,
)


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = load_registry()

    def module_of(plugin: str) -> str | None:
        """The module a name lives in (D4M lives in dd_bench_oq, DSA in dd_bench_dc, IDM and M3D in dd_bench_dm)."""
        return getattr(registry.pm.get_plugin(plugin), "__name__", None)

    def host_formats() -> list[dict[str, Any]]:
        """The generic file formats dd-bench itself reads and writes (import, export)."""
        from .. import __version__
        from ..interchange import HOST_FORMATS

        return [
            {
                "name": spec.name,
                "plugin": "host",
                "module": "dd_bench.interchange",
                "distribution": "dd-bench",
                "version": __version__,
                "description": spec.description,
            }
            for spec in HOST_FORMATS.values()
        ]

    def rows(table: dict[str, Any], with_presets: bool = False) -> list[dict[str, Any]]:
        out = []
        for name, reg in sorted(table.items()):
            row = {
                "name": name,
                "plugin": reg.plugin,
                "module": module_of(reg.plugin),
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
        "formats": [*host_formats(), *rows(registry.formats)],
    }
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for section, items in listing.items():
        print(f"{section}:")
        for row in items:
            where = row["plugin"] if row["module"] in (None, row["plugin"]) else f"{row['plugin']}: {row['module']}"
            origin = f"{where} ({row['distribution'] or 'unpackaged'} {row['version'] or ''})".replace(" )", ")")
            presets = f" [presets: {', '.join(row['presets'])}]" if "presets" in row else ""
            presets += " [shards]" if row.get("shards") else ""
            print(f"  {row['name']:<16} {origin:<46} {row['description']}{presets}")
    print("models also resolve namespaced names through plugins, e.g. timm:resnet18, tv:vgg11")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("plugins", help="list datasets, models and distillers with their plugins")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)
