#!/usr/bin/env bash
# The GPU check: what dd-bench claims on CUDA, in one command of under 9 minutes.
#
#   bash benchmarks/gpu/run.sh               # on a machine with an NVIDIA GPU, from the repository root
#   bash benchmarks/gpu/run.sh --dry-run     # the same steps on the CPU at tiny sizes (the tests run this)
#
# Options: --budget SECONDS (all steps together, default 530), --no-install (use the dd-bench and
# MLflow already installed), --skip STEP[,STEP] (steps: install data env cuda-tests matching-speed
# eval-speed suite leaderboard).
#
# Steps, each time-boxed so that one slow step cannot eat the rest (not in a dry run, whose time is the
# CPU's and its load's: there every step runs to its end):
#   install        dd-bench from this tree (--no-deps: the machine's torch stays), then the wheels
#                  that benchmarks/gpu/prepare.sh put in .gpu-carry/wheels (offline)
#   data           Fashion-MNIST from .gpu-carry/fashion-mnist, unless the machine has it
#   env            nvidia-smi and the torch/CUDA/cuDNN versions
#   cuda-tests     pytest -m cuda
#   matching-speed benchmarks/matching_speed.py (unrolled and constant memory, IPC 1 and 10)
#   eval-speed     benchmarks/eval_speed.py (sequential vs batched, 5 networks, IPC 1/10/50)
#   suite          dd-bench run fmnist-gpu-smoke into SQLite
#   leaderboard    dd-bench leaderboard fmnist-gpu-smoke, packed with its store
# Writes to $OUT (default .gpu-run/out; at most 8 files): summary.json (versions, GPU, each step's
# status and seconds), run.log, cuda-tests.txt, matching_speed.md, eval_speed.md,
# fmnist-gpu-smoke.tar.gz (leaderboards/fmnist-gpu-smoke/ and the MLflow store it was made from).
# The exit status is 0 when every step that ran passed.
set -uo pipefail
cd "$(dirname "$0")/../.."

dry=0 install=1 budget=530 skip=","
while (($#)); do
    case $1 in
        --dry-run) dry=1 ;;
        --no-install) install=0 ;;
        --budget) budget=${2:?--budget needs seconds}; shift ;;
        --skip) skip=",${2:?--skip needs step names},"; shift ;;
        -h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option $1 (allowed: --dry-run, --no-install, --budget SECONDS, --skip STEPS)" >&2; exit 2 ;;
    esac
    shift
done
[[ $budget =~ ^[0-9]+$ ]] || { echo "run.sh: --budget $budget is not allowed: use whole seconds" >&2; exit 2; }

work=$(realpath -m "${GPU_RUN_WORK:-.gpu-run}")
OUT=${OUT:-$work/out}
carry=${GPU_CARRY:-.gpu-carry}
rm -rf "$work/store" "$work/cache" "$work/leaderboards"
mkdir -p "$work" "$OUT"
log=$OUT/run.log steps=$work/steps.tsv
: >"$log"
: >"$steps"
export PYTHONUNBUFFERED=1 DD_BENCH_CACHE=$work/cache
export DD_BENCH_GIT_SHA=${DD_BENCH_GIT_SHA:-$(git rev-parse HEAD 2>/dev/null)}
if ((dry)); then
    device=cpu suite=$work/fmnist-gpu-smoke-dry.yaml suite_name=fmnist-gpu-smoke-dry
    matching_args=(--ipc 1 --syn-steps 2 --iterations 1 --model convnet_w32)
    eval_args=(--models convnet_w32 --ipc 1 --networks 2 --epochs 1)
else
    device=cuda suite=fmnist-gpu-smoke suite_name=fmnist-gpu-smoke
    matching_args=(--ipc 1,10)
    eval_args=(--networks 5 --ipc 1,10,50)
fi
store=sqlite:///$work/store/mlflow.db
deadline=$(($(date +%s) + budget))

say() { echo "run.sh: $*" | tee -a "$log"; }
skipped() { printf '%s\tskipped\t\t0\t0\n' "$1" >>"$steps"; say "$1: skipped ($2)"; }

# step NAME LIMIT OUTFILE COMMAND...: run COMMAND for at most LIMIT seconds (and no later than the
# deadline), stdout to OUTFILE (run.log if empty), stderr to run.log; record status and seconds.
step() {
    local name=$1 limit=$2 outfile=${3:-$log}
    shift 3
    local left=$((deadline - $(date +%s)))
    ((limit > left)) && limit=$left
    [[ $skip == *",$name,"* ]] && { skipped "$name" "--skip"; return 0; }
    local t0 rc status
    if ((dry)); then  # the limits size the GPU's 15 minutes; a CPU dry run's time depends on the machine's load
        say "$name: starting (dry run: no time limit): $*"
        t0=$(date +%s%N)
        "$@" >>"$outfile" 2>>"$log"
        rc=$?
    else
        ((limit < 5)) && { skipped "$name" "budget spent"; return 0; }
        say "$name: starting (at most ${limit}s): $*"
        t0=$(date +%s%N)
        timeout -k 5 "$limit" "$@" >>"$outfile" 2>>"$log"
        rc=$?
    fi
    local ms=$((($(date +%s%N) - t0) / 1000000))
    case $rc in 0) status=ok ;; 124 | 137) status=timeout ;; *) status=failed ;; esac
    printf '%s\t%s\t%s\t%s.%03d\t%s\n' "$name" "$status" "$rc" $((ms / 1000)) $((ms % 1000)) "$limit" >>"$steps"
    say "$name: $status (exit $rc) after $((ms / 1000)).$((ms % 1000 / 100))s"
}

install_tree() {
    python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --no-build-isolation -e . || return
    local wheels=("$carry"/wheels/*.whl)
    if [[ -e ${wheels[0]} ]]; then
        python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile "${wheels[@]}" || return
    fi
    python3 -c "import dd_bench, mlflow; print('dd-bench', dd_bench.__version__, 'mlflow', mlflow.__version__)"
}

unpack_data() {  # the carried IDX files where the dataset plugin looks without --data-root
    python3 - "$carry/fashion-mnist" "$DD_BENCH_CACHE/data/FashionMNIST/raw" <<'EOF'
import lzma, os, sys
from pathlib import Path
source, target = Path(sys.argv[1]), Path(sys.argv[2])
target.mkdir(parents=True, exist_ok=True)
for packed in sorted(source.glob("*.xz")):
    partial = target / f"{packed.stem}.partial"
    partial.write_bytes(lzma.decompress(packed.read_bytes()))
    os.replace(partial, target / packed.stem)
    print(f"{target / packed.stem}: {(target / packed.stem).stat().st_size} bytes")
EOF
}

environment() {
    if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
    python3 - <<'EOF'
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(),
      "GPU", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
EOF
}

shrink_suite() {  # the smoke suite at CPU size: digits, narrow networks, smoke presets, 2 epochs
    python3 - "$1" <<'EOF'
import sys
import yaml
from dd_bench.suite import find_suite
doc = yaml.safe_load(find_suite("fmnist-gpu-smoke").read_text())
doc.update(name="fmnist-gpu-smoke-dry", datasets=["digits"], distill_model="convnet_w32",
           eval_models=["convnet_w32", "mlp"], eval={"epochs": 2}, eval_seeds=1,
           methods={name: {"preset": "smoke"} for name in doc["methods"]})
open(sys.argv[1], "w").write(yaml.safe_dump(doc))
EOF
}

leaderboard() {
    python3 -m dd_bench.cli leaderboard "$suite" --tracking-uri "$store" --out "$work/leaderboards/$suite_name" &&
        tar -czf "$OUT/$suite_name.tar.gz" -C "$work" "leaderboards/$suite_name" store
}

export -f install_tree unpack_data environment shrink_suite leaderboard
export carry suite suite_name store work OUT

say "$( ((dry)) && echo 'dry run on the CPU' || echo 'GPU check'), budget ${budget}s, writing to $OUT"
if ((dry || !install)); then skipped install "$( ((dry)) && echo 'dry run' || echo '--no-install'): the installed dd-bench"
else step install 90 "" bash -c install_tree; fi
if ls "$carry"/fashion-mnist/*.xz >/dev/null 2>&1; then step data 30 "" bash -c unpack_data
else skipped data "no $carry/fashion-mnist: the machine's own copy"; fi
step env 20 "" bash -c environment
step cuda-tests 180 "$OUT/cuda-tests.txt" python3 -m pytest -m cuda -rA -q -p no:cacheprovider tests
step matching-speed 75 "$OUT/matching_speed.md" python3 benchmarks/matching_speed.py --device "$device" "${matching_args[@]}"
step eval-speed 45 "$OUT/eval_speed.md" python3 benchmarks/eval_speed.py --device "$device" --modes batched "${eval_args[@]}"
((dry)) && shrink_suite "$suite"
left=$((deadline - $(date +%s) - 30))
step suite $((left > 0 ? left : 0)) "" python3 -m dd_bench.cli run "$suite" --device "$device" --tracking-uri "$store"
step leaderboard 30 "" bash -c leaderboard

python3 - "$steps" "$OUT/summary.json" "$dry" "$budget" <<'EOF'
import json, os, platform, shutil, subprocess, sys
from pathlib import Path
import torch
steps_file, out, dry, budget = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
steps = []
for line in steps_file.read_text().splitlines():
    name, status, rc, seconds, limit = line.split("\t")
    steps.append({"name": name, "status": status, "exit": int(rc) if rc else None, "seconds": float(seconds),
                  "limit_s": int(limit)})
def version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                     capture_output=True, text=True) if shutil.which("nvidia-smi") else None
summary = {
    "dry_run": dry,
    "budget_s": budget,
    "git_sha": os.environ.get("DD_BENCH_GIT_SHA") or None,
    "python": platform.python_version(),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version(),
    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    "nvidia_smi": smi.stdout.strip() if smi is not None and smi.returncode == 0 else None,
    "versions": {n: version(n) for n in ("dd-bench", "mlflow-skinny", "mlflow", "torchvision", "timm", "pluggy", "pandas")},
    "steps": steps,
    "ok": all(s["status"] in ("ok", "skipped") for s in steps),
}
out.write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps({"ok": summary["ok"], "gpu": summary["gpu"], "steps": {s["name"]: [s["status"], s["seconds"]] for s in steps}}))
sys.exit(0 if summary["ok"] else 1)
EOF
