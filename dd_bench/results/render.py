"""A board as Markdown (the leaderboard's README.md) and as one self-contained HTML page.

Both show the same tables (``tables.tables``), provenance and notes. Markdown is written here
line by line, since its exact text is committed (``leaderboards/*/README.md``) and diffs of it
must show only changed figures. HTML comes from the Jinja2 templates shipped in
``dd_bench/results/templates/`` with autoescaping on: a method, suite or note can hold any
text and it still cannot break the page. The report (``results.report``) renders its page
from the same templates through :func:`render_page`.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from markupsafe import Markup, escape

from .. import tracking
from .board import Board
from .notes import how
from .tables import best_cells, markdown_table, tables

TEMPLATES = "templates"
"""The folder of this package that holds the page templates (package data)."""


def png_uri(data: bytes) -> str:
    """A PNG as a data URI, so the page needs no file beside it."""
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


def inline_html(text: str) -> Markup:
    """Markdown's `code` and **bold** as HTML, everything else escaped."""
    out = str(escape(text))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return Markup(re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out))


def bullets(text: str) -> list[str]:
    """The items of a Markdown list of ``- `` items (continuation lines indented), each on one line."""
    items: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(line[2:].strip())
        elif line.strip() and items:
            items[-1] += " " + line.strip()
    return items


@functools.cache
def environment() -> jinja2.Environment:
    """The templates' environment: autoescaped, with the filters ``inline`` and ``png_uri`` and the
    global ``best_cells``; undefined names are errors, not blanks."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["inline"] = inline_html
    env.filters["png_uri"] = png_uri
    env.globals["best_cells"] = best_cells
    return env


def render_page(template: str, **context: Any) -> str:
    """One of the shipped page templates (``leaderboard.html``, ``report.html``) filled in."""
    return environment().get_template(template).render(**context)


def template_text(name: str) -> str:
    """The source of a shipped template file (``page.css``, ``sort.js``...), as it is."""
    env = environment()
    assert env.loader is not None
    return env.loader.get_source(env, name)[0]


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Markup:
    """A sortable table with each column's best entry marked (``best_cells``), as the pages show it."""
    return Markup(environment().get_template("macros.html").module.table(header, rows))


def grid_name(ds: str, m: str, ipc: str) -> str:
    """Where a row's image grid is written, relative to the leaderboard's folder."""
    return f"grids/{ds}-{m}-ipc{ipc}.png"


def grid_rows(
    board: Board, grids: Mapping[tuple[str, str, str], bytes]
) -> list[tuple[str, str, list[tuple[str, str] | None]]]:
    """(dataset, method, [(ipc, grid file) or None per IPC column]) for every row with a grid."""
    out = []
    for ds in board.suite.datasets:
        for m in board.methods:
            ipcs = ["all"] if board.roles[m] == "full" else board.ipcs
            cells = [(ipc, grid_name(ds, m, ipc)) if (ds, m, ipc) in grids else None for ipc in ipcs]
            if any(cells):
                out.append((ds, m, cells + [None] * (len(board.ipcs) - len(cells))))
    return out


def render_markdown(
    board: Board,
    prov: Mapping[str, str],
    images: Sequence[str],
    grids: Mapping[tuple[str, str, str], bytes] | None = None,
) -> str:
    """The leaderboard's README.md: provenance, every table, the plots and grids (linked), the notes,
    and the cells that stopped early or failed."""
    s = board.suite
    parts = [f"# Leaderboard: {s.name}", ""]
    if s.description:
        parts += [s.description, ""]
    parts += ["## How this was made", ""]
    parts += [f"- **{k}**: `{v}`" if k == "command" else f"- **{k}**: {v}" for k, v in prov.items()] + [""]
    for title, note, header, rows in tables(board):
        parts += [f"## {title}", "", note, "", markdown_table(header, rows), ""]
    parts += ["## Plots", ""] + [f"![{img}]({img})" for img in images] + [""]
    rows = grid_rows(board, grids or {})
    if rows:
        parts += [
            "## Distilled images",
            "",
            "The set of each row's lowest distillation seed (the run's `synthetic/grid.png`).",
            "",
        ]
        parts += [
            markdown_table(
                ["dataset", "method"] + [f"IPC {ipc}" for ipc in board.ipcs],
                [
                    [ds, board.method_label(m)] + [f"![{c[1]}]({c[1]})" if c else "" for c in cells]
                    for ds, m, cells in rows
                ],
            ),
            "",
        ]
    parts += ["## How the numbers are made", "", how(board), ""]
    stopped = [r for r in board.records if r.tags.get("stopped_early")]
    if stopped:
        parts += ["## Cells stopped early (a bad matching loss; the last good set was kept)", ""]
        parts += [f"- {r.method}/{r.dataset}/ipc{r.ipc}/seed{r.seed}: {r.tags['stopped_early']}" for r in stopped]
        parts += [""]
    failed = [r for r in board.records if r.tags.get("status") == tracking.FAILED]
    if failed:
        parts += ["## Failed cells", ""]
        parts += [f"- {r.method}/{r.dataset}/ipc{r.ipc}/seed{r.seed}: {r.tags.get('error', '')}" for r in failed] + [""]
    return "\n".join(parts)


def render_html(
    board: Board,
    prov: Mapping[str, str],
    images: Mapping[str, bytes],
    grids: Mapping[tuple[str, str, str], bytes] | None = None,
) -> str:
    """One self-contained page: every image inline, the sorting script inline, no external URL."""
    grids = grids or {}
    rows = [
        (ds, board.method_label(m), [(c[1], grids[(ds, m, c[0])]) if c else None for c in cells])
        for ds, m, cells in grid_rows(board, grids)
    ]
    return render_page(
        "leaderboard.html",
        suite=board.suite,
        provenance=list(prov.items()),
        tables=tables(board),
        images=list(images.items()),
        ipcs=board.ipcs,
        grid_rows=rows,
        notes=bullets(how(board)),
    )
