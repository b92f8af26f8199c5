"""One self-contained `report.html`: inline CSS, figures as base64 PNG data URIs, audio as base64 WAV data
URIs, no external URL anywhere (it opens offline and as a CI artifact).

Sections: headline (a short table per test set that fits the page; every metric with its CI one click away),
voice conversion (only when the run has a VC test set: the paper's Table 6 layout, the sweep figure, the published
Table 6), figures (wide ones across the page), audio samples, failures (counts and every error message), paper
view, provenance (with the full metadata).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from html import escape
from pathlib import Path

import pandas as pd

from bench.results import Results
from reports import paper
from reports.audio import Clip, base_dirs, pick_clips
from reports.failures import (
    DEFECTS_NOTE,
    absent_notes,
    defect_table,
    error_rows,
    failure_table,
    failure_total,
    has_failures,
    testset_problems,
)
from reports.headline import SUMMARY_NOTE, headline_table, jsd_notes, summary_table
from reports.plots import Plot, build_plots
from reports.provenance import describe_testsets, metric_legend, provenance, report_title, report_warnings
from reports.tables import testset_groups
from reports.vc import VC_SWEEP, vc_notes, vc_systems, vc_table

CSS = """
:root { --fg: #1d232b; --muted: #5b6573; --line: #d9dee5; --band: #f5f7fa; --accent: #2456a6;
        --warn-bg: #fff4e0; --warn: #a35a00; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.45;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", sans-serif; }
main { max-width: 1400px; margin: 0 auto; padding: 24px 28px 64px; }
header { border-bottom: 2px solid var(--accent); margin-bottom: 12px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; }
.sub, .muted, figcaption, .legend { color: var(--muted); font-size: 13px; }
nav { margin: 8px 0 16px; font-size: 14px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; white-space: nowrap; }
tr:nth-child(even) td { background: #fbfcfd; }
td { font-variant-numeric: tabular-nums; }
table.nums td { white-space: nowrap; }
table.notes td:last-child { white-space: normal; min-width: 180px; }
.warn { background: var(--warn-bg); border-left: 4px solid var(--warn); padding: 8px 12px; margin: 12px 0; }
.note { background: var(--band); border-left: 4px solid var(--muted); padding: 8px 12px; margin: 8px 0;
        font-size: 14px; }
.bad { color: var(--bad); font-weight: 600; }
.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(470px, 1fr)); gap: 18px; }
figure.wide { grid-column: 1 / -1; }
table.summary td.num { text-align: right; }
table.summary tr.group th { background: #e9eef5; text-align: left; font-size: 13px; }
details.full { margin: 10px 0; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
.clips { display: flex; flex-wrap: wrap; gap: 10px; }
.clip { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; font-size: 13px; }
.clip audio { display: block; width: 260px; margin-top: 4px; }
pre { background: var(--band); padding: 10px; overflow-x: auto; font-size: 12px; }
details summary { cursor: pointer; color: var(--accent); }
ul { margin: 6px 0; padding-left: 22px; }
"""

MAX_ERRORS = 1000
SECTIONS = (
    ("headline", "Headline"),
    ("figures", "Figures"),
    ("audio", "Audio"),
    ("failures", "Failures"),
    ("paper", "Paper view"),
    ("provenance", "Provenance"),
)
VC_SECTION = ("vc", "Voice conversion")  # after the headline, only when the run has a VC test set
_Group = tuple[str | None, list[str], pd.DataFrame]  # a test set, its systems and their summary table


def html_table(frame: pd.DataFrame, cls: str = "") -> str:
    """An escaped HTML table in a horizontally scrolling wrapper."""
    if frame.empty:
        return '<p class="muted">(none)</p>'
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    attr = f' class="{cls}"' if cls else ""
    return f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _list(lines: Sequence[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def _summary(results: Results) -> str:
    """The short headline: one table (one more wherever a test set's columns change: a voice conversion test set
    has its own), a sub-header row per test set, plain values (no CIs), numbers right-aligned and non-zero failures
    marked; it fits the page width without scrolling."""
    groups = testset_groups(results)
    if not groups:
        return '<p class="muted">(no systems)</p>'
    chunks: list[list[_Group]] = []
    for testset, systems in groups:
        frame = summary_table(results, systems)
        if chunks and list(chunks[-1][0][2].columns) == list(frame.columns):
            chunks[-1].append((testset, systems, frame))
        else:
            chunks.append([(testset, systems, frame)])
    return "".join(_summary_chunk(results, chunk, len(groups) > 1, i) for i, chunk in enumerate(chunks))


def _summary_chunk(results: Results, chunk: list[_Group], several: bool, index: int) -> str:
    """One summary table: the test sets of `chunk` (sharing their columns) under their sub-header rows."""
    described = describe_testsets(results)
    columns = list(chunk[0][2].columns)
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in columns)
    body = []
    for testset, systems, frame in chunk:
        if testset is not None or several:
            label = "Test set not recorded" if testset is None else f"Test set: {described.get(testset, testset)}"
            body.append(f'<tr class="group"><th colspan="{len(columns)}">{escape(label)}</th></tr>')
        for system, row in zip(systems, frame.itertuples(index=False), strict=True):
            cells = [f'<td title="{escape(system)}">{escape(str(row[0]))}</td>']
            for column, value in zip(columns[1:], row[1:], strict=True):
                cls = "num bad" if column == columns[-1] and has_failures(results, system) else "num"
                cells.append(f'<td class="{cls}">{escape(str(value))}</td>')
            body.append("<tr>" + "".join(cells) + "</tr>")
    anchor = "headline-table" if index == 0 else f"headline-table-{index + 1}"
    return (
        f'<div class="scroll" id="{anchor}"><table class="headline summary"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _headline(results: Results) -> str:
    """The short headline, then every metric with its 95 % CI and the legend one click away."""
    full = headline_table(results)
    return (
        _summary(results)
        + f'<p class="muted">{escape(SUMMARY_NOTE)}.</p>'
        + f'<details class="full" id="full-results"><summary>Full results: every metric with its 95 % CI '
        f"({len(full)} systems)</summary>"
        + html_table(full, "full nums")
        + _list([*metric_legend(results), *jsd_notes(results)], "legend")
        + "</details>"
    )


def _vc(results: Results, plots: Sequence[Plot]) -> str:
    """The voice conversion section: a table per VC test set with its notes, the sweep figure (`plots`' vc_sweep),
    and the paper's Table 6 as published."""
    groups = vc_systems(results)
    described = describe_testsets(results)
    parts = []
    for testset, systems in groups:
        if testset is not None or len(groups) > 1:
            label = "Test set not recorded" if testset is None else described.get(testset, testset)
            parts.append(f"<h3>{escape(label)}</h3>")
        parts.append(html_table(vc_table(results, systems), "nums"))
    parts.append(_list(vc_notes(results), "legend"))
    sweep = [p for p in plots if p.name == VC_SWEEP]
    if sweep:
        parts.append(_figures(sweep))
    caption = paper.load_paper().table6.get("caption", "Table 6").rstrip(".")
    parts.append(f"<details><summary>Published numbers ({escape(caption)})</summary>")
    parts.append(html_table(paper.published_table6()) + "</details>")
    return "".join(parts)


def _figures(plots: Sequence[Plot]) -> str:
    figures, notes = [], []
    for p in plots:
        if p.png is None:
            notes.append(f'<p class="note"><b>{escape(p.title)}</b>: {escape(p.note or "skipped")}</p>')
            continue
        src = "data:image/png;base64," + base64.b64encode(p.png).decode("ascii")
        caption = escape(p.title + (f" ({p.note})" if p.note else ""))
        wide = ' class="wide"' if p.wide else ""
        figures.append(
            f'<figure id="fig-{escape(p.name)}"{wide}><img src="{src}" alt="{escape(p.title)}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return f'<div class="figs">{"".join(figures)}</div>' + "".join(notes)


def _audio(clips: dict[str, list[Clip]], per_system: int) -> str:
    if per_system <= 0:
        return '<p class="note">Audio embedding turned off (audio_per_system=0).</p>'
    if not clips:
        return '<p class="note">No generated audio paths in the items table: no samples to play.</p>'
    parts = []
    for system, system_clips in clips.items():
        cells = []
        for c in system_clips:
            label = f"{escape(c.item_id)}, seed {escape(c.seed)}"
            if c.data_uri is None:
                cells.append(f'<div class="clip"><b>{label}</b><p class="note">{escape(c.problem or "")}</p></div>')
            else:
                cells.append(
                    f'<div class="clip"><b>{label}</b><audio controls preload="metadata" src="{c.data_uri}"'
                    f' title="{escape(c.audio_path)}"></audio></div>'
                )
        parts.append(f'<h3>{escape(system)}</h3><div class="clips">{"".join(cells)}</div>')
    return "".join(parts)


def _defects(results: Results) -> str:
    """The generation-defects table (flagged / scored samples per system), when the run measured any."""
    table = defect_table(results)
    if table.empty:
        return ""
    return f'<h3 id="defects">Generation defects</h3><p class="muted">{escape(DEFECTS_NOTE)}</p>' + html_table(table)


def _failures(results: Results) -> str:
    total = failure_total(results)
    cls = "bad" if total else ""
    out = [
        f'<p class="{cls}">{total} failed generation(s), score(s) and test-set entries in total.</p>',
        '<p class="muted">Failed / attempted, per system and stage.</p>',
        html_table(failure_table(results)),
        _defects(results),
    ]
    problems = testset_problems(results)
    if problems:
        out.append(f"<h3>Test-set problems ({len(problems)}: entries left out of the run)</h3>")
        out.append(_list(problems[:MAX_ERRORS]))
    absent = absent_notes(results)
    if absent:
        out.append("<h3>Absent numbers</h3>" + _list(absent))
    errors = error_rows(results)
    out.append("<h3>Errors</h3>" + (html_table(errors.head(MAX_ERRORS)) if not errors.empty else "<p>None.</p>"))
    if len(errors) > MAX_ERRORS:
        out.append(f'<p class="note">… and {len(errors) - MAX_ERRORS} more errors (see items.csv / groups.csv).</p>')
    return "".join(out)


def _paper(results: Results) -> str:
    view = paper.paper_view(results)
    t1, t3 = paper.published_tables()
    table = (
        html_table(paper.view_table(view), "nums notes")
        if not view.rows.empty
        else "<p>No FlashSpeech or ground truth.</p>"
    )
    return "".join(
        [
            f'<p class="muted">Published numbers: {escape(view.citation)}.</p>',
            f'<p class="note">{escape(view.conditions)}</p>',
            "<h3>Comparability of this run</h3>",
            _list(paper.verdict_lines(view)),
            table,
            _list(view.notes, "legend"),
            "<h3>Published Table 1 (LibriSpeech test-clean)</h3>",
            html_table(t1),
            "<h3>Published Table 3 (sampling steps)</h3>",
            html_table(t3),
        ]
    )


def _provenance(results: Results) -> str:
    meta = escape(json.dumps(results.metadata, indent=1, default=str, ensure_ascii=False))
    return (
        html_table(pd.DataFrame(provenance(results), columns=["What", "Value"]))
        + f"<details><summary>Full run metadata (results.json)</summary><pre>{meta}</pre></details>"
    )


def render_html_string(
    results: Results, plots: Sequence[Plot], clips: dict[str, list[Clip]], audio_per_system: int = 3
) -> str:
    """The whole document as a string."""
    title = report_title(results)
    vc = bool(vc_systems(results))
    sections = (SECTIONS[0], VC_SECTION, *SECTIONS[1:]) if vc else SECTIONS
    nav = "".join(f'<a href="#{key}">{escape(label)}</a>' for key, label in sections)
    sub = " · ".join(f"{escape(k)}: {escape(v)}" for k, v in provenance(results)[1:4])
    body = {
        "headline": _headline(results),
        "vc": _vc(results, plots) if vc else "",
        "figures": _figures([p for p in plots if not (vc and p.name == VC_SWEEP)]),
        "audio": _audio(clips, audio_per_system),
        "failures": _failures(results),
        "paper": _paper(results),
        "provenance": _provenance(results),
    }
    html = "".join(f'<section id="{key}"><h2>{escape(label)}</h2>{body[key]}</section>' for key, label in sections)
    warn = "".join(f'<div class="warn"><b>Warning:</b> {escape(w)}</div>' for w in report_warnings(results))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f'<body><main><header><h1>{escape(title)}</h1><p class="sub">{sub}</p></header>'
        f"<nav>{nav}</nav>{warn}{html}</main></body></html>\n"
    )


def render_html(
    results: Results,
    output_dir: str | Path,
    audio_per_system: int = 3,
    results_dir: str | Path | None = None,
    plots: Sequence[Plot] | None = None,
) -> Path:
    """Write `output_dir/report.html`; relative audio paths resolve against `results_dir`,
    `metadata["output_dir"]`, then `output_dir`. Pass `plots` to reuse figures already rendered."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips = pick_clips(results, audio_per_system, [*base_dirs(results, results_dir), out])
    document = render_html_string(results, build_plots(results) if plots is None else plots, clips, audio_per_system)
    path = out / "report.html"
    tmp = out / ".report.html.tmp"
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(path)
    return path
