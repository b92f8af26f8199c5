"""Metric histories from a real MLflow store: bands, the commit where a regression started, the trend report."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.gate.history import HistoryConfig, departures, history_table, mark_bands
from reports.history_report import write_history
from tests.bench.regression.conftest import log_synthetic

REGRESSED_AT = 5  # FlashSpeech's WER goes from 0.10 to 0.40 at this commit and stays there


def _log_sequence(uri, tmp_path, history, count=8, regressed_at=REGRESSED_AT):
    for k, commit in enumerate(history.main[:count]):
        log_synthetic(uri, tmp_path / "out", commit, seed=k, wer=0.40 if k >= regressed_at else 0.10)


def _check_history(uri, tmp_path, history, regressed_at):
    table, runs = history_table(uri, HistoryConfig(config="nightly", metrics=("wer.wer_mean", "similarity.sim_o")))
    assert [r.lineage.commit for r in runs] == history.main[: len(runs)]
    found = departures(table)
    wer = found[found["metric"] == "wer.wer_mean"]
    assert wer[["system", "commit"]].values.tolist() == [["flashspeech@1", history.main[regressed_at]]]
    assert not (found["system"] == "ground_truth").any()  # its WER never moved
    # SIM-o moved with the WER (toy: 0.8 - WER): down is worse, and it is found at the same commit
    sim = found[found["metric"] == "similarity.sim_o"]
    assert sim["commit"].tolist() in ([], [history.main[regressed_at]])
    paths = write_history(table, runs, tmp_path / "report", "nightly")
    markdown = paths["markdown"].read_text()
    assert history.main[regressed_at][:8] in markdown and "flashspeech@1" in markdown
    assert '<img src="data:image/png;base64,' in paths["html"].read_text()
    back = pd.read_csv(paths["csv"])
    assert len(back) == len(table) and back["departure"].sum() == len(found)


def test_history_finds_the_commit_where_wer_regressed_sqlite(tmp_path, history):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _log_sequence(uri, tmp_path, history)
    _check_history(uri, tmp_path, history, REGRESSED_AT)


@pytest.mark.slow
def test_history_on_a_loopback_mlflow_server(tmp_path, history, mlflow_server):
    url, _ = mlflow_server
    _log_sequence(url, tmp_path, history, count=6, regressed_at=4)
    _check_history(url, tmp_path, history, 4)


def test_bands_follow_each_device_for_timings_and_ignore_noise_within_the_ci():
    rows = []
    for order in range(8):
        for device, rtf in (("cuda:H200", 0.01), ("cpu:EPYC", 0.5)):
            # the H200 gets 3x slower from run 6 on; the CPU runs jitter within their CI
            value = rtf * (3 if device == "cuda:H200" and order >= 6 else 1) * (1 + 0.02 * (-1) ** order)
            half = 0.05 * rtf
            rows.append(
                {
                    "order": order,
                    "run_id": f"r{order}{device}",
                    "commit": f"c{order}",
                    "started": order,
                    "device_model": device,
                    "system": "fs@1",
                    "metric": "rtf.rtf",
                    "value": value,
                    "ci_low": value - half,
                    "ci_high": value + half,
                }
            )
    table = mark_bands(pd.DataFrame(rows))
    assert set(table["series"]) == {"cuda:H200", "cpu:EPYC"}
    found = departures(table)
    assert found[["series", "commit"]].values.tolist() == [["cuda:H200", "c6"]]
    assert table.loc[table["order"] < 3, "band_center"].isna().all()  # fewer than 3 runs before: no band yet


def test_timings_that_are_not_clean_are_marked_and_kept_out_of_bands():
    """A contended run 3x slower is no departure and does not move the band; the next clean slow run is."""
    from reports.history_report import marked_timings

    rows = []
    for order in range(8):
        timing = "contended" if order == 4 else "borrowed" if order == 5 else "clean"
        value = 0.5 * (3 if order in (4, 7) else 1) * (1 + 0.01 * (-1) ** order)
        rows.append(
            {
                "order": order,
                "run_id": f"r{order}",
                "commit": f"c{order}",
                "started": order,
                "device_model": "cpu:EPYC",
                "system": "fs@1",
                "metric": "rtf.rtf",
                "value": value,
                "ci_low": value * 0.97,
                "ci_high": value * 1.03,
                "timing": timing,
            }
        )
    table = mark_bands(pd.DataFrame(rows))
    assert departures(table)["commit"].tolist() == ["c7"]
    contended = table[table["order"] == 4].iloc[0]
    assert pd.isna(contended["band_center"]) and contended["left_band"] is None and not contended["departure"]
    assert table.loc[table["order"] == 7, "band_center"].iloc[0] == pytest.approx(0.5, rel=0.02)  # clean runs only
    marked = marked_timings(table)
    assert marked[["commit", "timing"]].values.tolist() == [["c4", "contended"], ["c5", "borrowed"]]


def test_timing_quality_reads_the_rtf_suite_counts():
    from bench.gate.history import timing_quality

    metrics = pd.DataFrame(
        [
            ("a", "s", "rtf.timed_here", 16.0),
            ("a", "s", "rtf.borrowed", 0.0),
            ("a", "s", "rtf.contended", 0.0),
            ("b", "s", "rtf.timed_here", 16.0),
            ("b", "s", "rtf.contended", 3.0),
            ("c", "s", "rtf.timed_here", 8.0),
            ("c", "s", "rtf.borrowed", 8.0),
            ("d", "s", "rtf.timed_here", 0.0),
        ],
        columns=["run_id", "system", "metric", "value"],
    )
    assert timing_quality(metrics) == {
        ("a", "s"): "clean",
        ("b", "s"): "contended",
        ("c", "s"): "borrowed",
        ("d", "s"): "not timed",
    }
