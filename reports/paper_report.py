"""The paper report: the FlashSpeech paper's six tables beside our runs, in one Markdown file.

Tables 1 and 3 (LibriSpeech test-clean: WER, Sim-O, Sim-R, RTF; UTMOS and Sim-O per step count) come from the main
run (`paper.toml`) through `reports.paper.paper_view`; Tables 2, 4 and 5 (the discriminator ablation and the alpha
sweeps) from whichever of the runs holds their systems, Table 6 (voice conversion) from every FlashSpeech VC system
of the runs (`reports.paper_tables`). Every cell says whether it is comparable and why not; `PaperReport.counts`
tallies them, and `unusable` lists the cells whose value is shown although some of its suite's scores failed (a mean
over the rest is not the paper's number).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from bench.results import Results
from reports import paper
from reports.markdown import md_table
from reports.paper_tables import TableView, ablation_views, display, vc_view


@dataclass
class PaperReport:
    main: paper.PaperView
    ablations: list[TableView]
    runs: list[Results]
    vc: TableView | None = None  # Table 6

    @property
    def tables(self) -> list[TableView]:
        """Tables 2, 4, 5 and 6 (when made), in order."""
        return [*self.ablations, *([] if self.vc is None else [self.vc])]

    def cells(self) -> pd.DataFrame:
        """Every cell with a value of ours: table, row, metric, comparable, reason, failed (its suite's failed
        scores for the system)."""
        frames = []
        rows = self.main.rows
        if not rows.empty:
            main = rows[rows["ours"].notna()]
            frames.append(
                pd.DataFrame(
                    {
                        "table": "1 / 3",
                        "row": main["system"],
                        "metric": main["metric"],
                        "comparable": main["comparable"],
                        "reason": main["reason"],
                        "failed": main["failed"],
                    }
                )
            )
        for view in self.tables:
            r = view.rows[view.rows["ours"].notna()]
            frames.append(
                pd.DataFrame(
                    {
                        "table": str(view.table.number),
                        "row": r["row"],
                        "metric": r["metric"],
                        "comparable": r["comparable"],
                        "reason": r["reason"],
                        "failed": r["failed"],
                    }
                )
            )
        frames = [f for f in frames if not f.empty]
        empty = pd.DataFrame(columns=["table", "row", "metric", "comparable", "reason", "failed"])
        return pd.concat(frames, ignore_index=True) if frames else empty

    @property
    def counts(self) -> dict[str, int]:
        """Cells with a value of ours by verdict ("yes", "approximately", "no")."""
        cells = self.cells()
        return dict(Counter(cells["comparable"])) if not cells.empty else {}

    def unusable(self) -> list[str]:
        """Cells whose value is shown although some of its suite's scores failed: what `paper` exits 1 on."""
        cells = self.cells()
        if cells.empty:
            return []
        bad = cells[cells["failed"] > 0]
        return [
            f"Table {r.table} {r.row} {r.metric}: {r.failed} failed score(s) of its suite" for r in bad.itertuples()
        ]


def paper_report(main: Results, others: Sequence[Results] = ()) -> PaperReport:
    runs = [main, *others]
    return PaperReport(paper.paper_view(main), ablation_views(runs), runs, vc_view(runs))


ALL_TABLES = (1, 2, 3, 4, 5, 6)


def render_paper_report(report: PaperReport, tables: Sequence[int] = ALL_TABLES) -> str:
    """Markdown of the report's tables among `tables` (Tables 1 and 3 render together)."""
    view = report.main
    lines = [f"# FlashSpeech paper tables, reproduced ({view.citation})", "", view.conditions, ""]
    counts = report.counts
    if counts:
        tally = ", ".join(f"{n} {level}" for level, n in sorted(counts.items()))
        lines += [f"Cells with a value of ours, by comparability: {tally}.", ""]
    lines += ["Runs:", ""]
    for results in report.runs:
        record = results.record
        commit = record.provenance.commit or "not recorded"
        lines.append(f"- {record.config}: commit {commit[:12]}, {record.device.label}")
    if {1, 3} & set(tables):
        lines += ["", "## Tables 1 and 3: zero-shot TTS on LibriSpeech test-clean, and sampling steps", ""]
        lines += [f"- {line}" for line in paper.verdict_lines(view)]
        lines += ["", md_table(paper.view_table(view)) if not view.rows.empty else "_No FlashSpeech or ground truth._"]
        lines += ["", *[f"- {note}" for note in view.notes]]
    for table_view in report.tables:
        table = table_view.table
        if table.number not in tables:
            continue
        lines += ["", f"## {table.title}", "", md_table(display(table_view))]
        if table_view.sources:
            lines += ["", "Our rows: " + "; ".join(table_view.sources) + "."]
        lines += ["", *[f"- {note}" for note in table.notes]]
    t1, t3 = paper.published_tables()
    lines += ["", "<details><summary>Published numbers (Tables 1 and 3)</summary>", "", md_table(t1), ""]
    lines += [md_table(t3), "", "</details>", ""]
    return "\n".join(lines)
