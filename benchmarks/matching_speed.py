"""Seconds per distillation iteration and peak memory of the trajectory-matching engine.

Each configuration runs in a fresh process, so the peak resident memory (CPU) or peak
allocated memory (CUDA) belongs to it alone. Defaults reproduce the issue's reference
point: Fashion-MNIST shapes, ConvNet width 128 depth 3 instance norm (28x28 padded as in
the literature), IPC 10, syn_steps 20, batch_syn = all images, DSA on.

    python benchmarks/matching_speed.py                          # unrolled and constant memory
    python benchmarks/matching_speed.py --syn-steps 10,20,40,80 --ipc 1,10 --iterations 3
    python benchmarks/matching_speed.py --allocator default,tuned   # before/after the CPU allocator setting

``--allocator tuned`` (the default) applies ``dd_bench.runtime.tune_cpu_allocator`` as the
``dd-bench`` command does; ``default`` leaves glibc's malloc as it is.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shlex
import statistics
import subprocess
import sys
import time

import torch


def one(args: argparse.Namespace) -> dict:
    from dd_bench.augment import DSA
    from dd_bench.matching import FlatModel, match
    from dd_bench.matching.instance_norm import with_cheap_instance_norm
    from dd_bench.plugins import Registry
    from dd_bench.runtime import tune_cpu_allocator
    from dd_bench.specs import DataShape

    tuned = tune_cpu_allocator() if args.allocator == "tuned" else False
    device = torch.device(args.device)
    torch.manual_seed(0)
    shape = DataShape(1, 28, 28, 10)
    net = Registry().model(args.model).build(shape).to(device)
    student = FlatModel(net if args.group_norm else with_cheap_instance_norm(net))  # the engine's student
    start = student.flatten()
    target = start + 0.01 * torch.randn_like(start)  # an expert's step: the math, not the values, sets the cost
    n = 10 * args.ipc
    images = torch.randn(n, 1, 28, 28, device=device, requires_grad=True)
    labels = torch.arange(10, device=device).repeat_interleave(args.ipc)
    lr = torch.tensor(0.01, device=device, requires_grad=True)
    opt = torch.optim.SGD([images], lr=100.0, momentum=0.5)
    augment = DSA() if not args.no_dsa else None
    g = torch.Generator().manual_seed(0)
    batch = args.batch_syn or n
    times = []
    for it in range(args.iterations + 1):  # the first iteration warms up and is not counted
        batches = [torch.randperm(n, generator=g)[:batch].to(device) for _ in range(args.syn_steps)]
        seeds = torch.randint(0, 2**62, (args.syn_steps,), generator=g).tolist()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad()
        match(student, start, target, images, labels, lr, batches, seeds, augment, args.constant_memory)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if it:
            times.append(time.perf_counter() - t)
    if device.type == "cuda":
        peak_gb = torch.cuda.max_memory_allocated() / 2**30
        peak_kind = "cuda max_memory_allocated"
    else:
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak_kind = "peak RSS"
    return {
        "mode": "constant-memory" if args.constant_memory else "unrolled",
        "ipc": args.ipc,
        "syn_steps": args.syn_steps,
        "s_per_iter": statistics.median(times),
        "s_per_iter_all": [round(x, 3) for x in times],
        "peak_gb": round(peak_gb, 3),
        "peak_kind": peak_kind,
        "threads": torch.get_num_threads(),
        "allocator": "tuned" if tuned else "default",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--syn-steps", default="20")
    parser.add_argument("--ipc", default="10")
    parser.add_argument("--modes", default="unrolled,constant-memory")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations (median reported)")
    parser.add_argument("--batch-syn", type=int, default=None)
    parser.add_argument("--model", default="convnet")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-dsa", action="store_true")
    parser.add_argument(
        "--allocator", default="tuned", help="tuned, default, or both comma-separated (CPU malloc setting)"
    )
    parser.add_argument(
        "--group-norm",
        action="store_true",
        help="student with nn.GroupNorm instead of the engine's cheap instance norm",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--constant-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        args.syn_steps, args.ipc = int(args.syn_steps), int(args.ipc)
        print(json.dumps(one(args)))
        return
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(
        f"`python {' '.join(shlex.quote(a) for a in sys.argv)}`; torch {torch.__version__}, model {args.model},"
        f" {args.device} ({where})\n"
    )
    print("| allocator | mode | ipc | syn_steps | s/iter (median) | peak GB |")
    print("|---|---|---|---|---|---|")
    for allocator, mode in itertools.product(args.allocator.split(","), args.modes.split(",")):
        for ipc in args.ipc.split(","):
            for steps in args.syn_steps.split(","):
                cmd = [
                    sys.executable,
                    __file__,
                    "--one",
                    "--syn-steps",
                    steps,
                    "--ipc",
                    ipc,
                    "--model",
                    args.model,
                    "--iterations",
                    str(args.iterations),
                    "--device",
                    args.device,
                    "--allocator",
                    allocator,
                ]
                cmd += ["--constant-memory"] if mode == "constant-memory" else []
                cmd += ["--no-dsa"] if args.no_dsa else []
                cmd += ["--group-norm"] if args.group_norm else []
                cmd += ["--batch-syn", str(args.batch_syn)] if args.batch_syn else []
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    print(
                        f"| {allocator} | {mode} | {ipc} | {steps} | failed: {out.stderr.strip().splitlines()[-1]} | |",
                        flush=True,
                    )
                    continue
                r = json.loads(out.stdout)
                print(
                    f"| {r['allocator']} | {r['mode']} | {ipc} | {steps} | {r['s_per_iter']:.2f} | {r['peak_gb']:.2f} ({r['peak_kind']}) |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
