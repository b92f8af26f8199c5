"""After a run: the reports (Markdown, HTML, figures) and the MLflow run, as the config asks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from bench.results import Results
from bench.run import RunOutcome


def publish(outcome: RunOutcome, config: BenchConfig) -> tuple[dict[str, Path], Any]:
    """Write the reports into the run's directory and log the run to MLflow (each unless the config turns it
    off); returns the report paths (name -> path) and the MLflow run reference (or None)."""
    reports: dict[str, Path] = {}
    tracking = None
    if config.reports:
        from reports import write_reports

        reports = write_reports(outcome.results, outcome.output_dir)
    if config.mlflow:
        from bench.tracking import log_results

        tracking = log_results(
            outcome.results,
            output_dir=outcome.output_dir,
            run_name=config.name,
            uri=config.tracking_uri,
            artifacts={Path(p).name: Path(p) for p in reports.values()},
            audio_samples=audio_samples(outcome.results),
        )
    return reports, tracking


def audio_samples(results: Results, per_system: int = 3) -> dict[str, list[Path]]:
    """A few generated wavs per system (first seed), to log next to the numbers."""
    items = results.items
    ok = items[(items["status"] == "ok") & items["audio_path"].notna()]
    out: dict[str, list[Path]] = {}
    for system, rows in ok.groupby("system", sort=True):
        first_seed = rows[rows["seed"] == rows["seed"].min()]
        out[str(system)] = [Path(p) for p in first_seed["audio_path"].head(per_system)]
    return out
