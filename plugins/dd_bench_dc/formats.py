"""DatasetCondensation's results file, as its ``main.py`` saves it: ``torch.save({'data': data_save,
'accs_all_exps': ...}, 'res_<method>_<dataset>_<model>_<ipc>ipc.pt')``, where ``data_save`` holds one
``[images, labels]`` pair per experiment, images normalised with the reference mean/std."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dd_bench.plugin import (
    ConfigError,
    DataError,
    FormatRead,
    FormatSpec,
    ReadRequest,
    torch_load,
)

RESULTS_NAME = re.compile(r"res_([^_]+)_(.+)_([^_]+)_(\d+)ipc\.pt")


def read_dc(path: Path, request: ReadRequest) -> FormatRead:
    """One experiment's set (``--experiment``; default the last, as DC-BENCH takes it)."""
    if path.is_dir():
        found = sorted(path.glob("res_*.pt"))
        if len(found) != 1:
            raise DataError(f"{path} holds {len(found)} res_*.pt files: give the file itself")
        path = found[0]
    blob = torch_load(path)
    runs = blob.get("data") if isinstance(blob, dict) else None
    if (
        not isinstance(runs, (list, tuple))
        or not runs
        or not all(isinstance(r, (list, tuple)) and len(r) == 2 for r in runs)
    ):
        raise DataError(
            f"{path} is not a DC results file: expected a dict whose 'data' is a list of [images, labels] pairs"
        )
    index = len(runs) - 1 if request.experiment is None else request.experiment
    if not 0 <= index < len(runs):
        raise ConfigError(
            f"--experiment {request.experiment} is not allowed: {path} holds experiments 0-{len(runs) - 1}"
        )
    images, labels = runs[index]
    details: dict[str, Any] = {"experiment": index, "experiments": len(runs)}
    match = RESULTS_NAME.fullmatch(path.name)
    if match:  # the method, dataset, model and IPC the file is named after
        details.update(zip(("method", "source_dataset", "model", "ipc"), (match[1], match[2], match[3], int(match[4]))))
    return FormatRead(images, labels, [path], "reference", details=details)


FORMAT = FormatSpec(
    "dc",
    "DatasetCondensation's res_<method>_<data>_<model>_<ipc>ipc.pt (one set per experiment)",
    read_dc,
    zca_check=True,
    options=("experiment",),
)
