"""OQ vs random on Fashion-MNIST through the CLI: accuracies (weighted and unweighted) and quantization errors.

    python benchmarks/oq_measure.py --out /tmp/oq_measure                # distil, evaluate, summarise
    python benchmarks/oq_measure.py --out /tmp/oq_measure --summarise    # only the table, from the files

Every distillation and evaluation is one ``dd-bench`` command (``--seeds 4,`` names seed 4:
a bare ``--seeds 4`` would mean seeds 0..3) (logged verbatim with its wall
time in ``commands.log``), run in ``--jobs`` parallel lanes with ``--threads`` torch threads
each. Distillation seed ``s`` is evaluated with model seed ``s`` (one network per cell), so
the spread over n = len(seeds) includes both the draw of the set and the network's seed.
The summary reports final-epoch test accuracy (mean, sample std, n), the validation
accuracy (the only figure anything may be selected on), and the quantization error of every
set in normalised pixel space and in the preset's latent space (``dd_bench_oq.set_quantization_error``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def sh(cmd: list[str], log: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    with log.open("a") as fh:
        fh.write(f"[{wall:8.1f}s rc={out.returncode}] {shlex.join(cmd)}\n")
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--ipcs", default="1,10")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--preset", default="cpu", help="OQ preset")
    p.add_argument("--oq-set", action="append", default=[], help="extra --set for OQ (repeatable)")
    p.add_argument("--epochs", default="1:300,10:100", help="evaluation epochs per ipc, e.g. 1:300,10:100")
    p.add_argument("--model", default="convnet")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", type=Path)
    p.add_argument("--summarise", action="store_true")
    args = p.parse_args()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    ipcs = [int(i) for i in args.ipcs.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    epochs = {int(k): int(v) for k, v in (kv.split(":") for kv in args.epochs.split(","))}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    log = out / "commands.log"
    cache = ["--cache-dir", str(args.cache_dir or out / "cache")]

    variants = {  # name -> (set file stem, extra evaluate flags)
        "random": ("random", []),
        "oq (weighted)": ("oq", []),
        "oq (unweighted)": ("oq", ["--no-weights"]),
    }
    if not args.summarise:
        distills = []
        for ipc in ipcs:
            for s in seeds:
                base = [
                    "dd-bench",
                    "distill",
                    "--dataset",
                    args.dataset,
                    "--ipc",
                    str(ipc),
                    "--seed",
                    str(s),
                    "--device",
                    "cpu",
                ]
                distills.append(base + ["--method", "random", "--out", str(out / f"random_ipc{ipc}_s{s}.pt")])
                oq = base + [
                    "--method",
                    "oq",
                    "--preset",
                    args.preset,
                    "--out",
                    str(out / f"oq_ipc{ipc}_s{s}.pt"),
                    *cache,
                ]
                for kv in args.oq_set:
                    oq += ["--set", kv]
                distills.append(oq)
        # distillations first (one at a time: they are short, and the first trains/fits the latent)
        for cmd in distills:
            sh(cmd, log, env)
        evals = []
        for ipc in sorted(ipcs, reverse=True):  # longest first
            for name, (stem, flags) in variants.items():
                for s in seeds:
                    path = out / f"{stem}_ipc{ipc}_s{s}.pt"
                    target = out / f"eval_{name.replace(' ', '_').replace('(', '').replace(')', '')}_ipc{ipc}_s{s}.json"
                    if target.exists():
                        continue
                    cmd = [
                        "dd-bench",
                        "evaluate",
                        str(path),
                        "--models",
                        args.model,
                        "--seeds",
                        f"{s},",
                        "--epochs",
                        str(epochs[ipc]),
                        "--device",
                        "cpu",
                        "--json",
                        *flags,
                    ]
                    evals.append((cmd, target))

        def run_eval(job):
            cmd, target = job
            started = time.perf_counter()
            res = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - started
            with log.open("a") as fh:
                fh.write(f"[{wall:8.1f}s rc={res.returncode}] {shlex.join(cmd)} > {target.name}\n")
            if res.returncode == 0:
                blob = json.loads(res.stdout)
                blob["wall_seconds"] = wall
                target.write_text(json.dumps(blob, indent=2))
            else:
                print(res.stderr[-2000:], file=sys.stderr)

        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run_eval, evals))

    # ------------------------------------------------------------------ summary
    import dd_bench_oq
    import torch

    from dd_bench import api
    from dd_bench.synthetic import SyntheticSet
    from dd_bench.testing import make_registry

    registry = make_registry()
    data = api.load_data(registry, args.dataset)
    config = registry.distiller("oq").resolve_config(args.preset, dict(kv.split("=", 1) for kv in args.oq_set))
    space = dd_bench_oq.build_latent(config, data, torch.device("cpu"), args.cache_dir or out / "cache", progress=False)

    def fmt(values):
        if not values:
            return "n/a"
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.2f} ± {sd:.2f} ({len(values)})"

    rows, record = [], {}
    for ipc in ipcs:
        for name, (stem, _flags) in variants.items():
            tests, vals, walls, pix, lat = [], [], [], [], []
            for s in seeds:
                target = out / f"eval_{name.replace(' ', '_').replace('(', '').replace(')', '')}_ipc{ipc}_s{s}.json"
                if target.exists():
                    blob = json.loads(target.read_text())
                    r = blob["results"][args.model]
                    tests += r["accs"]
                    vals += r["val_accs"]
                    walls.append(blob["wall_seconds"])
                syn_path = out / f"{stem}_ipc{ipc}_s{s}.pt"
                if syn_path.exists():
                    syn = SyntheticSet.load(syn_path)
                    pix.append(float(dd_bench_oq.set_quantization_error(syn.images, syn.hard_labels(), data)["error"]))
                    lat.append(
                        float(dd_bench_oq.set_quantization_error(syn.images, syn.hard_labels(), data, space)["error"])
                    )
            record[f"{name} ipc{ipc}"] = {
                "test": tests,
                "val": vals,
                "eval_wall_s": walls,
                "qe_pixel": pix,
                "qe_latent": lat,
            }
            wall = f"{statistics.fmean(walls):.0f}" if walls else "n/a"
            rows.append(
                f"| {ipc} | {name} | {epochs.get(ipc, '?')} | {fmt(tests)} | {fmt(vals)} | {fmt(pix)} | {fmt(lat)} | {wall} |"
            )
    table = "\n".join(
        [
            f"{args.dataset}, {args.model}, final-epoch accuracy % mean ± std (n); OQ preset {args.preset} {' '.join(args.oq_set)}",
            "",
            f"| ipc | set | eval epochs | test acc | val acc | QE pixel | QE latent ({space.name}) | eval wall s |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    (out / "summary.md").write_text(table + "\n")
    (out / "summary.json").write_text(json.dumps(record, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
