"""Config and input errors: one line naming the key (exit 2) before anything runs; --debug shows the traceback."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.cli import main
from bench.config import BenchConfig, ConfigError, load_config
from bench.execution import ExecutorConfig
from bench.tracking import TrackedRun
from flashspeech.foundation.fields import FieldError, typed_fields

TINY = """\
name = "tiny"
seeds = [0]
mlflow = false
reports = false

[[testsets]]
name = "smoke"
max_items = 2

[[systems]]
kind = "ground_truth"

[suites.wer]
"""


@pytest.fixture
def tiny(tmp_path):
    """`run` arguments for a one-system config (ground truth on 2 smoke items), output under tmp_path/out."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return ["run", "--config", str(path), "--output-dir", str(tmp_path / "out"), "--quiet"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('sytems.0.name="x"', "--set sytems.0.name: unknown key 'sytems' (known: name, output_dir, "),
        ('systems.5.name="x"', "--set systems.5.name: index 5 out of range (1 systems)"),
        ("seeds.0.x=1", "--set seeds.0.x: seeds.0 is 0, not a table or a list"),
        ("testsets.0.max_items=two", "testsets.0.max_items: expected an integer, got 'two'"),
        ("testsets.0.max_items=0", "testsets.0.max_items: expected an integer >= 1, got 0"),
        ("bootstrap_resamples=abc", "bootstrap_resamples: expected an integer, got 'abc'"),
        ("seeds=[0, 1.5]", "seeds.1: expected an integer, got 1.5"),
        ("mlflow=yes", "mlflow: expected true or false, got 'yes'"),
        ("seeds=[0,1", "--set seeds: '[0,1' is not a valid TOML value (Unclosed array)"),
        ("executor.workers=2", "executor.workers: unknown key (known: kind, shard_items, "),
        ("executor.cpus_per_actor=true", "executor.cpus_per_actor: expected a number, got True"),
        ("suites.wer.beem=5", "suites.wer.beem: unknown key of the wer suite with the whisper backend (known: model, "),
        ("suites.wer.beam_size=0", "suites.wer: beam_size must be an integer >= 1, or None for greedy decoding; got 0"),
        ("suites.wre.backend=1", "suites.wre: unknown suite 'wre'; known: defects, mos, prosody, rtf, similarity, wer"),
    ],
)
def test_a_bad_override_is_one_line_naming_the_key(tiny, override, message, capsys):
    assert main([*tiny, "--set", override]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"flashspeech-bench: error: {message}")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err and captured.out == ""


def test_debug_shows_the_traceback(tiny):
    with pytest.raises(ConfigError, match=r"testsets\.0\.max_items: expected an integer"):
        main(["--debug", *tiny, "--set", "testsets.0.max_items=two"])


def test_an_unexpected_error_keeps_its_traceback(tiny, monkeypatch):
    import bench.run

    def broken(config, progress=True):
        raise RuntimeError("a bug")

    monkeypatch.setattr(bench.run, "run_benchmark", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(tiny)


def test_python_dash_m_fails_fast_with_one_line(tiny, tmp_path):
    """A bad value fails when the config loads: nothing is generated or scored, no results are written."""
    command = [sys.executable, "-m", "bench", *tiny, "--set", "bootstrap_resamples=abc"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr == "flashspeech-bench: error: bootstrap_resamples: expected an integer, got 'abc'\n"
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_valid_override_still_applies():
    config = load_config(
        "smoke",
        ["testsets.0.max_items=3", "executor.cpus_per_actor=1", "bootstrap_resamples=200", "suites.wer.beam_size=2"],
    )
    assert config.testsets[0].max_items == 3 and config.executor.cpus_per_actor == 1
    assert config.bootstrap_resamples == 200 and config.suites["wer"]["beam_size"] == 2
    with pytest.raises(ConfigError, match="bootstrap_resamples: expected an integer >= 40, got 10"):
        load_config("smoke", ["bootstrap_resamples=10"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            'suites.wer.backend="whisperx"',
            "suites.wer.backend: unknown WER backend 'whisperx'; known: ct2, hubert, whisper",
        ),
        ('suites.wer.normalizer="nope"', "suites.wer: unknown normaliser 'nope'"),
        ("suites.wer.model=1", "suites.wer.model: expected a string, got 1"),
        ('suites.wer.backend="whisper"', None),  # openai-whisper takes the smoke config's model and beam_size
        ('suites.wer.backend="hubert"', "suites.wer.beam_size: unknown key of the wer suite with the hubert backend"),
        (
            'suites.wer.download_root="/x"',
            "suites.wer.download_root: unknown key of the wer suite with the ct2 backend",
        ),
        ('suites.wer.compute_type="int4"', "suites.wer: compute_type: unknown 'int4'"),
        (
            'suites.similarity.checkpoint="x.pth"',
            "suites.similarity.checkpoint: unknown key of the resemblyzer similarity",
        ),
        ('suites.similarity.backend="wavlm-tdnn"', None),
        ('suites.mos.crops_per_batch="4"', "suites.mos.crops_per_batch: expected an integer, got '4'"),
        ('suites.mos.backend="utmos"', None),
        ("suites.defects.edge_silnce_s=1", "suites.defects.edge_silnce_s: unknown key of the defects suite"),
        ('suites.prosody.f0={method="harvst"}', "suites.prosody.f0: unknown F0 method 'harvst'"),
        ("suites.rtf.batch_size=true", "suites.rtf.batch_size: expected an integer, got True"),
    ],
)
def test_suite_options_are_checked_when_the_config_loads(override, message):
    """Each suite's table against what the suite and its backend take, without building either."""
    if message is None:
        load_config("smoke", [override])
    else:
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
            load_config("smoke", [override])


def test_typed_fields_checks_keys_and_types_of_nested_tables():
    assert typed_fields(ExecutorConfig, {"kind": "ray", "num_cpus": 2, "address": None}) == {
        "kind": "ray",
        "num_cpus": 2,
        "address": None,
    }
    with pytest.raises(ConfigError, match=r"^testsets\.0\.name: missing \(a required key\)$"):
        BenchConfig.from_dict({"testsets": [{"max_items": 2}], "systems": [{"kind": "ground_truth"}]})
    with pytest.raises(ConfigError, match=r"^suites\.wer: expected a table, got 1$"):
        BenchConfig.from_dict({"testsets": [{"name": "smoke"}], "suites": {"wer": 1}})
    with pytest.raises(ConfigError, match=r"^executor\.shard_items: expected an integer, got '8'$"):
        BenchConfig.from_dict({"testsets": [{"name": "smoke"}], "executor": {"shard_items": "8"}})
    with pytest.raises(FieldError, match=r"^x\.kind: expected a string, got 1$"):
        typed_fields(ExecutorConfig, {"kind": 1}, "x")


def test_history_without_runs_writes_an_empty_report(tmp_path, capsys):
    from bench.tracking import open_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_client(uri, create=True).search_experiments()  # an MLflow store that holds no benchmark run
    out = tmp_path / "history"
    assert main(["history", "--config", "smoke", "--branch", "main", "--tracking-uri", uri, "--out", str(out)]) == 0
    text = (out / "history.md").read_text()
    assert "# History: smoke (0 run(s))" in text
    assert "No runs of config smoke on branch main in this MLflow store" in text
    assert (out / "history.html").is_file() and (out / "history.csv").is_file()
    assert main(["history", "--config", "smoke", "--tracking-uri", uri, "--out", str(out), "--fail-on-departure"]) == 0
    capsys.readouterr()


def test_a_tracked_run_reads_as_its_name_id_and_store():
    run = TrackedRun("3f2a9c", {}, "sqlite:////tmp/out/mlflow.db", "1", name="smoke")
    assert run.describe() == "run 'smoke' (id 3f2a9c) at sqlite:////tmp/out/mlflow.db"
    server = TrackedRun("3f2a9c", {}, "http://mlflow:5000", "7", name="paper")
    assert server.describe() == (
        "run 'paper' (id 3f2a9c) at http://mlflow:5000; page: http://mlflow:5000/#/experiments/7/runs/3f2a9c"
    )
    assert TrackedRun("3f2a9c", {}, "sqlite:///x.db", "1").describe() == "run 3f2a9c at sqlite:///x.db"


def test_gate_inputs_fail_before_anything_is_generated(tiny, tmp_path, capsys):
    assert main([*tiny, "--gate", str(tmp_path / "no-such-run")]) == 2
    assert "--gate" in capsys.readouterr().err and not (tmp_path / "out").exists()
    bad = tmp_path / "gate.toml"
    bad.write_text("[gate]\nalpah = 0.1\n")
    assert main([*tiny, "--gate", "auto", "--gate-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flashspeech-bench: error: gate.alpah: unknown key (known: defaults, metrics, alpha,")
    assert " rules," not in err and "margin_notes" not in err and not (tmp_path / "out").exists()  # the gate's own
