"""The notes every leaderboard ends with: how its numbers are made, in the suite's own terms.

The text is Markdown (a list of bullets, `code` and **bold**); the README shows it as it is
and the page turns it into an HTML list, so the two never say different things.
"""

from __future__ import annotations

from ..suite import Suite, eval_config
from .board import LRS_LAMBDA, Board, seeds_for

HOW = """\
- **Cells.** One cell = method x dataset x IPC x distillation seed; the cell's seed seeds the
  distillation. Each cell trains {k} fresh network(s) per evaluation architecture (network
  seeds {eval_seeds}, the same in every cell) with the evaluation protocol of `dd_bench/evaluate.py`
  ({epochs} epochs unless a method overrides it{overrides}) and reports the final-epoch test accuracy.
- **Evaluation recipe** (`eval.recipe`, recorded with every run): {recipes}.
- **Entries.** mean ± sample std over distillation seeds of the per-cell mean accuracy;
  n = number of distillation seeds ({n}). Evaluation networks within a cell share one
  synthetic set, so they are averaged first rather than counted as independent samples.
  An entry whose seeds did not all finish reads `missing (i/n)`; partial seeds are never averaged.
- **HLR** (hard label recovery) = acc_full_hard − acc_syn_hard, lower is better;
  **IOR** (improvement over random) = acc_syn − acc_random, higher is better;
  **LRS** (label-robust score) = 100 · (e^a − e^−1) / (e − e^−1), a = (λ·IOR − (1−λ)·HLR) / 100, \
λ = {lam}.
  Accuracies are in percent, hence the division by 100 (the reference formula assumes
  fractions in [0, 1]); LRS lies in [0, 100]. acc_syn_hard uses argmax labels for soft-label
  sets; references are the {full} and {random} rows' means on {primary} at the same IPC;
  scores are computed per distillation seed, then averaged.
- **Label protocols.** Every evaluation records `labels`: `hard` trains on class indices, `set`
  on the set's stored labels, `teacher` on a teacher's softened outputs (KL at a temperature)
  for every augmented batch. A cell under `set` (soft labels) or `teacher` is also trained
  under `hard`, so each row shows both. Under the teacher protocol IOR compares with the random
  row under the same protocol and the same teacher (cache key); HLR always uses hard labels.
- **Costs.** Distillation wall time and peak memory (CPU: peak RSS of the process during
  distillation; GPU: `torch.cuda.max_memory_allocated`), storage in KiB of what the cell's
  label protocol needs (images, plus soft labels or the teacher's parameters where it uses them).
  The wall time includes building caches (expert buffers, a trained latent) in whichever cell
  needed them first; "of which caches" shows that part, where the distiller reports it.
"""


RECIPE_TEXT = {
    "classic": "SGD momentum 0.9, x0.1 at half the epochs, DSA",
    "decoupled": "SRe2L/RDED's: AdamW, cosine, random-resized crop + flip, teacher labels, test crop 0.875",
}


def recipes_text(suite: Suite, methods: list[str]) -> str:
    """Which named evaluation recipe each method ran under, in one phrase."""
    by_method = {m.name: eval_config(suite.eval, m.eval).recipe for m in suite.methods or ()}
    default = eval_config(suite.eval).recipe
    groups: dict[str, list[str]] = {}
    for m in methods:
        groups.setdefault(by_method.get(m, default), []).append(m)
    if len(groups) <= 1:
        name = next(iter(groups), default)
        return f"`{name}` ({RECIPE_TEXT[name]}) for every method"
    return "; ".join(f"`{name}` ({RECIPE_TEXT[name]}) for {', '.join(ms)}" for name, ms in sorted(groups.items()))


def how(board: Board) -> str:
    """The leaderboard's "How the numbers are made" notes (Markdown bullets) for this board's suite."""
    s = board.suite
    overrides = [f"{m.name}: {dict(m.eval)}" for m in s.methods or () if m.eval]
    seeds = {m: len(seeds_for(s, m)) for m in board.methods}
    n = ", ".join(sorted({f"{v}" for v in seeds.values()}))
    return HOW.format(
        k=len(s.eval_seeds),
        eval_seeds=", ".join(map(str, s.eval_seeds)),
        epochs=eval_config(s.eval).epochs,
        recipes=recipes_text(s, board.methods),
        overrides="; overrides: " + "; ".join(overrides) if overrides else "",
        n=n,
        lam=LRS_LAMBDA,
        full=s.full_method,
        random=s.random_method,
        primary=s.primary_eval_model(),
    )
