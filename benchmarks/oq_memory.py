"""Peak memory of OQ's streamed encoding against the number of images.

    python benchmarks/oq_memory.py [--resolution 64] [--work DIR] [--out FILE]

Writes ImageFolders of generated JPEGs with (classes x images per class) = 10 x 200, 100 x 200
(ten times the images, the same class size) and 10 x 2,000 (ten times the images, in ten times
larger classes), decodes each into the cache in a process of its own, then distils OQ
(pixel latent, IPC 10, 20 Lloyd steps) from the streamed data in a fresh process and reports
its peak RSS (``ru_maxrss``). OQ reads and encodes one class at a time, so memory should follow
the class size (one class's latents: 48 KiB per image in the pixel latent at 64 px) and not the
number of classes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SIZES = ((10, 200), (100, 200), (10, 2000))


def worker(task: str, root: Path) -> dict:
    from dd_bench import api
    from dd_bench.testing import make_registry

    registry = make_registry()
    started = time.perf_counter()
    data = api.load_data(registry, "image_folder", root)
    if task == "oq":
        api.distill(registry, "oq", data, ipc=10, preset="smoke", overrides={"latent": "pixel"}, progress=False)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_images": len(data.train_y),
    }


def run(task: str, root: Path, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", task, str(root)], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"{task} on {root} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], Path(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "oq_memory.md")
    args = parser.parse_args()
    from streaming import write_jpegs

    work = args.work or Path(tempfile.mkdtemp(prefix="ddb-oqmem-"))
    env = {**os.environ, "DD_BENCH_CACHE": str(work / "cache")}
    rows = []
    for classes, per_class in SIZES:
        root = write_jpegs(
            work / f"{classes}x{per_class}-{args.resolution}", classes * per_class, args.resolution, classes=classes
        )
        run("decode", root, env)
        r = run("oq", root, env)
        rows.append((classes, per_class, r["train_images"], r["rss_mb"], r["seconds"]))
        print(f"{classes} x {per_class}: {r}", file=sys.stderr)
    base = rows[0][3]
    from dd_bench.runtime import git_sha
    from dd_bench.synthetic import atomic_write_text

    sha = (git_sha() or "unknown")[:7]
    import torch

    lines = [
        "# Peak memory of OQ's streamed encoding",
        "",
        f"Command: `python benchmarks/oq_memory.py --resolution {args.resolution}` at {sha} ({time.strftime('%Y-%m-%d')},"
        f" {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}). OQ, pixel latent, IPC 10, 20 Lloyd"
        f" steps, on `image_folder` data streamed from the decode-once cache ({args.resolution} px JPEGs); peak RSS of a"
        " fresh process that loads the data and distils.",
        "",
        "| classes | images per class | training images | peak RSS MB | vs 10 x 200 | one class's latents MB | distilled set MB | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    image_mb = 3 * args.resolution**2 * 4 / 2**20  # one float32 image (the pixel latent is the image)
    for classes, per_class, n, rss, seconds in rows:
        lines.append(
            f"| {classes} | {per_class} | {n} | {rss:.0f} | {rss / base:.2f}x | {0.9 * per_class * image_mb:.0f} |"
            f" {classes * 10 * image_mb:.0f} | {seconds:.1f} |"
        )
    lines += [
        "",
        "What grows is what the design keeps: one class's latents at a time (the training split's images per"
        " class: 0.9 x images per class, the rest is validation) with k-means' work arrays, and the distilled set"
        " itself (classes x IPC images, held a few times over while it is assembled). The number of training images"
        " alone does not enter: the data are read one class at a time.",
    ]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
