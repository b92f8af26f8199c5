"""Voice conversion through the CLI on the committed `vc` clips: the shipped FlashSpeech converting at two noise
levels, the source passthrough floor and the ground-truth topline, a TTS system and a TTS-only program skipped on
the vc set; the report's VC table, a warm rerun from the caches and the regression gate passing identical code."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.results import Results


def _config(tmp_path: Path) -> Path:
    body = f"""
        name = "vc-e2e"
        output_dir = "{tmp_path / "out"}"
        cache_dir = "{tmp_path / "cache"}"
        seeds = [0]
        mlflow = false

        [[testsets]]
        name = "vc"

        [[systems]]
        kind = "flashspeech_vc"
        checkpoint = "pretrained:flashspeech-tiny"
        noise_levels = [2.0, 4.0]

        [[systems]]
        kind = "source_passthrough"

        [[systems]]
        kind = "ground_truth"

        [[systems]]
        kind = "flashspeech"
        checkpoint = "pretrained:flashspeech-tiny"
        steps = [1]

        [[systems]]
        kind = "external"
        name = "tts-program"
        command = ["{{python}}", "-c", "raise SystemExit(1)"]

        [suites.wer]
        [suites.similarity]
        [suites.prosody]
    """
    path = tmp_path / "vc.toml"
    path.write_text(textwrap.dedent(body))
    return path


def _value(results: Results, system: str, suite: str, metric: str) -> float:
    agg = results.aggregates
    row = agg[(agg.system == f"vc:{system}") & (agg.suite == suite) & (agg.metric == metric)]
    assert len(row) == 1, (system, suite, metric)
    return float(row.value.iloc[0])


@pytest.mark.slow
def test_vc_run_scores_conversions_against_floor_and_topline(tmp_path, capsys):
    config = _config(tmp_path)
    assert main(["run", "--config", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "not run, another task: vc (vc): not flashspeech@1, tts-program" in out
    results = Results.load(tmp_path / "out")
    labels = set(results.record.systems)
    assert labels == {
        f"vc:{n}" for n in ("flashspeech-vc@sigma2", "flashspeech-vc@sigma4", "source_passthrough", "ground_truth")
    }
    keys = {k.name: k for k in results.record.systems.values()}
    assert {k.task for k in keys.values()} == {"vc"}
    assert keys["flashspeech-vc@sigma4"].noise_level == 4.0 and keys["flashspeech-vc@sigma4"].series == "flashspeech-vc"
    assert results.metadata["testsets"]["vc"]["task"] == "vc"

    # the floor: the source itself (similarity to the source 1, intonation kept whole, the source's own WER)
    floor = {m: _value(results, "source_passthrough", s, m) for s, m in [("similarity", "sim_o"),
             ("similarity", "sim_source"), ("wer", "wer_corpus"), ("prosody", "f0_corr_source")]}  # fmt: skip
    assert floor["sim_source"] > 0.99 and floor["f0_corr_source"] > 0.99
    assert abs(floor["wer_corpus"] - _value(results, "ground_truth", "wer", "wer_corpus")) < 0.1
    # the shipped model converts: closer to the target voice than the source was, and away from the source
    for level in ("2", "4"):
        system = f"flashspeech-vc@sigma{level}"
        assert _value(results, system, "similarity", "sim_o") > floor["sim_o"]
        assert _value(results, system, "similarity", "sim_source") < 0.9
        assert -1.0 <= _value(results, system, "prosody", "f0_corr_source") <= 1.0
    assert _value(results, "ground_truth", "similarity", "sim_o") > _value(
        results, "flashspeech-vc@sigma4", "similarity", "sim_o"
    )

    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Voice conversion" in report and "| flashspeech-vc@sigma4 | 4 |" in report
    assert (tmp_path / "out" / "vc_sweep.png").is_file()
    items = pd.read_csv(tmp_path / "out" / "items.csv")
    assert items["error"].isna().all() and len(items) == 4 * 8

    # warm: every generation and score from the caches, the same numbers; the gate passes identical code
    assert main(["run", "--config", str(config), "--quiet", "--output-dir", str(tmp_path / "warm")]) == 0
    assert "0 generated, 32 from the cache" in capsys.readouterr().out
    warm = Results.load(tmp_path / "warm")
    pd.testing.assert_frame_equal(
        results.aggregates.reset_index(drop=True), warm.aggregates.reset_index(drop=True), check_exact=True
    )
    assert main(["compare", str(tmp_path / "out"), str(tmp_path / "warm")]) == 0


def test_a_vc_set_without_a_vc_system_is_named_before_anything_runs(tmp_path, capsys):
    body = f"""
        name = "no-converter"
        output_dir = "{tmp_path / "out"}"
        mlflow = false

        [[testsets]]
        name = "vc"

        [[testsets]]
        name = "smoke"
        max_items = 1

        [[systems]]
        kind = "flashspeech"
        steps = [1]
    """
    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent(body))
    assert main(["run", "--config", str(path), "--check"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "test set vc: a vc set, and no system that loaded does vc" in text
    assert not (tmp_path / "out").exists()
