"""The model card: validation curves from the checkpoints, and the targets checked against results."""

from __future__ import annotations

import json
import math

import pandas as pd

from bench.record import SystemKey
from bench.results import Results
from reports.model_card import (
    CARD_SETS,
    _baseline_grid,
    checkpoint_curves,
    plot_validation_curves,
    quality_matched_steps,
    targets,
)


def _checkpoint(path, history, curves):
    path.mkdir()
    (path / "config.json").write_text(
        json.dumps({"format": "flashspeech-bench/checkpoint-v1", "metadata": {"training": history}})
    )
    for stage, rows in curves.items():
        (path / f"validation-{stage}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_curves_come_from_the_checkpoints_with_stages_placed_where_their_weights_started(tmp_path):
    from tests.fixtures.images import is_png

    diffusion = [{"stage": "diffusion", "objective": "diffusion", "steps": 100}]
    _checkpoint(
        tmp_path / "dm",
        diffusion,
        {"diffusion": [{"step": 0, "val_mse_sigma80": 0.25}, {"step": 100, "val_mse_sigma80": 0.1}]},
    )
    fs_history = [*diffusion, {"stage": "adversarial", "objective": "adversarial", "steps": 50}]
    fs_history.append({"stage": "refinement", "objective": "refinement", "steps": 10})
    adversarial = [{"step": 0, "val_mse_sigma80": 0.1, "val_mse_sigma0.5": 0.03}, {"step": 50, "val_mse_sigma80": 0.09}]
    refinement = [{"step": 0, "val_mse_sigma80": 0.09}]
    _checkpoint(tmp_path / "fs", fs_history, {"adversarial": adversarial, "refinement": refinement})
    curves = checkpoint_curves({"diffusion-tiny": str(tmp_path / "dm"), "flashspeech-tiny": str(tmp_path / "fs")})
    assert list(curves) == ["diffusion-tiny: diffusion", "flashspeech-tiny: adversarial"]  # refinement: LCM frozen
    assert [r["step"] for r in curves["flashspeech-tiny: adversarial"]] == [100, 150]
    assert is_png(plot_validation_curves(curves, tmp_path / "curves.png").read_bytes())


def _results(testset: str, values: dict[tuple[str, int | None], dict[str, float]]) -> Results:
    """Aggregates of (series, steps) systems on `testset`, with the run record's keys in the metadata."""
    suites = {"wer_corpus": "wer", "mos": "mos", "spk_id_acc": "similarity", "rtf": "rtf", "share_sampling": "rtf"}
    keys = {
        (series, steps): SystemKey(
            testset, series if steps is None else f"{series}@{steps}", "flashspeech", series=series, steps=steps
        )
        for series, steps in values
    }
    rows = [
        {
            "system": keys[system].label,
            "suite": suites[metric],
            "metric": metric,
            "value": value,
            "ci_low": math.nan,
            "ci_high": math.nan,
        }
        for system, metrics in values.items()
        for metric, value in metrics.items()
    ]
    metadata = {"systems": {k.label: {"key": k.to_dict()} for k in keys.values()}}
    return Results(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(rows), metadata)


def test_targets_and_the_quality_matched_speedup():
    seen = CARD_SETS[0]
    values = {
        ("ground_truth", None): {"wer_corpus": 0.08},
        ("codec_resynthesis", None): {"wer_corpus": 0.09, "mos": 3.4},
        ("flashspeech", 1): {"wer_corpus": 0.20, "mos": 3.0, "rtf": 0.03},
        ("flashspeech", 2): {"wer_corpus": 0.12, "mos": 3.2, "spk_id_acc": 0.95, "rtf": 0.04, "share_sampling": 0.25},
        ("diffusion-heun", 8): {"wer_corpus": 0.30, "mos": 2.9, "rtf": 0.3},
        ("diffusion-heun", 16): {"wer_corpus": 0.11, "mos": 3.25, "rtf": 0.6, "share_sampling": 0.8},
        ("diffusion-heun", 32): {"wer_corpus": 0.10, "mos": 3.3, "rtf": 1.2},
    }
    results = _results(seen.name, values)
    assert quality_matched_steps(results, seen.name, ("flashspeech", 2), "diffusion-heun") == (
        16,
        "the fewest steps at least as good on WER and MOS",
    )
    rows = targets(results, seen)
    verdict = {row.split(" | ")[0].lstrip("| "): row.rstrip(" |").split(" | ")[-1] for row in rows}
    assert verdict["flashspeech@2 corpus WER <= ground truth + 0.05 (0.080)"] == "met"  # 0.12 <= 0.13
    assert verdict["flashspeech@2 DistillMOS >= codec resynthesis - 0.3 (3.40)"] == "met"
    assert verdict["flashspeech@2 prompt speaker nearest in >= 90% of items"] == "met"
    assert verdict["diffusion-heun@16 WER <= flashspeech@1's (0.200)"] == "met"
    assert "diffusion-heun@8 WER" not in " ".join(verdict)  # only 16-32 steps are held to FlashSpeech@1
    speed = [row for row in rows if "faster" in row]
    assert speed == [
        "| flashspeech@2 >= 25x faster end to end than diffusion-heun@16 (the fewest steps at least as "
        "good on WER and MOS) | 15.0x | **missed** |"
    ]
    stage = [row for row in rows if "sampling stage only" in row]  # 0.6 * 0.8 / (0.04 * 0.25)
    assert stage == ["| the same, latent sampling stage only (context: the rest is shared) | 48.0x | - |"]
    # nothing matches FlashSpeech@2: the baseline's best WER is used, and said so
    worse = {k: {**m, "mos": 1.0} if k[0] == "diffusion-heun" and "mos" in m else m for k, m in values.items()}
    assert quality_matched_steps(_results(seen.name, worse), seen.name, ("flashspeech", 2), "diffusion-heun")[0] == 32


def test_the_card_says_where_the_baselines_grid_stops():
    fs = SystemKey("smoke", "flashspeech@2", "flashspeech", series="flashspeech", steps=2)
    heun = SystemKey("smoke", "diffusion-heun@16", "flashspeech", series="diffusion-heun", steps=16)
    metadata = {"systems": {fs.label: {"key": fs.to_dict(), "sampling": {"sigmas": [80.0, 2.0, 0.0]}}}}
    assert _baseline_grid(Results(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), metadata)) == ""
    metadata["systems"][heun.label] = {"key": heun.to_dict(), "sampling": {"sigmas": [80.0, 5.0, 0.3, 0.0]}}
    assert (
        _baseline_grid(Results(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), metadata))
        == "; its Heun grid stops at sigma 0.3 and jumps from there to D(x, 0.3)"
    )
