"""The report as one self-contained HTML page (chart inlined) for MLflow's artifact viewer.

MLflow shows an `.html` artifact in a frame of its own; a page that links other files would
need them served beside it, so the chart is embedded as a data: URI and the styles inline.
"""

from __future__ import annotations

import base64
import html
import re

import pandas as pd

from fefm_lab.report.document import Report, Section

# MLflow's artifact pane is narrow (about 550 CSS px beside its file tree and assistant panel at
# a 1400 px window): small headings, the glance table first, wide tables scroll in their own box.
STYLE = """
body { font-family: system-ui, sans-serif; margin: 0.75em; color: #222; font-size: 14px; }
h1 { font-size: 1.2em; margin: 0 0 0.5em; } h2 { font-size: 1.05em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.4em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.worse { color: #c0392b; font-weight: 600; } td.better { color: #1e8449; font-weight: 600; }
td.equivalent { color: #2471a3; font-weight: 600; }
td.wrap { overflow-wrap: anywhere; min-width: 12em; }
.wide { overflow-x: auto; max-width: 100%; }
.warning { border-left: 4px solid #c0392b; background: #fdf2f0; padding: 0.5em 1em; }
img { max-width: 100%; }
"""


def inline_markdown(text: str) -> str:
    """Escape `text`, then render the inline Markdown the report uses: `code` and **bold**."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def markdown_blocks(text: str) -> str:
    """Paragraphs and `- ` lists of the report's own Markdown text as HTML."""
    parts: list[str] = []
    items: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(f"<li>{inline_markdown(line[2:])}</li>")
            continue
        if items:
            parts.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line.strip():
            parts.append(f"<p>{inline_markdown(line)}</p>")
    if items:
        parts.append("<ul>" + "".join(items) + "</ul>")
    return "\n".join(parts)


def html_table(frame: pd.DataFrame, table_id: str, wrap: tuple[str, ...] = ()) -> str:
    """A plain HTML table; numbers right-aligned, verdict cells classed by their value, the
    `wrap` columns' long values broken anywhere (a long override is one word)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            text = "" if isinstance(value, float) and pd.isna(value) else value
            if isinstance(text, float):
                text = f"{text:.5f}"
            classes = []
            if pd.api.types.is_number(value) or re.fullmatch(
                r"[-+]?[0-9.]+( ± [0-9.]+)?", str(text)
            ):
                classes.append("num")
            if "verdict" in str(column) and text in ("worse", "better", "equivalent"):
                classes.append(str(text))
            if column in wrap:
                classes.append("wrap")
            attribute = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attribute}>{html.escape(str(text))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def html_section(text: str, frame: pd.DataFrame, table_id: str) -> str:
    """A paragraph of the report's Markdown, then a table."""
    return f'<p>{inline_markdown(text)}</p>\n<div class="wide">{html_table(frame, table_id)}</div>'


def section_html(section: Section | None) -> str:
    """A report section: its title as a heading, its paragraph, table and paragraph after."""
    if section is None:
        return ""
    table = html_table(section.table, section.table_id, section.wrap)
    after = f"<p>{inline_markdown(section.after)}</p>" if section.after else ""
    return (
        f"<h2>{html.escape(section.title)}</h2><p>{inline_markdown(section.text)}</p>\n"
        f'<div class="wide">{table}</div>{after}'
    )


def _png(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def report_html(
    report: Report,
    readable: pd.DataFrame,
    explanation: str,
    gap_explanation: str,
    chart_png: bytes,
    *,
    curves_png: bytes | None = None,
    budget: str = "",
    glance: pd.DataFrame | None = None,
    published_text: str = "",
) -> str:
    """The whole page: title, the glance table, warnings, how to read, table, the budget's
    table, tuned settings, training and teacher notes, the adaptive-seeds account, chart,
    learning curves, seeds needed, the open benchmark's numbers beside ours."""
    title = html.escape(f"Ablation report: {report.title}")
    warnings = ""
    if report.warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings)
        warnings = (
            '<div class="warning"><p><strong>Warning: these runs are not all comparable.'
            "</strong> Rerun the sweep so that every run uses the same code and data "
            f"(<code>force=true</code> reruns finished configurations).</p><ul>{items}</ul></div>"
        )
    gaps = ""
    if not report.gap_seeds.empty:
        gaps = (
            f"<h2>Seeds needed for the paper's gaps</h2><p>{inline_markdown(gap_explanation)}</p>"
            + f'<div class="wide">{html_table(report.gap_seeds, "seeds-needed")}</div>'
        )
    published = ""
    if not report.published.empty:
        published = (
            f"<h2>Beside the open benchmark</h2><p>{inline_markdown(published_text)}</p>"
            + f'<div class="wide">{html_table(report.published, "published")}</div>'
        )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body>\n"
        f"<h1>{title}</h1>\n"
        + (html_table(glance, "glance") if glance is not None and not glance.empty else "")
        + f"\n{warnings}\n<p>{inline_markdown(explanation)}</p>\n"
        f'<div class="wide">{html_table(readable, "ablation-table")}</div>\n{budget}\n'
        f"{section_html(report.tuned)}\n"
        f"{markdown_blocks(report.training)}\n{markdown_blocks(report.teacher)}\n"
        f"{section_html(report.adaptive)}\n"
        + _png(chart_png, "test AUC per ablation with per-seed points and verdict intervals")
        + "\n"
        + (
            _png(
                curves_png, "validation AUC and log loss by epoch per ablation, mean with 95% band"
            )
            if curves_png
            else ""
        )
        + f"\n{gaps}\n{published}\n</body></html>\n"
    )
