"""The matching engine's memory guard: its estimate against a measured peak, and every preset's need.

    python benchmarks/memory_estimate.py --check      # estimate vs measured peak RSS (CPU, small configs)
    python benchmarks/memory_estimate.py --presets    # estimated GiB of every matching preset at its paper shape

``--check`` runs one unrolled ``match`` per configuration in a fresh process and compares the
peak resident memory it added with ``estimate_memory`` (what ``BACKWARD_FACTOR`` was set from).
``--presets`` probes each preset's student on its dataset's shape (CIFAR 3x32x32, Tiny-ImageNet
3x64x64 with ConvNet-4, Fashion-MNIST 1x28x28) on the CPU; the saved-tensor sizes are the same
on a GPU, so the figures say which presets cannot run unrolled on an 80 GB card.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

CHECKS = [("convnet", 100, 5, 28), ("convnet_w32", 50, 10, 28), ("mlp", 100, 10, 28)]
SHAPES = {
    "cifar10": (3, 32, 10, "convnet"),
    "cifar100": (3, 32, 100, "convnet"),
    "tiny": (3, 64, 200, "convnet_d4"),
    "fmnist": (1, 28, 10, "convnet"),
}


def _student(model: str, channels: int, size: int, classes: int):
    from dd_bench.matching import FlatModel
    from dd_bench.plugins import Registry
    from dd_bench.specs import DataShape

    torch.manual_seed(0)
    return FlatModel(Registry().model(model).build(DataShape(channels, size, size, classes)))


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def check_one(model: str, n: int, steps: int, size: int) -> dict:
    from dd_bench.augment import DSA
    from dd_bench.matching import match
    from dd_bench.matching.memory import estimate_memory

    student = _student(model, 1, size, 10)
    images = torch.randn(n, 1, size, size, requires_grad=True)
    labels = torch.arange(10).repeat_interleave(n // 10)
    estimate = estimate_memory(student, images.detach(), labels, n, steps, DSA())
    start = student.flatten()
    lr = torch.tensor(0.01, requires_grad=True)
    batches = [torch.randperm(n) for _ in range(steps)]
    base = _status("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")
    match(student, start, start + 0.01, images, labels, lr, batches, list(range(steps)), DSA(), False)
    peak = _status("VmHWM:") - base
    return {
        "model": model,
        "images": n,
        "syn_steps": steps,
        "estimate_mib": estimate.unrolled / 2**20,
        "measured_mib": peak / 2**20,
        "estimate/measured": estimate.unrolled / peak,
    }


def presets() -> list[dict]:
    from dd_bench.matching.memory import estimate_memory
    from dd_bench.plugins import Registry

    registry, rows, students = Registry(), [], {}
    for method in ("mtt", "ftd", "datm"):
        spec = registry.distiller(method)
        for name in sorted(spec.presets):
            dataset, _, ipc = name.partition("-ipc")
            if dataset not in SHAPES:
                continue
            channels, size, classes, model = SHAPES[dataset]
            cfg = spec.resolve_config(name)
            n = classes * int(ipc)
            key = (model, channels, size, classes)
            students.setdefault(key, _student(*key[:1], channels, size, classes))
            images = torch.randn(2, channels, size, size)
            labels = torch.arange(2) % classes
            from dd_bench.augment import DSA

            est = estimate_memory(
                students[key],
                images,
                labels,
                min(cfg.batch_syn or n, n),
                cfg.syn_steps,
                DSA(cfg.dsa_strategy) if cfg.dsa else None,
            )
            rows.append(
                {
                    "method": method,
                    "preset": name,
                    "model": model,
                    "images": n,
                    "batch_syn": cfg.batch_syn,
                    "syn_steps": cfg.syn_steps,
                    "unrolled_gib": est.unrolled / 2**30,
                    "constant_gib": est.constant / 2**30,
                    "constant_memory": cfg.constant_memory,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--presets", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        model, n, steps, size = args.one.split(",")
        print(json.dumps(check_one(model, int(n), int(steps), int(size))))
        return
    print("command: python benchmarks/memory_estimate.py " + " ".join(sys.argv[1:]))
    if args.check:
        print(f"{'model':<12} {'images':>6} {'steps':>5} {'estimate MiB':>12} {'measured MiB':>12} {'ratio':>6}")
        for model, n, steps, size in CHECKS:
            out = subprocess.run(
                [sys.executable, __file__, "--one", f"{model},{n},{steps},{size}"],
                capture_output=True,
                text=True,
                check=True,
                env={**__import__("os").environ, "DD_BENCH_DEFAULT_MALLOC": "1"},
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{model:<12} {n:>6} {steps:>5} {r['estimate_mib']:>12.0f} {r['measured_mib']:>12.0f} {r['estimate/measured']:>6.2f}"
            )
    if args.presets:
        print(
            f"{'method':<5} {'preset':<16} {'model':<11} {'images':>6} {'batch':>6} {'steps':>5} {'unrolled GiB':>12} {'constant GiB':>12} constant_memory"
        )
        for r in presets():
            print(
                f"{r['method']:<5} {r['preset']:<16} {r['model']:<11} {r['images']:>6} {str(r['batch_syn']):>6} {r['syn_steps']:>5}"
                f" {r['unrolled_gib']:>12.1f} {r['constant_gib']:>12.1f} {r['constant_memory']}"
            )


if __name__ == "__main__":
    main()
