"""Evaluation training: networks one after another, eager or compiled, vs batched (``vmap``).

Trains ``--networks`` fresh networks of each architecture on a random set of Fashion-MNIST
shape (IPC images per class, DSA on, batch 256, SGD) for ``--epochs`` epochs with
``train_classifiers`` in each mode: ``eager`` (in turn, as before), ``compiled`` (in turn,
``torch.compile``: what ``evaluate_model`` does for long CPU evaluations of ``compile_on_cpu``
architectures) and ``batched`` (one vmapped step for all networks: the CUDA default). Prints
seconds per epoch (all networks) and each mode's speed-up over eager. Every mode is timed in the
same process after one untimed warm-up epoch, whose seconds are printed for ``compiled``: the
one-off cost of compiling (smaller once the inductor cache on disk is filled).

    python benchmarks/eval_speed.py
    python benchmarks/eval_speed.py --device cuda --modes batched     # what benchmarks/gpu/run.sh measures
    python benchmarks/eval_speed.py --models convnet,mlp,lenet --ipc 1,10,50 --networks 5 --epochs 10 --modes eager,compiled
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch

MODES = ("eager", "compiled", "batched")


def timed(spec, shape, ipc: int, networks: int, epochs: int, mode: str, device: torch.device) -> tuple[float, float]:
    """Seconds of the warm-up epoch and seconds per epoch after it, all networks."""
    from dd_bench.augment import DSA
    from dd_bench.runtime import seeded_build
    from dd_bench.training import TrainRecipe, train_classifiers

    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape.num_classes * ipc, shape.channels, shape.height, shape.width, generator=g)
    y = torch.arange(shape.num_classes).repeat_interleave(ipc)
    x, y = x.to(device), y.to(device)
    models = [seeded_build(lambda: spec.build(shape), s, device) for s in range(networks)]
    gens = [torch.Generator().manual_seed(s) for s in range(networks)]

    def run(n):
        return train_classifiers(
            models,
            x,
            y,
            TrainRecipe(epochs=n, decay_at=None),
            gens,
            augment=DSA(),
            batched=mode == "batched",
            compile=mode == "compiled",
        )

    t = time.perf_counter()
    run(1)
    sync(device)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    run(epochs)
    sync(device)
    return warm, (time.perf_counter() - t) / epochs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="convnet,convnet_w32,mlp,lenet")
    parser.add_argument("--ipc", default="1,10,50")
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--modes", default="eager,compiled,batched", help=f"a subset of {','.join(MODES)}; eager is always timed"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m != "eager"]
    if unknown := sorted(set(modes) - set(MODES)):
        parser.error(f"--modes: unknown {', '.join(unknown)} (allowed: {', '.join(MODES)})")
    from dd_bench.plugins import Registry
    from dd_bench.specs import DataShape

    registry, shape, device = Registry(), DataShape(1, 28, 28, 10), torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"`python {' '.join(shlex.quote(a) for a in sys.argv)}`; torch {torch.__version__},"
        f" {torch.get_num_threads()} threads, {where}\n"
    )
    print(
        "| model | compile_on_cpu | ipc | networks | eager s/epoch | "
        + " | ".join(f"{m} s/epoch | speed-up" + (" | compiling s" if m == "compiled" else "") for m in modes)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|---|" * len(modes) + ("---|" if "compiled" in modes else ""))
    for name in args.models.split(","):
        spec = registry.model(name)
        for ipc in map(int, args.ipc.split(",")):
            _, eager = timed(spec, shape, ipc, args.networks, args.epochs, "eager", device)
            cells = [name, str(spec.compile_on_cpu), str(ipc), str(args.networks), f"{eager:.3f}"]
            for mode in modes:
                warm, per_epoch = timed(spec, shape, ipc, args.networks, args.epochs, mode, device)
                cells += [f"{per_epoch:.3f}", f"{eager / per_epoch:.2f}x"]
                if mode == "compiled":
                    cells.append(f"{warm - per_epoch:.1f}")
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
