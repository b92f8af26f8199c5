"""Run-to-run noise of RTF on the machine at hand, to calibrate the gate's RTF threshold.

`calibrate_rtf(config, runs=n)` runs the config's generation `n` times with every timing taken anew
(`retime`, only the RTF suite, no MLflow or reports) and tabulates, per system, the aggregate RTF of each run
(Σ time / Σ audio, the statistic the reports and the gate use), its coefficient of variation and the largest
relative deviation of one run from the median of the runs. A gate whose RTF margin is below that deviation
fails identical code on an unlucky run; the recommendation is the largest such deviation over the systems,
times a safety factor, rounded up to the next 5 % (never below 5 %).

Timings depend on what else ran (see `bench.contention`): runs with contended samples are reported as such,
and a calibration is only meaningful on a quiet machine.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.config import BenchConfig
from bench.results import Results
from flashspeech.foundation.files import write_text_atomic

SAFETY = 2.0  # margin = SAFETY x the largest relative deviation seen


def rtf_noise(runs: Sequence[Results]) -> pd.DataFrame:
    """Per system: RTF of every run, median, CV and the largest |run / median - 1|, contended sample counts."""
    per_run = []
    for k, results in enumerate(runs):
        agg = results.aggregates
        rtf = agg[(agg["suite"] == "rtf") & agg["metric"].isin(["rtf", "contended", "timed_here"])]
        table = rtf.pivot_table(index="system", columns="metric", values="value", aggfunc="first")
        per_run.append(table.assign(run=k))
    frame = pd.concat(per_run).reset_index()
    rows = []
    for system, group in frame.groupby("system", sort=True):
        values = group["rtf"].to_numpy(float)
        median = float(np.median(values))
        rows.append(
            {
                "system": system,
                "runs": len(values),
                "rtf_per_run": [round(v, 6) for v in values],
                "rtf_median": median,
                "cv": float(np.std(values, ddof=1) / np.mean(values)) if len(values) > 1 else math.nan,
                "max_rel_dev": float(np.max(np.abs(values / median - 1))) if median > 0 else math.nan,
                "contended_samples": int(group.get("contended", pd.Series(0)).fillna(0).sum()),
                "timed_samples": int(group.get("timed_here", pd.Series(0)).fillna(0).sum()),
            }
        )
    return pd.DataFrame(rows)


def recommend_allowed_rel(noise: pd.DataFrame, safety: float = SAFETY) -> float:
    """The RTF margin (fraction) that identical code would not exceed: safety x the worst deviation, rounded
    up to 5 %."""
    worst = float(noise["max_rel_dev"].max()) if len(noise) else math.nan
    if not math.isfinite(worst):
        raise ValueError("no RTF measured in the calibration runs")
    return max(0.05, math.ceil(safety * worst * 20 - 1e-9) / 20)


def calibrate_rtf(config: BenchConfig, runs: int = 3, progress: bool = True) -> dict[str, Any]:
    """Run `config` `runs` times (timings only, always re-timed) and return the noise table as a dict, also
    written to `<output_dir>/rtf-noise.json`."""
    from bench.run import run_benchmark, timing_context

    if runs < 2:
        raise ValueError("need at least 2 runs to measure run-to-run noise")
    base = Path(config.output_dir) / "calibration"
    results = []
    for k in range(runs):
        run_config = replace(
            config,
            name=f"{config.name}-rtf-calibration-{k}",
            output_dir=str(base / f"run-{k}"),
            suites={"rtf": dict(config.suites.get("rtf") or {})},
            retime=True,
            mlflow=False,
            reports=False,
        )
        results.append(run_benchmark(run_config, progress=progress).results)
    noise = rtf_noise(results)
    out = {
        "config": config.name,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": timing_context(config.device),
        "runs": runs,
        "systems": noise.to_dict(orient="records"),
        "worst_max_rel_dev": float(noise["max_rel_dev"].max()),
        "recommended_allowed_rel": recommend_allowed_rel(noise),
        "safety_factor": SAFETY,
        "contended_samples": int(noise["contended_samples"].sum()),
    }
    write_text_atomic(Path(config.output_dir) / "rtf-noise.json", json.dumps(out, indent=1, default=str) + "\n")
    return out
