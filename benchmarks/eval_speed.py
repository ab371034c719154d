"""Evaluation training, networks one after another vs batched (``torch.func.vmap``).

Trains ``--networks`` fresh networks of each architecture on a random set of Fashion-MNIST
shape (IPC images per class, DSA on, batch 256, SGD) for ``--epochs`` epochs, once with
``train_classifiers(batched=False)`` and once with ``batched=True``, and prints seconds per
epoch (all networks) and the ratio. Both orders are timed in the same process, after one
untimed warm-up epoch each.

    python benchmarks/eval_speed.py
    python benchmarks/eval_speed.py --models convnet,mlp,lenet --ipc 1,10,50 --networks 5 --epochs 10
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch


def seconds_per_epoch(spec, shape, ipc: int, networks: int, epochs: int, batched: bool) -> float:
    from dd_bench.augment import DSA
    from dd_bench.runtime import seeded_build
    from dd_bench.training import TrainRecipe, train_classifiers

    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape.num_classes * ipc, shape.channels, shape.height, shape.width, generator=g)
    y = torch.arange(shape.num_classes).repeat_interleave(ipc)
    models = [seeded_build(lambda: spec.build(shape), s, torch.device("cpu")) for s in range(networks)]
    gens = [torch.Generator().manual_seed(s) for s in range(networks)]
    run = lambda n: train_classifiers(models, x, y, TrainRecipe(epochs=n, decay_at=None), gens, augment=DSA(),  # noqa: E731
                                      batched=batched)
    run(1)
    t = time.perf_counter()
    run(epochs)
    return (time.perf_counter() - t) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="convnet,mlp,lenet")
    parser.add_argument("--ipc", default="1,10,50")
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    from dd_bench.plugins import Registry
    from dd_bench.specs import DataShape

    registry, shape = Registry(), DataShape(1, 28, 28, 10)
    print(f"`python {' '.join(shlex.quote(a) for a in sys.argv)}`; torch {torch.__version__},"
          f" {torch.get_num_threads()} threads, CPU\n")
    print("| model | ipc | networks | sequential s/epoch | batched s/epoch | speed-up |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        spec = registry.model(name)
        for ipc in map(int, args.ipc.split(",")):
            seq = seconds_per_epoch(spec, shape, ipc, args.networks, args.epochs, batched=False)
            bat = seconds_per_epoch(spec, shape, ipc, args.networks, args.epochs, batched=True)
            print(f"| {name} | {ipc} | {args.networks} | {seq:.3f} | {bat:.3f} | {seq / bat:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
