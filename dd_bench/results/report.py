"""``dd-bench report``: how well given sets transfer across architectures, beside the references.

The sets become the rows of a small suite (the ``dd-bench`` import format: one cell per set),
with the random subset and the whole training set of the same dataset and IPC as its reference
rows, and the runner evaluates them: every cell is an MLflow run exactly as under ``dd-bench
run``, so a finished cell is read back rather than rerun, and an experiment (``--experiment``)
whose suite ran the references under the same protocol supplies them. The report's files are
logged as the artifacts of one more run (``ddb.kind`` = ``report``) in the same experiment.

Entries are mean ± sample std over the evaluation networks (``n`` = eval seeds) of one set; the
random subset is the one of distillation seed 0. Per-class accuracies come from the evaluation
runs' ``per_class.json`` (runs from before it existed show none).

The report shares the leaderboard's pieces (provenance, the Markdown table, the page template
and its sortable tables) but not its board: its entries are one set's evaluation networks, not
distillation seeds.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import re
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import tracking
from ..errors import ConfigError
from ..evaluate import EvalConfig
from ..synthetic import atomic_write_bytes, atomic_write_text
from ..tracked_cell import PER_CLASS_ARTIFACT
from .notes import RECIPE_TEXT
from .plots import figure_png
from .provenance import from_cwd, numerics, portable_uri
from .render import render_page
from .tables import fmt, markdown_table

REFERENCES = ("random", "full")
PER_CLASS_SHOWN = 100
"""Datasets with more classes list only each set's weakest classes in the page (all are in per_class.csv)."""
WEAKEST = 20


@dataclass
class Row:
    """One row of a report: a set, the random subset or the whole training set, on one dataset and IPC."""

    label: str
    role: str
    """``set``, ``random`` or ``full``."""
    dataset: str
    ipc: int
    run_id: str | None = None
    accs: dict[str, list[float]] = field(default_factory=dict)
    """Eval architecture -> test accuracy (%) of each evaluation network."""
    classes: dict[str, list[list[float | None]]] = field(default_factory=dict)
    """Eval architecture -> per evaluation network, each class's test accuracy (%)."""
    grid: bytes | None = None
    source: dict[str, Any] | None = None
    error: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    """The cell run's ``ddb.`` tags (device, versions, numerics)."""

    def mean(self, model: str) -> float:
        return statistics.fmean(self.accs[model]) if self.accs.get(model) else math.nan

    def text(self, model: str) -> str:
        if self.error:
            return "failed"
        vals = self.accs.get(model)
        if not vals:
            return "missing"
        sd = f"{statistics.stdev(vals):.2f}" if len(vals) > 1 else "–"
        return f"{statistics.fmean(vals):.2f} ± {sd} (n={len(vals)})"

    def class_means(self, model: str) -> list[float]:
        """Each class's accuracy averaged over the evaluation networks (nan where none measured it)."""
        per_seed = self.classes.get(model) or []
        if not per_seed:
            return []
        out = []
        for values in zip(*per_seed):
            got = [v for v in values if v is not None]
            out.append(statistics.fmean(got) if got else math.nan)
        return out


@dataclass
class Report:
    rows: list[Row]
    models: list[str]
    classes: dict[str, tuple[str, ...]]
    """Dataset -> class names in label order."""
    config: EvalConfig
    full_epochs: int
    provenance: dict[str, str]
    reported: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """Row label -> the figures the paper of the set's method reports (``ReportedResult``)."""

    def groups(self) -> list[tuple[str, int, list[Row]]]:
        keys = sorted({(r.dataset, r.ipc) for r in self.rows})
        return [(ds, ipc, [r for r in self.rows if (r.dataset, r.ipc) == (ds, ipc)]) for ds, ipc in keys]


# ---------------------------------------------------------------------------- the suite


def row_name(method: str, taken: set[str]) -> str:
    """A suite row name for a set of ``method``: its name, made unique (never a reference's)."""
    base = re.sub(r"[^a-z0-9_.\-]+", "-", method.lower()).strip("-.") or "set"
    base = base if base[0].isalnum() else f"set-{base}"
    name, k = base, 2
    while name in taken or name in REFERENCES:
        name, k = f"{base}-{k}", k + 1
    return name


def suite_doc(
    dataset: str,
    sets: Sequence[tuple[str, Path, int]],
    models: Sequence[str],
    eval_seeds: Sequence[int],
    eval_overrides: Mapping[str, Any],
    references: Sequence[str],
    full_epochs: int | None,
    experiment: str,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """The suite of one dataset's sets: ``sets`` are (row name, path, IPC)."""
    methods: dict[str, Any] = {}
    for name, path, ipc in sets:
        entry = methods.setdefault(name, {"import": {"format": "dd-bench", "path": {}}})
        entry["import"]["path"][ipc] = str(path.resolve())
    ipcs = sorted({ipc for _, _, ipc in sets})
    if "random" in references:
        methods["random"] = {"ipcs": ipcs}
    if "full" in references:
        methods["full"] = {"eval": {"epochs": full_epochs}} if full_epochs else {}
    return {
        "name": experiment,
        "version": 1,
        "description": f"dd-bench report on {dataset}",
        "datasets": [dataset],
        "ipcs": ipcs,
        "methods": methods,
        "distill_model": models[0],
        "eval_models": list(models),
        "seeds": [0],
        "eval_seeds": list(eval_seeds),
        "eval": dict(eval_overrides),
        "data": dict(data),
        "references": {
            "random": "random" if "random" in references else None,
            "full": "full" if "full" in references else None,
        },
    }


def make(
    set_paths: Sequence[Path],
    models: Sequence[str],
    eval_seeds: Sequence[int],
    eval_overrides: Mapping[str, Any],
    out: Path,
    *,
    references: Sequence[str] = REFERENCES,
    full_epochs: int | None = None,
    experiment: str = "report",
    tracking_uri: str | None = None,
    device: str = "auto",
    deterministic: bool = False,
    cache_dir: str | None = None,
    data: Mapping[str, Any] | None = None,
    command: str = "dd-bench report",
    quiet: bool = False,
    registry: Any = None,
) -> tuple[Report, list[Path]]:
    """Evaluate the sets and their references (tracked), then write and log the report; bad input fails before
    any work."""
    from ..plugins import Registry
    from ..runner import run_suite
    from ..suite import eval_config, parse, validate
    from ..synthetic import SyntheticSet

    registry = registry if registry is not None else Registry()
    bad = sorted(set(references) - set(REFERENCES))
    if bad:
        raise ConfigError(f"references {', '.join(bad)} are not allowed: use random, full, both or none")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: name a folder for the report")
    if not set_paths:
        raise ConfigError("name at least one set to report on")
    by_dataset: dict[str, list[tuple[str, Path, int]]] = {}
    labels: dict[tuple[str, str, int], str] = {}
    reported: dict[str, tuple[Any, ...]] = {}
    for path in set_paths:
        syn = SyntheticSet.load(path)  # one clear line for anything that is not a set
        name = row_name(syn.method, {n for n, _, i in by_dataset.get(syn.dataset, []) if i == syn.ipc})
        by_dataset.setdefault(syn.dataset, []).append((name, Path(path), syn.ipc))
        label = f"{syn.method} ({Path(path).name})"
        labels[(syn.dataset, name, syn.ipc)] = label if label not in labels.values() else f"{syn.method} ({path})"
        if syn.method in registry.distillers:
            reported[labels[(syn.dataset, name, syn.ipc)]] = registry.distiller(syn.method).reported
    suites = []
    for ds, sets in by_dataset.items():
        doc = suite_doc(ds, sets, models, eval_seeds, eval_overrides, references, full_epochs, experiment, data or {})
        suite, problems = parse(doc)
        if problems:
            raise ConfigError("; ".join(problems))
        suites.append(validate(suite, registry, check_data=False))  # every name and value, before any data loads
    uri = tracking.normalise_uri(tracking_uri)
    rows: list[Row] = []
    classes: dict[str, tuple[str, ...]] = {}
    for suite in suites:
        run = run_suite(
            suite,
            registry=registry,
            tracking_uri=uri,
            device=device,
            deterministic=deterministic,
            cache_dir=cache_dir,
            quiet=quiet,
        )
        rows += _rows(run, uri, labels, classes)
    config = eval_config(suites[0].eval)
    report = Report(rows, list(models), classes, config, full_epochs or config.epochs, {}, reported)
    report.provenance = _provenance(report, command, uri)
    files = write(report, out)
    _log_report(report, files, uri, experiment)
    return report, files


def _rows(
    run: Any, uri: str, labels: Mapping[tuple[str, str, int], str], classes: dict[str, tuple[str, ...]]
) -> list[Row]:
    """The report rows of a finished suite run, read back from MLflow; ``classes`` gets each
    dataset's class names as the evaluation runs recorded them."""
    from ..tracked_cell import eval_runs_done

    c = tracking.client(uri)
    exp = tracking.experiment_id(c, run.suite.name, uri)
    rows = []
    for cell, result in zip(run.cells, run.results):
        ipcs = [cell.ipc] if cell.ipc is not None else sorted(run.suite.ipcs)
        for ipc in ipcs:
            label = labels.get((cell.dataset, cell.method, ipc)) or (
                "random subset (reference, seed 0)" if cell.role == "random" else "whole training set (reference)"
            )
            row = Row(
                label,
                "set" if cell.source else cell.role,
                cell.dataset,
                ipc,
                result.run_id,
                error=result.error,
                source=dict(cell.source) if cell.source else None,
            )
            if result.run_id is not None:
                row.tags = tracking.tags_of(c.get_run(result.run_id))
                for model, ev in eval_runs_done(c, exp, result.run_id).items():
                    if tracking.tags_of(ev).get("status") != tracking.DONE:
                        continue
                    m = ev.data.metrics
                    row.accs[model] = [m[f"test_acc_s{s}"] for s in cell.eval_seeds if f"test_acc_s{s}" in m]
                    per_class = _artifact(c, ev.info.run_id, PER_CLASS_ARTIFACT)
                    if per_class is not None:
                        per_class = json.loads(per_class)
                        row.classes[model] = per_class["test_acc"]
                        classes.setdefault(cell.dataset, tuple(per_class["classes"]))
                if cell.role != "full":
                    row.grid = _artifact(c, result.run_id, "synthetic/grid.png", text=False)
            rows.append(row)
    order = {"set": 0, "random": 1, "full": 2}
    return sorted(rows, key=lambda r: (r.dataset, r.ipc, order[r.role]))


def _artifact(c: Any, run_id: str, path: str, text: bool = True) -> Any:
    """An artifact's contents, or None when the run has none by that name."""
    with tempfile.TemporaryDirectory(prefix="ddb-report-") as tmp:
        try:
            local = Path(c.download_artifacts(run_id, path, tmp))
        except Exception:  # missing on every artifact store reads as an exception of its own kind
            return None
        return local.read_text() if text else local.read_bytes()


def _provenance(report: Report, command: str, uri: str) -> dict[str, str]:
    import platform

    import torch

    from .. import __version__

    def unique(key: str) -> str:
        return ", ".join(sorted({r.tags[key] for r in report.rows if r.tags.get(key)})) or "unknown"

    sets = "; ".join(
        f"{from_cwd(r.source['path'])} (IPC {r.ipc}, SHA-256 {r.source['sha256'][:16]}…)"
        for r in report.rows
        if r.role == "set" and r.source
    )
    return {
        "command": command,
        "tracking": portable_uri(uri),
        "sets": sets,
        "device": unique("device"),
        "numerics": numerics(report.rows),
        "versions (runs)": f"dd-bench {unique('dd_bench')}; torch {unique('torch')}; python {unique('python')}",
        "git SHA (runs)": unique("git_sha"),
        "versions (this page)": f"dd-bench {__version__}; torch {torch.__version__};"
        f" python {platform.python_version()}",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ---------------------------------------------------------------------------- tables


def protocol_text(config: EvalConfig, full_epochs: int) -> list[tuple[str, str]]:
    """The label protocol and the evaluation recipe, as (what, value) lines."""
    augment = (
        f"DSA ({config.dsa_strategy})" if config.dsa else "random-resized crop + flip" if config.crop_flip else "none"
    )
    labels = {
        "hard": "hard: class indices",
        "set": "set: the labels stored in each set (hard or soft)",
        "teacher": f"teacher: the teacher's outputs on every augmented batch, KL at T={config.temperature:g}",
    }[config.labels]
    lr = f"{config.lr:g}" if config.lr is not None else "each set's learned lr, else 0.01"
    training = (
        f"{config.optimizer}, lr {lr}, weight decay {config.weight_decay:g}, {config.schedule} schedule,"
        f" batch {config.batch_size or 'by IPC (RDED rule)'}, {config.epochs} epochs (whole training set:"
        f" {full_epochs})"
    )
    return [
        ("label protocol", labels),
        ("evaluation recipe", f"{config.recipe} ({RECIPE_TEXT[config.recipe]})"),
        ("training", training),
        ("augmentation", augment),
        (
            "test images",
            "the dataset's own preprocessing" if config.test_crop_pct == 1 else f"centre crop {config.test_crop_pct:g}",
        ),
    ]


def accuracy_table(report: Report, rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """Each row's accuracy on every architecture, its mean over them and their spread."""
    header = ["set"] + report.models + ["mean over architectures", "spread (max - min)"]
    out = []
    for r in rows:
        means = [r.mean(m) for m in report.models]
        done = all(not math.isnan(v) for v in means)
        summary = [f"{statistics.fmean(means):.2f}", f"{max(means) - min(means):.2f}"] if done else ["–", "–"]
        out.append([r.label] + [r.text(m) for m in report.models] + summary)
    return header, out


def gain_table(report: Report, rows: Sequence[Row]) -> tuple[list[str], list[list[str]]] | None:
    """Each set's mean accuracy minus the random subset's, and its share of the way to the whole set's."""
    rnd = next((r for r in rows if r.role == "random"), None)
    full = next((r for r in rows if r.role == "full"), None)
    if rnd is None:
        return None
    header = ["set"] + [f"{m} − random" for m in report.models]
    if full is not None:
        header += [f"{m} gap closed %" for m in report.models]
    out = []
    for r in rows:
        if r.role != "set":
            continue
        row = [r.label] + [fmt(r.mean(m) - rnd.mean(m)) for m in report.models]
        if full is not None:
            row += [
                fmt(
                    100 * (r.mean(m) - rnd.mean(m)) / (full.mean(m) - rnd.mean(m))
                    if full.mean(m) != rnd.mean(m)
                    else math.nan
                )
                for m in report.models
            ]
        out.append(row)
    return header, out


def reported_table(report: Report, rows: Sequence[Row]) -> tuple[list[str], list[list[str]]] | None:
    """The figures the papers of the sets' methods report for this dataset, IPC, architecture and protocol."""
    out = []
    for r in rows:
        for paper in report.reported.get(r.label, ()):
            setting = (paper.dataset, paper.ipc, paper.labels) == (r.dataset, r.ipc, report.config.labels)
            if setting and paper.model in report.models:
                diff = r.mean(paper.model) - paper.accuracy
                out.append(
                    [
                        f"{r.label} · {paper.model}",
                        paper.text(),
                        r.text(paper.model),
                        fmt(diff),
                        paper.where + (f" ({paper.note})" if paper.note else ""),
                    ]
                )
    return (["setting", "reported", "measured", "measured − reported", "where"], out) if out else None


def class_table(report: Report, rows: Sequence[Row], model: str) -> tuple[list[str], list[list[str]], str] | None:
    """Per-class accuracy of every row on ``model``: all classes, or each set's weakest on large datasets."""
    measured = [r for r in rows if r.class_means(model)]
    if not measured:
        return None
    names = report.classes.get(rows[0].dataset) or ()
    means = {r.label: r.class_means(model) for r in measured}
    k = len(next(iter(means.values())))
    shown = list(range(k))
    note = f"Test accuracy (%) of each class on {model}, mean over the evaluation networks."
    if k > PER_CLASS_SHOWN:
        weakest: set[int] = set()
        for r in measured:
            if r.role == "set":
                vals = means[r.label]
                weakest |= set(sorted(range(k), key=lambda c: (math.isnan(vals[c]), vals[c]))[:WEAKEST])
        shown = sorted(weakest)
        note += f" {k} classes: only each set's {WEAKEST} weakest are listed (every class is in per_class.csv)."
    header = ["class"] + [r.label for r in measured]
    body = [
        [f"{c} {names[c]}" if c < len(names) and names[c] != str(c) else str(c)]
        + [fmt(means[r.label][c]) for r in measured]
        for c in shown
    ]
    return header, body, note


ACCURACY_NOTE = (
    "mean ± sample std over the evaluation networks (n = evaluation seeds); the references are the"
    " random subset of this IPC (distillation seed 0) and the whole training set, under the same"
    " protocol."
)
GAIN_NOTE = "Difference of the means in points; gap closed = (set − random) / (whole set − random)."
REPORTED_NOTE = (
    "Each figure the paper of a set's method reports for this dataset, IPC, architecture and label"
    " protocol; measured = this report's networks on the set. The paper's other settings (evaluation"
    " epochs, ZCA, resolution) can differ."
)


def sections(report: Report) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, note, header, rows) of every table, shared by Markdown and HTML."""
    out = []
    for ds, ipc, rows in report.groups():
        header, body = accuracy_table(report, rows)
        out.append((f"{ds}, IPC {ipc}: test accuracy (%) by evaluation architecture", ACCURACY_NOTE, header, body))
        gains = gain_table(report, rows)
        if gains:
            out.append((f"{ds}, IPC {ipc}: against the references", GAIN_NOTE, *gains))
        paper = reported_table(report, rows)
        if paper:
            out.append((f"{ds}, IPC {ipc}: reported in the papers and measured here", REPORTED_NOTE, *paper))
        for model in report.models:
            table = class_table(report, rows, model)
            if table:
                out.append((f"{ds}, IPC {ipc}: per-class accuracy on {model}", table[2], table[0], table[1]))
    return out


# ---------------------------------------------------------------------------- files


def plot(report: Report, caption: str) -> bytes:
    """Per group: accuracy by architecture (bars, std as error bars) and per-class accuracy on the first
    architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = report.groups()
    fig, axes = plt.subplots(len(groups), 2, figsize=(13, 4.2 * len(groups)), squeeze=False)
    for (ds, ipc, rows), (bar_ax, class_ax) in zip(groups, axes):
        width = 0.8 / max(1, len(rows))
        for i, r in enumerate(rows):
            xs = np.arange(len(report.models)) + i * width
            ys = [r.mean(m) for m in report.models]
            err = [statistics.stdev(r.accs[m]) if len(r.accs.get(m, [])) > 1 else 0 for m in report.models]
            bar_ax.bar(xs, ys, width, yerr=err, capsize=3, label=r.label, hatch="//" if r.role != "set" else None)
        bar_ax.set_xticks(np.arange(len(report.models)) + width * (len(rows) - 1) / 2, report.models)
        bar_ax.set_ylabel("test accuracy %")
        bar_ax.set_title(f"{ds}, IPC {ipc}: by evaluation architecture")
        bar_ax.legend(fontsize=7)
        bar_ax.grid(axis="y", alpha=0.3)
        model = report.models[0]
        for r in rows:
            vals = r.class_means(model)
            if vals:
                class_ax.plot(
                    range(len(vals)), vals, marker="o" if len(vals) <= 20 else None, ms=3, lw=1, label=r.label
                )
        names = report.classes.get(ds) or ()
        if 0 < len(names) <= 20:
            class_ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        class_ax.set_xlabel("class")
        class_ax.set_ylabel(f"test accuracy % ({model})")
        class_ax.set_title(f"{ds}, IPC {ipc}: per class")
        class_ax.grid(alpha=0.3)
        if class_ax.get_legend_handles_labels()[0]:
            class_ax.legend(fontsize=7)
    fig.text(0.01, 0.005, caption, fontsize=6, color="#555")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return figure_png(fig, caption, "dd-bench report")


def grid_file(r: Row) -> str:
    return f"grids/{r.dataset}-ipc{r.ipc}-{re.sub(r'[^A-Za-z0-9_-]+', '_', r.label).strip('_')}.png"


def render_markdown(report: Report) -> str:
    parts = ["# Cross-architecture report", "", "## How this was made", ""]
    parts += [f"- **{k}**: `{v}`" if k == "command" else f"- **{k}**: {v}" for k, v in report.provenance.items()]
    parts += [f"- **{k}**: {v}" for k, v in protocol_text(report.config, report.full_epochs)] + [""]
    for title, note, header, rows in sections(report):
        parts += [f"## {title}", "", note, "", markdown_table(header, rows), ""]
    parts += ["## Figure", "", "![report.png](report.png)", ""]
    grids = [r for r in report.rows if r.grid]
    if grids:
        parts += ["## Images", ""]
        parts += [f"**{r.dataset}, IPC {r.ipc}, {r.label}**\n\n![{r.label}]({grid_file(r)})\n" for r in grids]
    failed = [r for r in report.rows if r.error]
    if failed:
        parts += ["## Failed", ""] + [f"- {r.label} ({r.dataset}, IPC {r.ipc}): {r.error}" for r in failed] + [""]
    return "\n".join(parts)


def render_html(report: Report, figure: bytes) -> str:
    """One self-contained page: images and the sorting script inline, nothing fetched."""
    return render_page(
        "report.html",
        provenance=list(report.provenance.items()) + protocol_text(report.config, report.full_epochs),
        sections=sections(report),
        figure=figure,
        grids=[r for r in report.rows if r.grid],
    )


def per_class_csv(report: Report) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "ipc", "row", "role", "eval_model", "class", "class_name", "mean", "n"])
    for r in report.rows:
        names = report.classes.get(r.dataset) or ()
        for model, per_seed in r.classes.items():
            for c, values in enumerate(zip(*per_seed)):
                got = [v for v in values if v is not None]
                w.writerow(
                    [
                        r.dataset,
                        r.ipc,
                        r.label,
                        r.role,
                        model,
                        c,
                        names[c] if c < len(names) else "",
                        round(statistics.fmean(got), 4) if got else "",
                        len(got),
                    ]
                )
    return buf.getvalue()


def to_json(report: Report) -> dict[str, Any]:
    """report.json: provenance, protocol and every row's accuracies (per network and per class)."""
    return {
        "provenance": report.provenance,
        "eval": asdict(report.config),
        "full_epochs": report.full_epochs,
        "rows": [
            {
                "label": r.label,
                "role": r.role,
                "dataset": r.dataset,
                "ipc": r.ipc,
                "run_id": r.run_id,
                "test_acc": r.accs,
                "test_acc_per_class": r.classes,
                "source": r.source,
                "error": r.error,
            }
            for r in report.rows
        ],
    }


def write(report: Report, out: Path) -> list[Path]:
    """report.md, report.html, report.png, report.json, per_class.csv and grids/, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    caption = f"dd-bench report · {report.provenance['date']} · {report.provenance['command']}"
    figure = plot(report, caption)
    files: dict[str, bytes | str] = {"report.png": figure}
    for r in report.rows:
        if r.grid:
            files[grid_file(r)] = r.grid
    files["per_class.csv"] = per_class_csv(report)
    files["report.json"] = json.dumps(to_json(report), indent=2, default=lambda v: None)
    files["report.md"] = render_markdown(report)
    files["report.html"] = render_html(report, figure)
    written = []
    for name, data in files.items():
        if isinstance(data, str):
            atomic_write_text(out / name, data)
        else:
            atomic_write_bytes(out / name, data)
        written.append(out / name)
    return written


def _log_report(report: Report, files: Sequence[Path], uri: str, experiment: str) -> None:
    """The report as a run of its own: params (sets, protocol), a metric per row and architecture, the files."""
    c = tracking.client(uri)
    exp = tracking.experiment_id(c, experiment, uri)
    run_id = c.create_run(exp, run_name="report", tags={f"{tracking.TAG}kind": "report"}).info.run_id
    sets = {r.label: r.source for r in report.rows if r.role == "set" and r.source}
    params = {
        "models": ",".join(report.models),
        "eval": asdict(report.config),
        "full_epochs": report.full_epochs,
        "sets": {f"set{i}": f"{from_cwd(s['path'])} sha256={s['sha256']}" for i, s in enumerate(sets.values())},
    }
    tracking.log_params(c, run_id, tracking.flat_params("", params))
    metrics = tracking.MetricBuffer(c, run_id)
    for k, r in enumerate(report.rows):
        for model in report.models:
            metrics.log(f"acc.row{k}.{model}.mean", r.mean(model))
    metrics.flush()
    rows = "; ".join(f"row{k}={r.label} ({r.dataset}, IPC {r.ipc})" for k, r in enumerate(report.rows))
    tracking.set_tags(c, run_id, {f"{tracking.TAG}rows": rows})
    base = Path(files[0]).parent if files else None
    for f in files:
        rel = Path(f).relative_to(base) if base else Path(f).name
        c.log_artifact(run_id, str(f), "report" + (f"/{rel.parent}" if str(rel.parent) != "." else ""))
    c.set_terminated(run_id, "FINISHED")
