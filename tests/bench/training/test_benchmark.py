"""The training benchmark: throughput and memory rows through the CLI, and the memory estimate's arithmetic."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.cli import main
from bench.training.benchmark import ThroughputRow, estimate_memory, measure


def test_train_benchmark_through_the_cli(tmp_path: Path, capsys) -> None:
    out = tmp_path / "train-bench"
    args = ["train", "--benchmark", "--preset", "tiny", "--precision", "fp32", "bf16", "--batch-frames", "400", "800"]
    assert main([*args, "--bench-steps", "1", "--estimate-at", "20000", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert [(r["precision"], r["batch_frames"]) for r in report["rows"]] == [
        ("fp32", 400), ("fp32", 800), ("bf16", 400), ("bf16", 800)
    ]  # fmt: skip
    for row in report["rows"]:
        assert row["frames_per_s"] > 0 and row["peak_memory_gb"] > 0 and row["trainable_m"] > 1
    assert len(report["estimates"]) == 2 and "tiny at 20000 frames per device" in report["estimates"][0]["line"]
    assert "| tiny | consistency | bf16 | cpu | 800 |" in capsys.readouterr().out


def test_the_memory_estimate_is_linear_in_frames() -> None:
    small = ThroughputRow("paper", "consistency", "fp32", "cpu", 400, 1, 6.4, 37.5, 6.8, "rss", 430.8, 378.4)
    large = replace(small, batch_frames=800, peak_memory_gb=7.4)
    estimate = estimate_memory("paper", 20_000, small, large)
    assert estimate.total_gb == pytest.approx(7.4 + 0.6 / 400 * 19_200)
    assert estimate.state_gb == pytest.approx((430.8 * 4 + 378.4 * 12) * 1e6 / 1024**3)
    with pytest.raises(ValueError, match="increasing frame budgets"):
        estimate_memory("paper", 20_000, large, small)


@pytest.mark.slow
def test_the_paper_preset_trains_a_step_on_the_cpu_at_a_reduced_batch() -> None:
    """The 378 M preset at 400 frames per step (the paper: 20k per GPU): about 6 s and 7 GB here."""
    row = measure(preset="paper", batch_frames=400, steps=1, warmup=1)
    assert row.trainable_m == pytest.approx(378.4, abs=0.1) and row.frames_per_s > 0
