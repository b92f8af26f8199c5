"""The `flashspeech-bench` command line (called in-process, and once as `python -m bench`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cli import main
from bench.testsets.manifest import load_manifest
from flashspeech.foundation.audio import write_wav


def _sine(path, seconds=1.0, sr=16000):
    t = [i / sr for i in range(int(seconds * sr))]
    import numpy as np

    return write_wav(path, 0.3 * np.sin(2 * np.pi * 220 * np.asarray(t)), sr)


def test_python_dash_m_bench_version():
    out = subprocess.run([sys.executable, "-m", "bench", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("flashspeech-bench ")


def test_data_list_shows_tiers_licences_and_sets(tmp_path, capsys):
    assert main(["data", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines()]
    sets = {line.split()[0]: line.split() for line in lines[lines.index("test sets") + 2 :] if line}
    assert sets["real"][1:3] == ["12", "3"] and sets["smoke"][1:3] == ["16", "2"]  # items, speakers
    assert sets["smoke-seen"][1:3] == ["16", "4"]
    assert sets["gate"][1:3] == ["40", "2"] and sets["gate-seen"][1:3] == ["40", "4"]  # the nightly gate's sets
    assert "not built yet" in out and "data synth" in out  # the espeak set, in an empty cache
    for tier in ("natural", "espeak", "real"):
        assert any(line.startswith(f"{tier} ") for line in lines), tier
    assert "held-out voices: flite-awb, hibari-heart" in out and "Apache-2.0" in out and "BSD-2-Clause" in out


def test_data_validate_reports_problems_with_lines(tmp_path, capsys):
    _sine(tmp_path / "p.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"id": "a", "text": "Hello.", "speaker": "s", "prompt_audio": "p.wav"}\n'
        '{"id": "b", "text": "", "speaker": "s", "prompt_audio": "missing.wav"}\n'
    )
    assert main(["data", "validate", str(manifest)]) == 1
    captured = capsys.readouterr()
    assert "1 valid items, 2 problem(s)" in captured.out
    assert f"{manifest}:2 item 'b' field 'text': empty text" in captured.err
    assert "missing.wav: file not found" in captured.err


def test_data_import_seedtts(tmp_path, capsys):
    _sine(tmp_path / "prompt.wav")
    _sine(tmp_path / "gt.wav")
    meta = tmp_path / "meta.lst"
    meta.write_text("u1|Prompt words.|prompt.wav|Say this.|gt.wav\nu2|only|three\n")
    out = tmp_path / "out.jsonl"
    assert main(["data", "import", "seedtts", str(meta), "-o", str(out)]) == 0
    assert "1 items, 1 problem(s)" in capsys.readouterr().out
    manifest = load_manifest(out)
    assert [i.id for i in manifest.items] == ["u1"] and manifest.ok
    assert main(["data", "import", "seedtts", str(meta), "-o", str(out), "--strict"]) == 1


def test_data_synth_small_corpus(tmp_path, capsys):
    args = ["data", "synth", "--cache-dir", str(tmp_path), "--voices", "m1", "--max-sentences", "2", "--quiet"]
    assert main(args) == 0
    assert "corpus: 2 utterances, 1 voices" in capsys.readouterr().out


def test_data_phonemize(capsys):
    assert main(["data", "phonemize", "cat"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "k ˈæ t _"


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2


def test_run_executor_flags_reach_the_config(monkeypatch):
    import bench.run

    seen = []

    def stop(config, progress=True):
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(bench.run, "run_benchmark", stop)
    with pytest.raises(SystemExit):
        main(["run", "--executor", "ray", "--ray-address", "auto", "--quiet"])
    assert seen[0].executor.kind == "ray" and seen[0].executor.address == "auto"
    with pytest.raises(SystemExit):
        main(["run", "--quiet"])
    assert seen[1].executor.kind == "local" and seen[1].executor.address is None
