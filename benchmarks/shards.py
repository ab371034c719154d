"""Class shards on 2 local Ray workers: the same set, and the wall-time ratio.

    python benchmarks/shards.py [--images 3200] [--resolution 32] [--cells oq:10 rded:10 ...] [--repeats 3] [--work DIR] [--out FILE]

Writes an ImageFolder of 10 classes of generated JPEGs (``streaming.py``'s generator), builds
the caches every run shares once (the decode-once array, OQ's autoencoder, the CPU teacher of
RDED and SRe2L) and starts both Ray workers (each imports dd-bench and loads the data once, so
neither case pays a cold start the other does not), then for each cell (method at its ``cpu``
preset, IPC) times

* **1 shard**: one Ray task (1 CPU, 1 thread) distils the whole cell;
* **2 shards**: two Ray tasks (1 CPU, 1 thread each) distil classes 0-4 and 5-9 (SRe2L: its
  recovery batches) into the cache, then the driver merges them (``api.distill(shards=2)``);

from submission to the merged set (each task opens the data itself: that is part of the time),
and checks that both sets are bit-identical. The ratio is 1-shard seconds over 2-shard seconds;
2 cores bound it by 2, and what a shard does once (open the data, load the autoencoder or the
teacher, the driver's merge) bounds it further on short cells.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CELLS = ("oq:10", "oq:50", "rded:10", "rded:50", "sre2l:10")


def _distill(root: str, cache: str, method: str, ipc: int, shards: int, index: int | None) -> dict:
    """In a Ray worker: one shard into the cache (``index``), or the whole cell (``index=None``)."""
    torch.set_num_threads(1)
    from dd_bench import api
    from dd_bench.plugins import Registry, get_plugin_manager

    registry = Registry(get_plugin_manager())
    data = api.load_data(registry, "image_folder", root)
    kw = {"preset": "cpu", "cache_dir": Path(cache), "progress": False}
    if index is None:
        syn = api.distill(registry, method, data, ipc, shards=shards, **kw)
        return {
            "images": syn.images,
            "labels": syn.labels,
            "weights": syn.weights,
            "seconds": syn.metadata["distill_seconds"],
        }
    api.distill_shard(registry, method, data, ipc, index, shards, **kw)
    return {}


def _warm(root: str) -> int:
    """In a Ray worker: import dd-bench, open the data and run a convolution once."""
    torch.set_num_threads(1)
    from dd_bench import api
    from dd_bench.plugins import Registry, get_plugin_manager

    api.load_data(Registry(get_plugin_manager()), "image_folder", root)
    torch.nn.functional.conv2d(torch.zeros(1, 3, 8, 8), torch.zeros(4, 3, 3, 3))
    time.sleep(2)  # hold the worker so the other warm-up lands on the other one
    return os.getpid()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3200, help="training images in all (10 classes)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timings of each case; the table shows their median")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), help="METHOD:IPC, each timed as 1 and as 2 shards")
    parser.add_argument("--work", type=Path, help="folder for the images and caches (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "shards.md")
    args = parser.parse_args()

    import ray
    from streaming import write_jpegs

    from dd_bench import api
    from dd_bench.plugins import Registry, get_plugin_manager

    cells = []
    for text in args.cells:
        method, _, ipc = text.partition(":")
        if method not in ("oq", "rded", "sre2l", "d4m", "random") or not ipc.isdigit() or int(ipc) < 1:
            parser.error(
                f"--cells {text!r} is not allowed: use METHOD:IPC with METHOD one of oq, rded, sre2l, d4m, random"
            )
        cells.append((method, int(ipc)))
    work = args.work or Path(tempfile.mkdtemp(prefix="ddb-shards-"))
    root = write_jpegs(work / f"jpegs-{args.images}-{args.resolution}", args.images, args.resolution)
    cache = work / "cache"
    registry = Registry(get_plugin_manager())
    data = api.load_data(registry, "image_folder", root)
    for method in dict.fromkeys(
        m for m, _ in cells
    ):  # shared caches (autoencoder, teacher) built once, outside the timing
        print(f"warming the caches of {method}", file=sys.stderr)
        api.distill(
            registry,
            method,
            data,
            1,
            preset="cpu",
            cache_dir=cache,
            progress=False,
            overrides={"iterations": 1} if method == "sre2l" else None,
        )

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=1, max_retries=0)(_distill)
    rows = []
    try:
        pids = ray.get([ray.remote(num_cpus=1)(_warm).remote(str(root)) for _ in range(2)])
        print(f"warm Ray workers: {sorted(set(pids))}", file=sys.stderr)
        for method, ipc in cells:
            ones, twos = [], []
            for _ in range(args.repeats):  # alternating, so drift in the machine's speed hits both alike
                shutil.rmtree(cache / "shards", ignore_errors=True)
                t0 = time.perf_counter()
                whole = ray.get(task.remote(str(root), str(cache), method, ipc, 1, None))
                ones.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                ray.get([task.remote(str(root), str(cache), method, ipc, 2, i) for i in range(2)])
                merged = api.distill(
                    registry, method, data, ipc, preset="cpu", cache_dir=cache, progress=False, shards=2
                )
                twos.append(time.perf_counter() - t0)
            same = (
                torch.equal(whole["images"], merged.images)
                and torch.equal(whole["labels"], merged.labels)
                and (
                    (whole["weights"] is None) == (merged.weights is None)
                    and (whole["weights"] is None or torch.equal(whole["weights"], merged.weights))
                )
            )
            one, two = statistics.median(ones), statistics.median(twos)
            rows.append(
                (method, ipc, one, two, float(whole["seconds"]), float(merged.metadata["distill_seconds"]), same)
            )
            print(
                f"{method} IPC {ipc}: 1 shard {[round(t, 1) for t in ones]} s, 2 shards {[round(t, 1) for t in twos]} s,"
                f" ratio of medians {one / two:.2f}, same set: {same}",
                file=sys.stderr,
            )
    finally:
        ray.shutdown()

    from dd_bench.runtime import git_sha
    from dd_bench.synthetic import atomic_write_text

    sha = (git_sha() or "unknown")[:7]
    lines = [
        "# Class shards on 2 local Ray workers",
        "",
        f"Command: `python benchmarks/shards.py --images {args.images} --resolution {args.resolution} --cells {' '.join(args.cells)} --repeats {args.repeats}` at {sha}"
        f" ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__},"
        f" ray {ray.__version__}); 10 classes of generated {args.resolution} px JPEGs, {args.images // 10} per class;"
        " each method's `cpu` preset; caches (decoded images, OQ's autoencoder, the CPU teacher) built and both Ray"
        f" workers started before timing. Wall time (the median of {args.repeats} alternating runs) from submitting the"
        " Ray task(s) to the merged set; each task has 1 CPU"
        " and 1 thread and opens the data itself. Device-seconds: the set's `distill_seconds` (the shards' seconds and"
        " the merge's finishing step added up).",
        "",
        "| method | IPC | 1 shard wall s (median) | 2 shards wall s (median) | ratio | 1 shard device-s | 2 shards device-s | same set |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for method, ipc, one, two, d1, d2, same in rows:
        lines.append(
            f"| {method} | {ipc} | {one:.1f} | {two:.1f} | {one / two:.2f}x | {d1:.1f} | {d2:.1f} | {'bit-identical' if same else 'DIFFERENT'} |"
        )
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
