"""Class shards on 2 local Ray workers: the same set, and the wall-time ratio.

    python benchmarks/shards.py [--images 3200] [--resolution 32] [--ipc 10] [--work DIR] [--out FILE]

Writes an ImageFolder of 10 classes of generated JPEGs (``streaming.py``'s generator), builds
the caches every run shares once (the decode-once array, OQ's autoencoder, the CPU teacher of
RDED and SRe2L), then for each method at its ``cpu`` preset times one cell

* **1 shard**: one Ray task (1 CPU, 1 thread) distils the whole cell;
* **2 shards**: two Ray tasks (1 CPU, 1 thread each) distil classes 0-4 and 5-9 (SRe2L: its
  recovery batches) into the cache, then the driver merges them (``api.distill(shards=2)``);

from submission to the merged set, Ray already started (each task imports dd-bench and loads
the data: that is part of the time), and checks that both sets are bit-identical. The ratio is
1-shard seconds over 2-shard seconds; 2 cores bound it by 2.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
METHODS = ("oq", "rded", "sre2l")


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
        return {"images": syn.images, "labels": syn.labels, "weights": syn.weights, "seconds": syn.metadata["distill_seconds"]}
    api.distill_shard(registry, method, data, ipc, index, shards, **kw)
    return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3200, help="training images in all (10 classes)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--work", type=Path, help="folder for the images and caches (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "shards.md")
    args = parser.parse_args()

    import ray

    from dd_bench import api
    from dd_bench.plugins import Registry, get_plugin_manager
    from streaming import write_jpegs

    work = args.work or Path(tempfile.mkdtemp(prefix="ddb-shards-"))
    root = write_jpegs(work / f"jpegs-{args.images}-{args.resolution}", args.images, args.resolution)
    cache = work / "cache"
    registry = Registry(get_plugin_manager())
    data = api.load_data(registry, "image_folder", root)
    for method in args.methods:  # shared caches (autoencoder, teacher) built once, outside the timing
        print(f"warming the caches of {method}", file=sys.stderr)
        api.distill(registry, method, data, 1, preset="cpu", cache_dir=cache, progress=False,
                    overrides={"iterations": 1} if method == "sre2l" else None)  # fmt: skip

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=1, max_retries=0)(_distill)
    rows = []
    try:
        for method in args.methods:
            shutil.rmtree(cache / "shards", ignore_errors=True)
            t0 = time.perf_counter()
            whole = ray.get(task.remote(str(root), str(cache), method, args.ipc, 1, None))
            one = time.perf_counter() - t0
            t0 = time.perf_counter()
            ray.get([task.remote(str(root), str(cache), method, args.ipc, 2, i) for i in range(2)])
            merged = api.distill(registry, method, data, args.ipc, preset="cpu", cache_dir=cache, progress=False, shards=2)
            two = time.perf_counter() - t0
            same = torch.equal(whole["images"], merged.images) and torch.equal(whole["labels"], merged.labels) and (
                (whole["weights"] is None) == (merged.weights is None)
                and (whole["weights"] is None or torch.equal(whole["weights"], merged.weights)))  # fmt: skip
            rows.append((method, one, two, float(whole["seconds"]), float(merged.metadata["distill_seconds"]), same))
            print(f"{method}: 1 shard {one:.1f} s, 2 shards {two:.1f} s, ratio {one / two:.2f}, same set: {same}", file=sys.stderr)
    finally:
        ray.shutdown()

    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    lines = [
        "# Class shards on 2 local Ray workers",
        "",
        f"Command: `python benchmarks/shards.py --images {args.images} --resolution {args.resolution} --ipc {args.ipc}` at {sha}"
        f" ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__},"
        f" ray {ray.__version__}); 10 classes of generated {args.resolution} px JPEGs, {args.images // 10} per class;"
        f" IPC {args.ipc}; each method's `cpu` preset; caches (decoded images, OQ's autoencoder, the CPU teacher) built"
        " before timing. Wall time from submitting the Ray task(s) to the merged set; each task has 1 CPU and 1 thread and"
        " loads the data itself. Device-seconds: the set's `distill_seconds` (the shards' seconds added up).",
        "",
        "| method | 1 shard wall s | 2 shards wall s | ratio | 1 shard device-s | 2 shards device-s | same set |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for method, one, two, d1, d2, same in rows:
        lines.append(f"| {method} | {one:.1f} | {two:.1f} | {one / two:.2f}x | {d1:.1f} | {d2:.1f} | {'bit-identical' if same else 'DIFFERENT'} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
