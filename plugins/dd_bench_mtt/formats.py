"""MTT's saved sets, as its ``distill.py`` writes them: ``images_<it>.pt`` and ``labels_<it>.pt`` by
iteration, ``images_best.pt``/``labels_best.pt`` for the best so far, images in the reference
normalisation (``images_zca_<it>.pt`` are inverse-whitened copies for viewing, not sets). MTT logs
its learned lr (``Synthetic_LR``) but does not save it: pass ``--lr``. ``export --format mtt``
writes the same files, plus ``lr_best.pt`` for a set with a learned lr."""

from __future__ import annotations

from pathlib import Path

import torch

from dd_bench.plugin import (
    FormatRead,
    FormatSpec,
    ReadRequest,
    SyntheticSet,
    atomic_torch_save,
    read_iteration_set,
    to_reference_normalization,
)


def read_mtt(path: Path, request: ReadRequest) -> FormatRead:
    return read_iteration_set(path, what="MTT")


def write_mtt(syn: SyntheticSet, out: Path) -> None:
    out.mkdir()
    atomic_torch_save(to_reference_normalization(syn), out / "images_best.pt")
    atomic_torch_save(syn.labels.detach().cpu(), out / "labels_best.pt")
    if syn.lr is not None:
        atomic_torch_save(torch.tensor(syn.lr), out / "lr_best.pt")


FORMAT = FormatSpec(
    "mtt",
    "MTT's folder of images_<it>.pt and labels_<it>.pt (best preferred, else the last iteration)",
    read_mtt,
    write_mtt,
    learns_lr=True,
    zca_check=True,
)
