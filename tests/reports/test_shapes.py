"""The paper's ablation shapes: tables and verdicts from a run's aggregates."""

from __future__ import annotations

import math

import pandas as pd

from bench.record import SystemKey
from bench.results import Results
from reports.shapes import SHAPES, render_shapes


def _results(rows: list[tuple[SystemKey, str, str, float, float, float]]) -> Results:
    aggregates = pd.DataFrame(
        [
            {"system": k.label, "suite": suite, "metric": m, "value": v, "ci_low": lo, "ci_high": hi, "n_items": 16}
            for k, suite, m, v, lo, hi in rows
        ]
    )
    metadata = {"systems": {k.label: {"key": k.to_dict()} for k, *_ in rows}}
    return Results(pd.DataFrame(), pd.DataFrame(), aggregates, metadata)


def _key(testset: str, series: str, steps: int) -> SystemKey:
    return SystemKey(testset, f"{series}@{steps}", "flashspeech", series=series, steps=steps)


def test_steps_shape_reproduced_and_not():
    def run(mos4: float) -> str:
        rows = []
        for steps, mos, sim in ((1, 3.2, 0.80), (2, 3.25, 0.81), (4, mos4, 0.79)):
            key = _key("smoke", "flashspeech", steps)
            rows.append((key, "mos", "mos", mos, mos - 0.1, mos + 0.1))
            rows.append((key, "similarity", "sim_o", sim, sim - 0.02, sim + 0.02))
        return "\n".join(render_shapes(_results(rows)))

    text = run(3.0)
    assert "### Table 3: sampling steps: `smoke`" in text
    assert "| 2 steps | 3.25 [3.15, 3.35] | 0.810 [0.790, 0.830] |" in text
    assert "Here: reproduced (MOS: 1 vs 2 overlap, 2 >= 4; SIM-o: 1 vs 2 overlap, 2 >= 4)" in text
    assert "**not reproduced** (MOS: 1 vs 2 overlap, 2 < 4" in run(3.4)
    assert "Table 2" not in text and "Table 4" not in text  # shapes whose systems are absent are left out


def test_alpha_shape_shows_the_floor_and_checks_jsd_and_wer():
    rows = []
    for alpha, jsd, wer in (("0", 0.08, 0.10), ("0.2", 0.07, 0.10), ("1", 0.05, 0.14)):
        system = _key("smoke-seen", f"pitch-alpha-{alpha}", 2)
        rows += [
            (system, "prosody", "pitch_jsd", jsd, math.nan, math.nan),
            (system, "prosody", "pitch_jsd_floor", 0.02, math.nan, math.nan),
            (system, "wer", "wer_corpus", wer, wer - 0.03, wer + 0.03),
        ]
    text = "\n".join(render_shapes(_results(rows)))
    assert "| alpha 1 | 0.0500 [no CI] (0.0200) | 0.140 [0.110, 0.170] |" in text
    assert "Here: reproduced (pitch_jsd 0.0800 -> 0.0500 (floor 0.0200); WER 0.100 -> 0.140)" in text
    assert [s.name for s in SHAPES] == ["steps", "adversarial", "diffusion-steps", "alpha-pitch", "alpha-duration"]
    floored = [(s, suite, m, 0.1 if m.endswith("_floor") else v, lo, hi) for s, suite, m, v, lo, hi in rows]
    text = "\n".join(render_shapes(_results(floored)))  # every JSD at or below the floor: nothing to fall from
    assert (
        "**not reproduced** (pitch_jsd 0.0800 -> 0.0500 (floor 0.1000: alpha 0 is already at the ground-truth" in text
    )
