"""The real TTS engines behind the external-command adapter, and the request loop they share."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.systems import SystemConfig, SystemConfigError, build_systems
from bench.systems.engines import espeak, fingerprint_command, flite, hibari, piper
from bench.systems.engines.flite import FliteEngine
from bench.systems.engines.loop import Engine, serve
from bench.systems.engines.piper import PiperEngine, joe_voice
from bench.systems.external import ExternalSystem
from bench.testsets.embedded import EMBEDDED
from bench.testsets.manifest import load_manifest
from suites.rtf import stage_times

FLITE_MISSING = "the flite program is not installed (apt-get install flite)"


def _real_items(*ids: str):
    by_id = {item.id: item for item in load_manifest(EMBEDDED["real"].manifest_path(None)).items}
    return [by_id[i] for i in ids]


def _engine(name: str, *options: str) -> ExternalSystem:
    (system,) = build_systems(
        [
            SystemConfig.from_dict(
                {
                    "kind": "external",
                    "name": name,
                    "command": ["{python}", "-m", f"bench.systems.engines.{name}", *options, "{input}"],
                    "prompted": False,
                }
            )
        ],
        "cpu",
    )
    return system


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "piper",
        "hibari",
        "espeak",
        pytest.param("flite", marks=pytest.mark.skipif(shutil.which("flite") is None, reason=FLITE_MISSING)),
    ],
)
def test_engine_speaks_the_real_set(name):
    system = _engine(name)
    items = _real_items("real-cards_001", "real-librivox_0880")
    out = system.generate(items, [0, 1])
    for item, generated in zip(items, out, strict=True):
        assert generated.error is None, generated.error
        audio = generated.audio
        assert audio is not None and generated.sample_rate == 16_000 and np.isfinite(audio).all()
        assert float(np.sqrt(np.mean(audio**2))) > 1e-3  # not silent
        words, seconds = len(item.text.split()), len(audio) / 16_000
        assert 0.15 * words <= seconds <= 0.8 * words + 1.0, (item.text, seconds)
        assert set(generated.timings) == {"synthesis"} and generated.timings["synthesis"] > 0
        assert stage_times(generated.timings)[0] > 0  # the RTF suite can read it
        assert generated.meta["prompted"] is False


class _Flaky(Engine):
    """Speaks a tone, fails on texts containing "boom", and counts what it was asked."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def synthesize(self, text: str, seed: int) -> tuple[np.ndarray, int]:
        self.texts.append(text)
        if "boom" in text:
            raise RuntimeError("engine exploded")
        return 0.3 * np.sin(np.arange(8000) / 5.0), 8000


def _requests(tmp_path: Path, texts: list[str]) -> tuple[Path, list[Path]]:
    outputs = [tmp_path / f"{k}.wav" for k in range(len(texts))]
    lines = [
        json.dumps(
            {"id": f"i{k}", "text": t, "prompt_audio": "p.wav", "prompt_text": None, "seed": k, "output": str(o)}
        )
        for k, (t, o) in enumerate(zip(texts, outputs, strict=True))
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, outputs


def test_loop_fails_one_request_and_answers_the_others(tmp_path):
    path, outputs = _requests(tmp_path, ["one", "boom", "   ", "three"])
    engine = _Flaky()
    assert serve(path, lambda: engine) == 0  # every request answered: a non-zero status would fail the batch
    assert engine.texts[0] != "one"  # an untimed warm-up first
    for k in (0, 3):
        assert outputs[k].is_file()
        timings = json.loads(Path(f"{outputs[k]}.json").read_text())["timings"]
        assert set(timings) == {"synthesis"} and timings["synthesis"] > 0
    for k, reason in ((1, "RuntimeError: engine exploded"), (2, "no text to speak")):
        assert not outputs[k].exists()
        assert reason in json.loads(Path(f"{outputs[k]}.json").read_text())["error"]


def test_loop_exits_1_on_a_request_line_it_cannot_answer(tmp_path):
    path, outputs = _requests(tmp_path, ["one"])
    path.write_text(path.read_text() + "not json\n")
    assert serve(path, _Flaky) == 1  # the line names no output, so only the exit status can say it
    assert outputs[0].is_file()


def test_loop_reports_an_engine_that_does_not_load(tmp_path):
    path, outputs = _requests(tmp_path, ["one", "two"])

    def load() -> Engine:
        return FliteEngine(program="no-such-flite-program")

    assert serve(path, load) == 1
    for output in outputs:
        error = json.loads(Path(f"{output}.json").read_text())["error"]
        assert not output.exists() and "no-such-flite-program" in error and "apt-get install flite" in error


@pytest.mark.slow
def test_piper_restarts_after_a_text_it_crashes_on(tmp_path):
    path, outputs = _requests(tmp_path, ["...", "Fine again."])  # no phonemes: piper's command line crashes
    assert serve(path, lambda: PiperEngine(*joe_voice())) == 0
    assert "piper exited with status" in json.loads(Path(f"{outputs[0]}.json").read_text())["error"]
    assert outputs[1].is_file() and json.loads(Path(f"{outputs[1]}.json").read_text())["timings"]["synthesis"] > 0


@pytest.mark.slow
def test_missing_flite_fails_every_item_with_the_fix():
    system = _engine("flite", "--program", "no-such-flite-program")
    out = system.generate(_real_items("real-cards_001", "real-cards_002"), [0, 0])
    for generated in out:
        assert generated.audio is None
        assert "`no-such-flite-program` program is not on PATH" in generated.error
        assert "apt-get install flite" in generated.error


def test_fixed_voice_is_recorded_and_prompted_systems_are_unchanged():
    fixed = _engine("espeak")
    assert fixed.describe()["prompted"] is False and "ignores the prompt" in fixed.describe()["note"]
    # an engine states its fingerprint (`--fingerprint`) without a version_command
    version = fixed.describe()["fingerprint"]["version"]
    assert version.startswith("code ") and "; espeak-ng 1." in version and fixed.provenance_note() is None
    (prompted,) = build_systems([SystemConfig.from_dict({"kind": "external", "command": ["tts", "{input}"]})], "cpu")
    assert prompted.describe() == {"kind": "external", "command": ["tts", "{input}"], "sample_rate": 16_000}
    with pytest.raises(SystemConfigError, match="prompted: expected true or false, got 'no'"):
        SystemConfig.from_dict({"kind": "external", "command": ["tts"], "prompted": "no"})


@pytest.mark.skipif(shutil.which("flite") is None, reason=FLITE_MISSING)
def test_flite_segments_cover_its_audio():
    engine = FliteEngine("rms")
    try:
        audio, rate, segments = engine.synthesize_segments("Go forward ten meters.")
    finally:
        engine.close()
    labels = [label for label, _ in segments]
    assert labels[0] == labels[-1] == "pau" and {"g", "f", "t", "n", "m"} <= set(labels)
    ends = [end for _, end in segments]
    assert ends == sorted(ends) and abs(ends[-1] - len(audio) / rate) < 0.05


def test_fingerprint_command_recognises_engine_programs():
    command = ["{python}", "-m", "bench.systems.engines.espeak", "{input}", "--voice", "en-us"]
    printing = fingerprint_command(command)
    assert printing == ["{python}", "-m", "bench.systems.engines.espeak", "--fingerprint", "--voice", "en-us"]
    assert fingerprint_command(["{python}", "-m", "bench.systems.engines.loop", "{input}"]) is None  # no engine
    assert fingerprint_command(["{python}", "tts.py", "{input}"]) is None
    assert fingerprint_command(["{python}", "-m", "bench.systems.engines.piper"]) is None  # no {input} to replace


def test_engine_programs_print_their_fingerprint_or_need_a_request_file(capsys):
    assert espeak.run(["--voice", "en-us", "--fingerprint"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("code ") and "; espeak-ng 1." in line and "; espeakng-loader " in line
    with pytest.raises(SystemExit):
        espeak.run([])
    assert "the request file is required (or --fingerprint)" in capsys.readouterr().err


def test_engine_fingerprints_follow_their_voice_files(tmp_path):
    model, config = tmp_path / "voice.onnx", tmp_path / "voice.onnx.json"
    model.write_bytes(b"weights v1")
    config.write_text("{}")
    args = argparse.Namespace(model=model, config=None)
    first = piper.identify(args)
    assert "; piper-tts " in first and "; model " in first and "; config " in first
    model.write_bytes(b"weights v2")
    assert piper.identify(args) != first
    assert "voice unavailable (FileNotFoundError" in piper.identify(
        argparse.Namespace(model=tmp_path / "x", config=None)
    )
    # hibari's bundled voice hashes to the sha256 its registry lists; an unknown voice is reported, not raised
    assert "; voice heart 5f70741d4e900f4e" in hibari.identify(argparse.Namespace(voice="heart"))
    assert "voice nobody unavailable (ValueError" in hibari.identify(argparse.Namespace(voice="nobody"))
    assert "`no-such-flite` is not on PATH" in flite.identify(argparse.Namespace(program="no-such-flite"))
