"""Expert buffers: seconds to train ``--experts`` experts x ``--epochs`` epochs, eager vs compiled.

The issue's reference point is the default: 3 experts x 5 epochs of ConvNet-w32 on
Fashion-MNIST's training split (54,000 images of 1x28x28 here, random values: the arithmetic,
not the pixels, sets the cost), with the literature's expert recipe (SGD lr 0.01, batch 256,
DSA). Each mode runs ``dd_bench.matching.ensure_buffers`` in a fresh process with an empty
buffer cache, so the seconds include everything a first distillation pays:

- ``eager``: ``DD_BENCH_COMPILE=0``;
- ``compiled-cold``: ``DD_BENCH_COMPILE=1`` with an empty inductor cache (a first run on a machine);
- ``compiled-warm``: the same again, the inductor cache now filled (any later process).

    python benchmarks/buffer_speed.py
    python benchmarks/buffer_speed.py --experts 1 --epochs 1 --images 10240 --modes eager,compiled-warm
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import torch


def one(args: argparse.Namespace) -> dict:
    from dd_bench.matching import ExpertRecipe, ensure_buffers
    from dd_bench.plugins import Registry
    from dd_bench.runtime import seeded_build, tune_cpu_allocator
    from dd_bench.specs import RealData

    tune_cpu_allocator()  # as the dd-bench command does
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (args.images,), generator=g)
    data = RealData("bench", x, y, x[:10], y[:10], x[:10], y[:10], (0.0,), (1.0,), tuple(map(str, range(10))))
    spec, device = Registry().model(args.model), torch.device(args.device)
    recipe = ExpertRecipe(epochs=args.epochs)
    started = time.perf_counter()
    buffers = ensure_buffers(
        args.model,
        lambda seed: seeded_build(lambda: spec.build(data.shape), seed, device),
        data,
        x,
        recipe,
        args.experts,
        args.cache,
        device,
        progress=False,
    )
    seconds = time.perf_counter() - started
    steps = args.experts * recipe.train_recipe().steps(args.images)
    return {"seconds": seconds, "steps": steps, "compiled": buffers.compiled[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="convnet_w32")
    parser.add_argument("--experts", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", type=int, default=54000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default="eager,compiled-cold,compiled-warm")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return
    print(
        f"`python {' '.join(shlex.quote(a) for a in sys.argv)}`; torch {torch.__version__},"
        f" {torch.get_num_threads()} threads, {args.device}\n"
    )
    print("| mode | experts x epochs | steps | seconds (all in) | s/step (all in) | speed-up over eager |")
    print("|---|---|---|---|---|---|")
    inductor_cache = tempfile.mkdtemp(prefix="inductor-")
    eager = None
    for mode in args.modes.split(","):
        if mode == "compiled-cold":
            shutil.rmtree(inductor_cache)
        elif mode == "compiled-warm" and not os.listdir(inductor_cache):
            parser.error(
                "compiled-warm reuses the inductor cache that compiled-cold fills: list it after compiled-cold"
            )
        env = {
            **os.environ,
            "DD_BENCH_COMPILE": "0" if mode == "eager" else "1",
            "TORCHINDUCTOR_CACHE_DIR": inductor_cache,
        }
        with tempfile.TemporaryDirectory() as cache:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                "--cache",
                cache,
                "--model",
                args.model,
                "--experts",
                str(args.experts),
                "--epochs",
                str(args.epochs),
                "--images",
                str(args.images),
                "--device",
                args.device,
            ]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        eager = r["seconds"] if mode == "eager" else eager
        ratio = f"{eager / r['seconds']:.2f}x" if eager else ""
        print(
            f"| {mode}{'' if r['compiled'] == (mode != 'eager') else ' (NOT as asked)'} | {args.experts} x {args.epochs}"
            f" | {r['steps']} | {r['seconds']:.1f} | {r['seconds'] / r['steps']:.4f} | {ratio} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
