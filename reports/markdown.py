"""A Markdown report that fits a CI job summary (GitHub step summary): tables only, optional PNG links.

Sections: headline (per test set, each system's key numbers), full results (every metric with its 95 % CI),
voice conversion (only when the run has a VC test set: the paper's Table 6 layout, its sweep figure and the
published Table 6), failures (counts per system, never hidden, and the error messages), the paper view, figures
(links, when their files were written), provenance.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from bench.results import Results
from reports import paper
from reports.failures import (
    DEFECTS_NOTE,
    absent_notes,
    defect_table,
    error_rows,
    failure_table,
    failure_total,
    testset_problems,
)
from reports.headline import SUMMARY_NOTE, headline_table, jsd_notes, summary_table
from reports.provenance import describe_testsets, metric_legend, provenance, report_title, report_warnings
from reports.tables import testset_groups
from reports.vc import VC_SWEEP, vc_notes, vc_systems, vc_table

MAX_ERRORS = 50


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", "<br>")


def md_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pipes escaped, newlines as <br>)."""
    if frame.empty:
        return "_(none)_"
    header = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _headline(results: Results) -> list[str]:
    """The short headline (one table per test set, point values), then "Full results": every metric with its
    95 % CI and the legend."""
    lines = ["## Headline", ""]
    groups = testset_groups(results)
    described = describe_testsets(results)
    for testset, systems in groups:
        if testset is not None or len(groups) > 1:
            lines += [f"### {'Test set not recorded' if testset is None else described.get(testset, testset)}", ""]
        lines += [md_table(summary_table(results, systems)), ""]
    if not groups:
        lines += ["_(no systems)_", ""]
    lines += [
        f"{SUMMARY_NOTE} below.",
        "",
        "## Full results (95 % CI)",
        "",
        md_table(headline_table(results)),
        "",
    ]
    return lines + [f"- {line}" for line in [*metric_legend(results), *jsd_notes(results)]]


def _vc(results: Results, images: Mapping[str, str]) -> list[str]:
    """The voice conversion section (none without a VC test set): a table per VC test set, its notes, the sweep
    figure when its file was written, and the paper's Table 6 as published."""
    groups = vc_systems(results)
    if not groups:
        return []
    lines = ["", "## Voice conversion", ""]
    described = describe_testsets(results)
    for testset, systems in groups:
        if testset is not None or len(groups) > 1:
            lines += [f"### {'Test set not recorded' if testset is None else described.get(testset, testset)}", ""]
        lines += [md_table(vc_table(results, systems)), ""]
    lines += [f"- {note}" for note in vc_notes(results)]
    if VC_SWEEP in images:
        lines += ["", f"![{VC_SWEEP}]({images[VC_SWEEP]})"]
    caption = paper.load_paper().table6.get("caption", "Table 6").rstrip(".")
    summary = f"<details><summary>Published numbers ({caption})</summary>"
    return [*lines, "", summary, "", md_table(paper.published_table6()), "", "</details>"]


def _failures(results: Results) -> list[str]:
    total = failure_total(results)
    lines = [
        "## Failures",
        "",
        f"**{total} failed generation(s), score(s) and test-set entries in total.** Failed / attempted, per system "
        "and stage:",
        "",
        md_table(failure_table(results)),
        *_defects(results),
    ]
    problems = testset_problems(results)
    if problems:
        lines += ["", f"**{len(problems)} test-set problem(s)** (entries left out of the run):", ""]
        lines += [f"- {p}" for p in problems[:MAX_ERRORS]]
        if len(problems) > MAX_ERRORS:
            lines.append(f"- … and {len(problems) - MAX_ERRORS} more (results.json: testsets)")
    absent = absent_notes(results)
    if absent:
        lines += ["", "Absent numbers:", "", *[f"- {n}" for n in absent]]
    errors = error_rows(results)
    if not errors.empty:
        shown = errors.head(MAX_ERRORS)
        lines += ["", f"<details><summary>Error messages ({len(errors)})</summary>", "", md_table(shown)]
        if len(errors) > len(shown):
            lines.append(f"\n… and {len(errors) - len(shown)} more (see report.html or items.csv).")
        lines += ["", "</details>"]
    return lines


def _defects(results: Results) -> list[str]:
    """The generation-defects table (flagged / scored samples per system), when the run measured any."""
    table = defect_table(results)
    return [] if table.empty else ["", "### Generation defects", "", DEFECTS_NOTE, "", md_table(table)]


def _paper(results: Results) -> list[str]:
    view = paper.paper_view(results)
    lines = [f"## Paper view ({view.citation})", "", view.conditions, "", "Comparability of this run:", ""]
    lines += [f"- {line}" for line in paper.verdict_lines(view)]
    lines += [
        "",
        md_table(paper.view_table(view)) if not view.rows.empty else "_No FlashSpeech or ground-truth system._",
    ]
    lines += ["", *[f"- {note}" for note in view.notes]]
    t1, t3 = paper.published_tables()
    lines += [
        "",
        "<details><summary>Published numbers (Table 1, Table 3)</summary>",
        "",
        md_table(t1),
        "",
        md_table(t3),
        "",
        "</details>",
    ]
    return lines


def render_markdown(
    results: Results, paper_view: bool = True, images: Mapping[str, str] | None = None, title: str | None = None
) -> str:
    """The report as Markdown; `images` maps figure names to (relative) PNG paths to link."""
    lines = [f"# {title or report_title(results)}", ""]
    for warning in report_warnings(results):
        lines += [f"> **Warning:** {warning}", ""]
    lines += _headline(results)
    vc = _vc(results, images or {})
    lines += vc
    lines += ["", *_failures(results)]
    if paper_view:
        lines += ["", *_paper(results)]
    figures = {name: path for name, path in (images or {}).items() if not (vc and name == VC_SWEEP)}
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{name}]({path})" for name, path in figures.items()]
    lines += ["", "## Provenance", "", md_table(pd.DataFrame(provenance(results), columns=["What", "Value"]))]
    return "\n".join(lines).rstrip() + "\n"
