"""RTF run-to-run noise: the table per system and the margin it recommends for the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.gate.rtf_noise import calibrate_rtf, recommend_allowed_rel, rtf_noise
from bench.results import AGGREGATE_COLUMNS, Results
from tests.bench.test_timing_provenance import _config


def _results(rtf: dict[str, float], contended: int = 0) -> Results:
    rows = []
    for system, value in rtf.items():
        for metric, v in (("rtf", value), ("contended", contended), ("timed_here", 4)):
            rows.append({"system": system, "suite": "rtf", "metric": metric, "value": v})
    agg = pd.DataFrame(rows).reindex(columns=AGGREGATE_COLUMNS)
    return Results(pd.DataFrame(), pd.DataFrame(), agg)


def test_noise_table_and_recommendation():
    runs = [_results({"a": 0.10, "b": 1.0}), _results({"a": 0.11, "b": 1.0}), _results({"a": 0.08, "b": 1.0}, 2)]
    noise = rtf_noise(runs).set_index("system")
    assert noise.loc["a", "rtf_per_run"] == [0.10, 0.11, 0.08]
    assert noise.loc["a", "rtf_median"] == pytest.approx(0.10)
    assert noise.loc["a", "max_rel_dev"] == pytest.approx(0.2)  # 0.08 is 20 % below the median
    assert noise.loc["b", "max_rel_dev"] == 0 and noise.loc["b", "cv"] == 0
    assert noise.loc["a", "contended_samples"] == 2
    assert recommend_allowed_rel(noise.reset_index()) == pytest.approx(0.40)  # 2 x 20 %
    quiet = rtf_noise([_results({"a": 1.0}), _results({"a": 1.001})])
    assert recommend_allowed_rel(quiet) == 0.05  # never below 5 %


def test_calibration_runs_retime_every_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FSB_TEST_SLEEP", "0")
    config = _config(tmp_path)
    out = calibrate_rtf(config, runs=2, progress=False)
    assert out["runs"] == 2 and [r["system"] for r in out["systems"]] == ["t:slow"]
    row = out["systems"][0]
    assert len(row["rtf_per_run"]) == 2 and all(v > 0 for v in row["rtf_per_run"])
    assert row["timed_samples"] == 4  # 2 items x 2 runs, all timed anew (the second run had a warm cache)
    saved = json.loads((tmp_path / "out" / "rtf-noise.json").read_text())
    assert saved["recommended_allowed_rel"] == out["recommended_allowed_rel"] >= 0.05
    assert saved["machine"]["cpu"]


def test_gate_takes_its_rtf_margin_from_a_calibration(tmp_path):
    from bench.gate.rules import GateConfig, GateConfigError

    measured = "docs/measurements/rtf-noise-smoke-cpu-2core.json"  # the committed measurement on 2 CPU cores
    config = GateConfig.from_dict({"rtf_noise": measured})
    recommended = json.loads(Path(measured).read_text())["recommended_allowed_rel"]
    (timing,) = [r for r in config.rules if r.same_device]
    assert timing.allowed_rel == recommended and timing.allowed_abs is None
    assert "calibrated by 3 re-timed runs" in config.timing_margin_note
    assert all(r.allowed_rel is None for r in config.rules if not r.same_device)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(GateConfigError, match="not a calibrate-rtf result"):
        GateConfig.from_dict({"rtf_noise": str(bad)})
