"""DATM's saved sets, as its ``DATM.py`` writes them: ``<run>/Normal/images_<it>.pt``,
``labels_<it>.pt`` and ``lr_<it>.pt`` (``best`` for the best so far), images in the reference
normalisation, labels the learned soft labels (logits).

DATM initialises ``ipc`` images per class in class order and then learns their labels, so a
slot's class is where it sits, not its label's current argmax (which learning may move); its
tensors are saved straight from the optimiser and carry ``requires_grad`` (the host detaches
every set it imports)."""

from __future__ import annotations

from pathlib import Path

import torch

from dd_bench.plugin import (
    DataError,
    FormatRead,
    FormatSpec,
    ReadRequest,
    read_iteration_set,
)


def read_datm(path: Path, request: ReadRequest) -> FormatRead:
    if path.is_dir() and not any(path.glob("images_*.pt")) and (path / "Normal").is_dir():
        path = path / "Normal"  # DATM writes its sets there
    read = read_iteration_set(path, what="DATM")
    n, k = len(read.images), request.data.num_classes
    if n != k * request.ipc:
        raise DataError(
            f"{read.files[0]} holds {n} images; DATM lays out --ipc {request.ipc} of each of"
            f" {request.data.name}'s {k} classes ({k * request.ipc} images)"
        )
    read.classes = torch.arange(k).repeat_interleave(request.ipc)
    return read


FORMAT = FormatSpec(
    "datm",
    "DATM's Normal/ folder of images_<it>.pt, soft labels_<it>.pt and lr_<it>.pt",
    read_datm,
    learns_lr=True,
    zca_check=True,
)
