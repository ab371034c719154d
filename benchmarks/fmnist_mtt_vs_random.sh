#!/usr/bin/env bash
# MTT (cpu preset, ConvNet width 32 for distillation) against random real subsets on
# Fashion-MNIST at IPC 1 and 10, evaluated on ConvNet (width 128) under one protocol.
# Usage: benchmarks/fmnist_mtt_vs_random.sh OUT_DIR [EVAL_EPOCHS] [SEEDS]
set -euo pipefail
out=${1:?usage: $0 OUT_DIR [EVAL_EPOCHS] [SEEDS]}
epochs=${2:-300}
seeds=${3:-0 1 2}
mkdir -p "$out"
export DD_BENCH_CACHE=${DD_BENCH_CACHE:-$out/cache}
timed() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "$name $((SECONDS - t0)) s" >> "$out/times.txt"; }
timed buffer dd-bench buffer --dataset fashion_mnist --model convnet_w32 --experts 4 --epochs 6
for ipc in 1 10; do
  for seed in $seeds; do
    for method in random mtt; do
      set_args=()
      [ "$method" = mtt ] && set_args=(--preset cpu --model convnet_w32)
      [ -f "$out/$method-ipc$ipc-s$seed.pt" ] || timed "distill-$method-ipc$ipc-s$seed" dd-bench distill --method $method --dataset fashion_mnist --ipc $ipc --seed $seed "${set_args[@]}" --out "$out/$method-ipc$ipc-s$seed.pt"
      [ -f "$out/$method-ipc$ipc-s$seed.json" ] || timed "evaluate-$method-ipc$ipc-s$seed" sh -c "dd-bench evaluate $out/$method-ipc$ipc-s$seed.pt --models convnet --seeds $seed --epochs $epochs --json > $out/$method-ipc$ipc-s$seed.json.tmp && mv $out/$method-ipc$ipc-s$seed.json.tmp $out/$method-ipc$ipc-s$seed.json"
    done
  done
done
python - "$out" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
for ipc in (1, 10):
    for method in ("random", "mtt"):
        accs = [json.loads(p.read_text())["results"]["convnet"]["accs"][0] for p in sorted(out.glob(f"{method}-ipc{ipc}-s*.json"))]
        if accs:
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(f"IPC {ipc:>2} {method:<7} {statistics.fmean(accs):6.2f} ± {sd:5.2f} (n={len(accs)})  {accs}")
PY
