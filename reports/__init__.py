"""Report rendering: Markdown (CI job summary), one self-contained HTML page, PNG figures.

`write_reports(results, output_dir)` writes all of them; the modules can be used alone:
`reports.markdown.render_markdown`, `reports.html.render_html`, `reports.plots.build_plots`,
`reports.paper.paper_view` / `load_paper` (the FlashSpeech paper's published numbers).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.results import Results

__all__ = ["write_reports"]


def write_reports(
    results: Results,
    output_dir: str | Path,
    audio_per_system: int = 3,
    results_dir: str | Path | None = None,
    paper_view: bool = True,
) -> dict[str, Path]:
    """Write report.md, report.html and the figures (`<name>.png`) into `output_dir`.

    Returns name -> path: "markdown", "html", and one entry per rendered figure.
    """
    from reports.html import render_html
    from reports.markdown import render_markdown
    from reports.plots import build_plots, save_plots

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = build_plots(results)
    paths = save_plots(plots, out)
    markdown = render_markdown(results, paper_view=paper_view, images={name: p.name for name, p in paths.items()})
    md_path = out / "report.md"
    md_path.write_text(markdown, encoding="utf-8")
    html_path = render_html(results, out, audio_per_system=audio_per_system, results_dir=results_dir, plots=plots)
    return {"markdown": md_path, "html": html_path, **paths}
