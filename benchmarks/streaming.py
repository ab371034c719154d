"""Streamed vs in-memory datasets: peak memory and images per second, from generated JPEG folders.

    python benchmarks/streaming.py [--sizes 2000 20000] [--resolution 64] [--work DIR] [--out FILE]

Writes an ImageFolder of ``N`` JPEGs per size (10 classes; a tenth as many val images), then:

* **memory**: each task (distil random / rded / oq, evaluate) in a fresh process, once on the
  data as the dataset returns it (streamed) and once loaded whole (``RealData.in_memory``, how
  every dataset was held before streaming); peak RSS of the process (``ru_maxrss``) and of its
  largest DataLoader worker. The decode-once cache is built first, in a process of its own.
* **speed** (largest size): one epoch over the training split in a seeded random order, batch
  256, as data only and with a ConvNet-w32 SGD step per batch: decoding the JPEGs every epoch
  with torchvision's decoder (``decode_jpeg``, resize, centre crop, in DataLoader workers); the
  first, cold epoch of the streamed form (building the decode-once cache, then the epoch); the
  warm streamed epoch; and the same images in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
TASKS = ("distill-random", "distill-rded", "distill-oq", "evaluate")
CLASSES = 10
BATCH = 256


def write_jpegs(root: Path, n: int, size: int, seed: int = 0, classes: int = CLASSES) -> Path:
    """``root/train/cNN/*.jpg`` (``n`` in all, over ``classes`` classes) and ``root/val/cNN/*.jpg``
    (``n // 10``): smooth random images whose colour depends on the class, JPEG quality 90."""
    from PIL import Image

    if (root / "done").exists():
        return root
    rng = np.random.default_rng(seed)
    for split, count in (("train", n // classes), ("val", n // classes // 10)):
        for c in range(classes):
            folder = root / split / f"c{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                coarse = rng.random((size // 8, size // 8, 3)) * 160 + 80 * (c / classes)
                pixels = np.kron(coarse, np.ones((8, 8, 1))) + rng.normal(0, 12, (size, size, 3))
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:06d}.jpg", quality=90)
    (root / "done").touch()
    return root


# ----------------------------------------------------------------------------------- one process


def worker(task: str, mode: str, root: Path, resolution: int) -> dict:
    """Run one task in this process; what it measured, as a dict."""
    from dd_bench import api
    from dd_bench.evaluate import EvalConfig, evaluate
    from dd_bench.testing import make_registry

    registry = make_registry()
    started = time.perf_counter()
    data = api.load_data(registry, "image_folder", root, resolution=resolution)
    if mode == "memory":
        data = data.in_memory("the benchmark")
    if task == "decode":
        pass
    elif task == "distill-random":
        api.distill(registry, "random", data, ipc=10, progress=False)
    elif task == "distill-rded":
        api.distill(registry, "rded", data, ipc=10, preset="smoke", overrides={"teacher_epochs": 1}, progress=False)
    elif task == "distill-oq":
        api.distill(registry, "oq", data, ipc=10, preset="smoke", overrides={"latent": "pixel"}, progress=False)
    elif task == "evaluate":
        syn = api.distill(registry, "random", data, ipc=10, progress=False)
        evaluate(syn, data, [("convnet_w32", registry.model("convnet_w32"))], [0], EvalConfig(epochs=20, dsa=False))
    else:
        raise SystemExit(f"unknown task {task!r}")
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "train_images": len(data.train_y),
    }


def run_worker(task: str, mode: str, root: Path, resolution: int, env: dict) -> dict:
    """``worker`` in a fresh process, with the cache emptied of all but the decoded images (so no
    run reuses a teacher another trained)."""
    cache = Path(env["DD_BENCH_CACHE"])
    for path in cache.glob("*") if cache.exists() else ():
        if path.name != "images":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    out = subprocess.run(
        [sys.executable, __file__, "--worker", task, mode, str(root), str(resolution)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"{task} ({mode}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------- speed


class _JpegEveryEpoch(torch.utils.data.Dataset):
    """torchvision's decoder on every read: file bytes -> decode_jpeg -> resize + centre crop -> normalised."""

    def __init__(self, files: list[Path], resolution: int, mean, std):
        self.files, self.resolution = files, resolution
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, positions: list[int]) -> torch.Tensor:
        from torchvision.io import decode_jpeg, read_file
        from torchvision.transforms.v2.functional import center_crop, resize

        images = [
            center_crop(
                resize(decode_jpeg(read_file(str(self.files[p]))), self.resolution, antialias=True), self.resolution
            )
            for p in positions
        ]
        return (torch.stack(images).float() - self.mean) / self.std


def epoch(source, step) -> float:
    """Seconds of one pass over ``source`` (an iterable of batches) running ``step`` per batch."""
    started = time.perf_counter()
    for xb in source:
        step(xb)
    return time.perf_counter() - started


def speed(root: Path, resolution: int, cache: Path) -> list[dict]:
    from dd_bench import api
    from dd_bench.images import image_files
    from dd_bench.specs import DataRequest, train_val_positions
    from dd_bench.streaming import batches, default_workers
    from dd_bench.testing import make_registry
    from dd_bench.training import classification_loss

    registry = make_registry()
    shutil.rmtree(cache, ignore_errors=True)
    started = time.perf_counter()
    data = api.load_data(registry, "image_folder", root, resolution=resolution)  # decodes into the cache
    build = time.perf_counter() - started
    memory = data.in_memory("the benchmark")
    n = len(data.train_y)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    files = image_files(root / "train")  # the dataset's order: by class folder, then by name
    labels = torch.tensor([data.classes.index(f.parent.name) for f in files])
    keep, _ = train_val_positions(labels, DataRequest().val_fraction, DataRequest().seed)
    train_files = [files[i] for i in keep.tolist()]
    jpeg = _JpegEveryEpoch(train_files, resolution, data.mean, data.std)
    workers = default_workers()

    def jpeg_batches():
        chunks = [order[s : s + BATCH].tolist() for s in range(0, n, BATCH)]
        return torch.utils.data.DataLoader(
            jpeg, sampler=chunks, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None
        )

    model = registry.model("convnet_w32").build(data.shape)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.zeros(BATCH, dtype=torch.long)

    def train_step(xb):
        opt.zero_grad(set_to_none=True)
        classification_loss(model(xb), labels[: len(xb)]).backward()
        opt.step()

    for xb in batches(memory.train_x, order[: 2 * BATCH], BATCH):  # warm up the network's first steps
        train_step(xb)
    rows = []
    for kind, step in (("data only", lambda xb: None), ("data + ConvNet-w32 SGD step", train_step)):
        t = {
            "JPEG decoded every epoch (torchvision)": epoch(jpeg_batches(), step),
            "streamed, warm": epoch(batches(data.train_x, order, BATCH), step),
            "in memory": epoch(batches(memory.train_x, order, BATCH), step),
        }
        t["streamed, cold (first epoch: decode once + epoch)"] = build + t["streamed, warm"]
        for name, seconds in t.items():
            rows.append(
                {
                    "epoch": kind,
                    "form": name,
                    "images": n,
                    "seconds": round(seconds, 2),
                    "img_per_s": round(n / seconds),
                    "vs_in_memory": round(seconds / t["in memory"], 2),
                }
            )
    return rows


# ----------------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        task, mode, root, resolution = sys.argv[2:6]
        print(json.dumps(worker(task, mode, Path(root), int(resolution))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "dd-bench-streaming")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "streaming.md")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    args = parser.parse_args()
    shown = [a for i, a in enumerate(sys.argv[1:]) if "--out" not in (a, sys.argv[i])]
    command = " ".join(["python benchmarks/streaming.py", *shown])  # where the table goes does not change it
    env = dict(os.environ)
    rows = []
    for n in args.sizes:
        root = write_jpegs(args.work / f"jpeg-{n}", n, args.resolution)
        env["DD_BENCH_CACHE"] = str(args.work / f"cache-{n}")
        shutil.rmtree(env["DD_BENCH_CACHE"], ignore_errors=True)  # the first process decodes from scratch
        build = run_worker("decode", "streamed", root, args.resolution, env)
        print(
            f"{n} JPEGs: decoded into the cache in {build['seconds']} s, peak RSS {build['rss_mb']:.0f} MB",
            file=sys.stderr,
        )
        rows.append({"images": n, "task": "decode into the cache", "mode": "streamed", **build})
        for task in args.tasks:
            for mode in ("streamed", "memory"):
                result = run_worker(task, mode, root, args.resolution, env)
                print(f"{n} {task} {mode}: {result}", file=sys.stderr)
                rows.append({"images": n, "task": task, "mode": mode, **result})
    env["DD_BENCH_CACHE"] = str(args.work / "cache-speed")
    os.environ.update(env)
    speed_rows = speed(args.work / f"jpeg-{max(args.sizes)}", args.resolution, args.work / "cache-speed")
    write_report(args, command, rows, speed_rows)


def write_report(args, command: str, rows: list[dict], speed_rows: list[dict]) -> None:
    from dd_bench.streaming import default_workers
    from dd_bench.synthetic import atomic_write_text

    small, large = min(args.sizes), max(args.sizes)
    peak = {(r["images"], r["task"], r["mode"]): r["rss_mb"] for r in rows}
    lines = [
        "# Streamed vs in-memory datasets",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores,"
        f" torch {torch.__version__}, {default_workers()} DataLoader worker(s), {args.resolution} px JPEGs, 10 classes).",
        "",
        "## Peak memory (RSS, MB) of one process per task",
        "",
        "`streamed`: the data as `image_folder` returns it (read from the decode-once cache on demand);"
        " `memory`: the same data loaded whole as float32 first (`RealData.in_memory`), as every dataset was held"
        " before streaming. rded: smoke preset with a 1-epoch teacher; oq: smoke preset in pixel latent;"
        " evaluate: a random IPC-10 set, ConvNet-w32, 20 epochs, then the val and test passes.",
        "",
        "| images | task | mode | peak RSS | largest worker | seconds |",
        "|---:|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['images']} | {r['task']} | {r['mode']} | {r['rss_mb']:.0f} | {r['worker_rss_mb']:.0f} | {r['seconds']} |"
        for r in rows
    ]
    lines += [
        "",
        f"Ratios (streamed): {large} vs {small} images, and streamed vs in memory at {large}:",
        "",
        f"| task | {large} / {small} | streamed / memory at {large} |",
        "|---|---:|---:|",
    ]
    for task in args.tasks:
        a, b, m = peak[(large, task, "streamed")], peak[(small, task, "streamed")], peak[(large, task, "memory")]
        lines.append(f"| {task} | {a / b:.2f} | {a / m:.2f} |")
    lines += [
        "",
        f"## One epoch over {speed_rows[0]['images']} training images (batch {BATCH}, seeded random order)",
        "",
        "| epoch | form | seconds | images/s | time vs in memory |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['epoch']} | {r['form']} | {r['seconds']} | {r['img_per_s']} | {r['vs_in_memory']}x |" for r in speed_rows
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
