"""MLflow tracking: SQLite default store, a real loopback server, URI precedence, failure handling."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from bench.results import Results
from bench.tracking import (
    KIND_TAG,
    MAX_KEY_LENGTH,
    MAX_PARAM_LENGTH,
    PARENT_TAG,
    UNAVAILABLE_TAG,
    clean_key,
    load_run_results,
    log_results,
    tracking_uri,
    truncate,
)
from tests.fixtures.toy import toy_results

NAN_ROW = ("flashspeech@2", "rtf", "rtf_median")  # made NaN: must not become a metric


@pytest.fixture(autouse=True)
def _no_env_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _results() -> Results:
    res = toy_results()
    agg = res.aggregates
    mask = (agg["system"] == NAN_ROW[0]) & (agg["suite"] == NAN_ROW[1]) & (agg["metric"] == NAN_ROW[2])
    assert mask.sum() == 1
    agg.loc[mask, "value"] = math.nan
    res.metadata["config"] = {
        "run": {"name": "toy", "seeds": [0, 1]},
        "weird key@x": "v",
        "long": "x" * 7000,
        "k" * 300: 1,
    }
    return res


def _runs(client: MlflowClient, experiment: str = "flashspeech-bench") -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=100)


def _check_logged(client: MlflowClient, tracked, res: Results) -> None:
    runs = {r.info.run_id: r for r in _runs(client)}
    assert len(runs) == 5
    assert all(r.info.status == "FINISHED" for r in runs.values())
    parent = runs[tracked.run_id]
    assert parent.data.tags[KIND_TAG] == "parent"
    assert parent.data.tags["mlflow.source.git.commit"] == "0" * 40
    params = parent.data.params
    assert params["git_commit"] == "0" * 40
    assert params["device"] == "cpu"
    assert params["config.run.name"] == "toy"
    assert params["config.run.seeds"] == "[0, 1]"
    assert params["config.weird key_x"] == "v"
    assert len(params["config.long"]) == MAX_PARAM_LENGTH and "truncated" in params["config.long"]
    assert any(k.startswith("config.kkk") and len(k) == MAX_KEY_LENGTH for k in params)
    assert params["env.torch"] == "toy" and "version.mlflow" in params
    assert {Path(f.path).name for f in client.list_artifacts(tracked.run_id, "results")} == {
        "items.csv",
        "items.parquet",
        "groups.csv",
        "aggregates.csv",
        "results.json",
    }
    assert {f.path for f in client.list_artifacts(tracked.run_id)} >= {"metadata.json", "results"}

    assert set(tracked.children) == set(res.metadata["systems"])
    agg = res.aggregates
    for system, child_id in tracked.children.items():
        child = runs[child_id]
        assert child.info.run_name == system
        assert child.data.tags[PARENT_TAG] == tracked.run_id
        assert child.data.tags[KIND_TAG] == "system"
        meta = res.metadata["systems"][system]  # kind, steps and (FlashSpeech) the sampling plan's columns
        assert child.data.params == {k: str(v) for k, v in meta.items() if k != "key"}  # the key's fields are there
        mine = agg[agg["system"] == system]
        finite = mine[mine["value"].notna()]
        metrics = child.data.metrics
        expected = {f"{r.suite}.{r.metric}": r.value for r in finite.itertuples()}
        expected |= {f"{r.suite}.{r.metric}.ci_low": r.ci_low for r in finite.itertuples() if math.isfinite(r.ci_low)}
        expected |= {
            f"{r.suite}.{r.metric}.ci_high": r.ci_high for r in finite.itertuples() if math.isfinite(r.ci_high)
        }
        assert metrics == expected
        wer = mine[mine["metric"] == "wer_corpus"]
        assert metrics["wer.wer_corpus"] == wer["value"].item()
        assert metrics["wer.wer_corpus.ci_low"] == wer["ci_low"].item()
        items = client.download_artifacts(child_id, "items.csv")
        assert len(pd.read_csv(items)) == (res.items["system"] == system).sum()
        if system == NAN_ROW[0]:
            assert "rtf.rtf_median" not in metrics
            assert child.data.tags[UNAVAILABLE_TAG] == "rtf.rtf_median"
        else:
            assert child.data.tags[UNAVAILABLE_TAG] == ""


def test_sqlite_default(tmp_path):
    res = _results()
    out = tmp_path / "run"
    (tmp_path / "report.md").write_text("# report\n")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "rtf.png").write_bytes(b"png")
    wavs = [tmp_path / f"a{i}.wav" for i in range(2)]
    for w in wavs:
        w.write_bytes(b"RIFF")
    tracked = log_results(
        res,
        output_dir=out,
        artifacts={"report.md": tmp_path / "report.md", "plots": tmp_path / "plots"},
        audio_samples={"flashspeech@1": wavs},
    )
    assert tracked.uri == f"sqlite:///{out.resolve()}/mlflow.db"
    assert (out / "mlflow.db").is_file() and tracked.url is None
    assert tracked.artifact_uri.startswith((out / "mlartifacts").resolve().as_uri())
    assert mlflow.active_run() is None

    client = MlflowClient(tracked.uri)
    _check_logged(client, tracked, res)
    top = {f.path for f in client.list_artifacts(tracked.run_id)}
    assert {"report.md", "plots"} <= top
    assert [f.path for f in client.list_artifacts(tracked.run_id, "plots")] == ["plots/rtf.png"]
    audio = client.list_artifacts(tracked.children["flashspeech@1"], "audio")
    assert sorted(f.path for f in audio) == ["audio/a0.wav", "audio/a1.wav"]

    back = load_run_results(tracked.run_id, tracked.uri)
    local = Results.load(res.save(tmp_path / "local"))
    pd.testing.assert_frame_equal(back.aggregates, local.aggregates)
    pd.testing.assert_frame_equal(back.items, local.items)
    assert back.metadata == local.metadata
    via_child = load_run_results(tracked.children["ground_truth"], tracked.uri)
    pd.testing.assert_frame_equal(via_child.aggregates, local.aggregates)

    again = log_results(res, output_dir=out, run_name="second")  # same store and experiment, a new parent run
    assert again.experiment_id == tracked.experiment_id and again.run_id != tracked.run_id
    assert client.get_run(again.run_id).info.run_name == "second"


def test_uri_precedence(tmp_path, monkeypatch):
    default = tracking_uri(tmp_path)
    assert default == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "  ")
    assert tracking_uri(tmp_path) == default
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:1"
    assert tracking_uri(tmp_path, "sqlite:///x.db") == "sqlite:///x.db"

    flagged = tmp_path / "elsewhere" / "store.db"
    tracked = log_results(toy_results(), output_dir=tmp_path / "out", uri=f"sqlite:///{flagged}")
    assert flagged.is_file() and not (tmp_path / "out" / "mlflow.db").exists()
    experiment = MlflowClient(tracked.uri).get_experiment(tracked.experiment_id)
    assert experiment.artifact_location == (tmp_path / "elsewhere" / "mlartifacts").resolve().as_uri()


def test_failure_ends_runs_failed(tmp_path):
    res = toy_results()
    res.aggregates["value"] = res.aggregates["value"].astype(object)
    res.aggregates.loc[res.aggregates["system"] == "flashspeech@2", "value"] = "oops"
    with pytest.raises(ValueError, match="oops"):
        log_results(res, output_dir=tmp_path)
    assert mlflow.active_run() is None
    runs = _runs(MlflowClient(tracking_uri(tmp_path)))
    status = {r.info.run_name: r.info.status for r in runs}
    assert status == {"toy": "FAILED", "flashspeech@1": "FINISHED", "flashspeech@2": "FAILED"}


def test_interrupt_ends_runs_killed(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("bench.tracking._log_system", interrupted)
    with pytest.raises(KeyboardInterrupt):
        log_results(toy_results(), output_dir=tmp_path)
    assert mlflow.active_run() is None
    runs = _runs(MlflowClient(tracking_uri(tmp_path)))
    assert {r.info.run_name: r.info.status for r in runs} == {"toy": "KILLED", "flashspeech@1": "KILLED"}


def test_bad_inputs_fail_before_any_run(tmp_path):
    res = toy_results()
    with pytest.raises(FileNotFoundError):
        log_results(res, output_dir=tmp_path, artifacts={"report.md": tmp_path / "missing.md"})
    with pytest.raises(ValueError, match="unknown system"):
        log_results(res, output_dir=tmp_path, audio_samples={"nope": []})
    with pytest.raises(ValueError, match="relative path"):
        log_results(res, output_dir=tmp_path, artifacts={"../x": tmp_path})
    assert not (tmp_path / "mlflow.db").exists()
    with pytest.raises(FileNotFoundError, match="no MLflow database"):
        load_run_results("0" * 32, tracking_uri(tmp_path))
    assert not (tmp_path / "mlflow.db").exists()


def test_keys_and_values():
    assert clean_key("wer.wer_corpus") == "wer.wer_corpus"
    assert clean_key("flashspeech@1/rtf:x") == "flashspeech_1/rtf_x"
    assert clean_key("a/../b") == "a_.._b"
    assert clean_key("..") == "_.."
    assert clean_key("/abs") == "_abs"
    assert clean_key("") == "_"
    long_a, long_b = clean_key("k" * 300 + "a"), clean_key("k" * 300 + "b")
    assert len(long_a) == MAX_KEY_LENGTH and long_a != long_b
    assert truncate("abc", 5) == "abc"
    cut = truncate("x" * 10_000, 6000)
    assert len(cut) == 6000 and cut.endswith("[truncated: 10000 chars in all]")


@pytest.mark.slow
def test_real_server(mlflow_server, tmp_path, monkeypatch, capsys):
    url, served = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    res = _results()
    tracked = log_results(res, output_dir=tmp_path / "out")
    assert tracked.uri == url and tracked.url == f"{url}/#/experiments/{tracked.experiment_id}/runs/{tracked.run_id}"
    assert not (tmp_path / "out" / "mlflow.db").exists()
    assert "View run" not in capsys.readouterr().out
    assert mlflow.active_run() is None
    _check_logged(MlflowClient(url), tracked, res)
    assert any(served.rglob("aggregates.csv"))  # artifacts went through the server's proxy
    back = load_run_results(tracked.run_id)  # the URI from the environment
    pd.testing.assert_frame_equal(back.aggregates, Results.load(res.save(tmp_path / "local")).aggregates)
