"""``python -m dd_bench_ftd alternate IN OUT``: write the other kind of images of an FTD set.

An FTD set carries the EMA images (or the raw ones with ``use_ema=false``) and keeps the
other kind in its metadata; this writes that kind as a set of its own, to evaluate with
``dd-bench evaluate OUT`` on fresh networks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dd_bench.plugin import DDBenchError, SyntheticSet

from . import KIND_KEY, alternate_set


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dd_bench_ftd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("alternate", help="write the other kind of images (raw <-> EMA) as its own set")
    p.add_argument("synthetic", help="a set written by `dd-bench distill --method ftd`")
    p.add_argument("out", help="where to write the other set (.pt)")
    args = parser.parse_args(argv)
    try:
        other = alternate_set(SyntheticSet.load(args.synthetic))
        other.save(args.out)
    except DDBenchError as exc:
        print(f"dd_bench_ftd: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({other.metadata[KIND_KEY]} images, {len(other)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
