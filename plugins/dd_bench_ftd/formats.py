"""FTD's saved sets, as its ``distill_FTD.py`` writes them. Each run saves two: the raw images in
``logged_files/<dataset>/<run>/images_<it>.pt`` (MTT's layout: import them as ``mtt``), and the
EMA of the images, the set the paper reports, in ``ema_logged_files/<dataset>/<run>/`` as
``ema_images_<it>.pt`` and ``ema_labels_<it>.pt`` (``ema_images_best.pt`` for the best so far;
``images_zca_<it>.pt`` there are inverse-whitened copies for viewing, not sets). Format ``ftd``
reads the EMA set. FTD logs its learned lr but never saves it: pass ``--lr``."""

from __future__ import annotations

from pathlib import Path

from dd_bench.plugin import (
    DataError,
    FormatRead,
    FormatSpec,
    ReadRequest,
    read_iteration_set,
)

PREFIX = "ema_"


def _run_folder(path: Path) -> Path:
    """The folder holding the EMA set: ``path`` itself, or the one run folder under it
    (``ema_logged_files/`` or ``ema_logged_files/<dataset>/``)."""
    if not path.is_dir() or any(path.glob(f"{PREFIX}images_*.pt")):
        return path
    runs = sorted({p.parent for p in path.rglob(f"{PREFIX}images_*.pt")})
    if len(runs) == 1:
        return runs[0]
    if runs:
        shown = ", ".join(str(r.relative_to(path)) for r in runs[:3]) + (", ..." if len(runs) > 3 else "")
        raise DataError(f"{path} holds {len(runs)} FTD runs ({shown}): give the run's folder")
    if any(path.glob("images_*.pt")):
        raise DataError(
            f"{path} holds FTD's raw images (images_*.pt), not its EMA set: the paper's set is in"
            " ema_logged_files/<dataset>/<run>/ (or import these raw images as mtt)"
        )
    raise DataError(
        f"{path} holds no {PREFIX}images_best.pt or {PREFIX}images_<iteration>.pt (FTD's EMA sets,"
        " ema_logged_files/<dataset>/<run>/)"
    )


def read_ftd(path: Path, request: ReadRequest) -> FormatRead:
    read = read_iteration_set(_run_folder(path), prefix=PREFIX, what="FTD's EMA")
    read.details["ema"] = True
    return read


FORMAT = FormatSpec(
    "ftd",
    "FTD's EMA set, ema_logged_files/<dataset>/<run>/ema_images_<it>.pt (best preferred)",
    read_ftd,
    learns_lr=True,
    zca_check=True,
)
