"""The leaderboard's figures, as PNG bytes: accuracy against IPC and the cross-architecture heat map.

matplotlib is imported only when a figure is drawn (with the Agg backend: no display needed),
so reading or building a board costs nothing of it. Each figure carries its caption (suite,
date, device, command) in the image and in the PNG's metadata, so a copied plot still says
where it came from.
"""

from __future__ import annotations

import io
import math
from typing import Any

from .board import Board

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
"""matplotlib's tab10 without its grey, which the lower reference wears."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":")
RANDOM_STYLE = {"color": "0.4", "marker": "x", "ls": ":"}
"""The lower reference (random subset): grey and dotted, like no method."""


def row_styles(board: Board) -> dict[str, dict[str, str]]:
    """Each plotted row's colour, marker and line style, no two rows alike: 9 colours x 7 markers
    (coprime, so the pair repeats only after 63 rows), the line style changing every 9 rows."""
    styles = {}
    methods = [m for m in board.methods if board.roles[m] == "method"]
    for i, m in enumerate(methods):
        styles[m] = {
            "color": COLOURS[i % len(COLOURS)],
            "marker": MARKERS[i % len(MARKERS)],
            "ls": LINESTYLES[(i // len(COLOURS)) % len(LINESTYLES)],
        }
    styles.update({m: dict(RANDOM_STYLE) for m in board.methods if board.roles[m] == "random"})
    return styles


def plot_accuracy_vs_ipc(board: Board, caption: str) -> bytes:
    """Per dataset: each method's accuracy on the primary architecture against IPC (log scale), std as error
    bars; the whole-training-set reference as a dashed line."""
    return figure_png(accuracy_figure(board, caption), caption)


def accuracy_figure(board: Board, caption: str) -> Any:
    """The accuracy-vs-IPC figure: each row its own colour, marker and line style, the legend
    beside the axes (inside, it would cover the lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = board.suite
    primary = s.primary_eval_model()
    styles = row_styles(board)
    fig, axes = plt.subplots(1, len(s.datasets), figsize=(8 * len(s.datasets), 4.5), squeeze=False)
    xs = [int(i) for i in board.ipcs]
    for ax, ds in zip(axes[0], s.datasets):
        for m in board.methods:
            entries = [board.acc.get((ds, m, ipc, primary)) for ipc in board.ipcs]
            if board.roles[m] == "full":
                e = entries[0] if entries else None
                if e is not None and e.complete:
                    ax.axhline(e.mean, ls="--", color="k", lw=1, label=f"{m} (whole training set)")
                continue
            pts = [
                (x, e.mean, 0.0 if math.isnan(e.std) else e.std)
                for x, e in zip(xs, entries)
                if e is not None and e.complete
            ]
            if pts:
                ax.errorbar(
                    [p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], capsize=3, label=m, **styles[m]
                )
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("images per class")
        ax.set_ylabel(f"test accuracy % ({primary})")
        ax.set_title(f"{ds}: accuracy vs IPC")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # no finished entry on this dataset: no legend (and no warning)
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.text(0.01, 0.005, caption, fontsize=6, color="#555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def plot_cross_arch(board: Board, caption: str) -> bytes:
    """Per dataset and IPC: a heat map of methods x evaluation architectures (mean test accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    s = board.suite
    panels = [(ds, ipc) for ds in s.datasets for ipc in board.ipcs]
    width = 1.6 + 1.3 * len(s.eval_models) * len(panels) + 1.5 * len(panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 0.6 * len(board.methods) + 2.2), squeeze=False)
    for ax, (ds, ipc) in zip(axes[0], panels):
        grid = np.full((len(board.methods), len(s.eval_models)), np.nan)
        for i, m in enumerate(board.methods):
            for j, model in enumerate(s.eval_models):
                e = board.acc.get((ds, m, ipc, model))
                if e is not None and e.complete:
                    grid[i, j] = e.mean
        finite = np.isfinite(grid).any()
        im = ax.imshow(
            np.ma.masked_invalid(grid),
            cmap="viridis",
            aspect="auto",
            vmin=np.nanmin(grid) if finite else 0,
            vmax=np.nanmax(grid) if finite else 100,
        )
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                missing = np.isnan(grid[i, j])
                ax.text(
                    j,
                    i,
                    "missing" if missing else f"{grid[i, j]:.1f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="w" if missing or grid[i, j] < np.nanmean(grid) else "k",
                )
        ax.set_xticks(range(len(s.eval_models)), s.eval_models, rotation=30)
        ax.set_yticks(range(len(board.methods)), board.methods)
        ax.set_title(f"{ds}, IPC {ipc} (distilled with {s.distill_model})", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.text(0.01, 0.005, caption, fontsize=6, color="#555")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return figure_png(fig, caption)


def figure_png(fig: Any, caption: str, software: str = "dd-bench leaderboard") -> bytes:
    """The figure as PNG bytes (its caption in the PNG's metadata), and the figure closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Description": caption, "Software": software})
    plt.close(fig)
    return buf.getvalue()
