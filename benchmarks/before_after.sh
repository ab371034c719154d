#!/usr/bin/env bash
# Before/after in one run on one machine: the matching benchmark on BASE (a git revision,
# checked out in a temporary worktree) and on the working tree, then the allocator settings
# with /usr/bin/time's page-fault counts, then evaluation sequential vs batched.
#   benchmarks/before_after.sh 1ac2132 > before_after.md
# Run it on a quiet machine: nothing else computing.
set -euo pipefail
base_rev=${1:?usage: benchmarks/before_after.sh BASE_REVISION}
here=$(git rev-parse --show-toplevel)
base=$(mktemp -d)/base
git -C "$here" worktree add --detach "$base" "$base_rev" >/dev/null
trap 'git -C "$here" worktree remove --force "$base"' EXIT
py=${PYTHON:-python}
echo "# before ($base_rev) / after ($(git -C "$here" rev-parse --short HEAD)), $(nproc) cores, $(date -u +%F)"
for tree in "$base" "$here"; do
  echo; echo "## matching, $(git -C "$tree" rev-parse --short HEAD)"
  (cd "$tree" && PYTHONPATH="$tree:$tree/plugins" $py benchmarks/matching_speed.py --iterations 2)
done
echo; echo "## allocator (unrolled, reference config): page faults"
for tree in "$base" "$here"; do
  for alloc in default tuned; do
    echo "### $(git -C "$tree" rev-parse --short HEAD) $alloc"
    (cd "$tree" && PYTHONPATH="$tree:$tree/plugins" /usr/bin/time -v $py benchmarks/matching_speed.py --one \
      --syn-steps 20 --ipc 10 --iterations 2 --allocator "$alloc" 2>&1 | grep -E 's_per_iter|Minor|Major|Maximum resident')
  done
done
echo; echo "## evaluation"
(cd "$here" && $py benchmarks/eval_speed.py --epochs 3)
