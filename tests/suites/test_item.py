"""The item owns its audio (`load_prompt`, `load_target`) and its manifest line (`to_json`, `from_json`)."""

from __future__ import annotations

import numpy as np

from flashspeech.foundation.audio import read_audio, write_wav
from suites.base import Sample
from suites.item import EvalItem, ItemProblem

SR = 16_000


def test_prompt_and_target_load_at_a_rate_and_each_caller_gets_its_own_copy(tmp_path):
    t = np.arange(SR) / SR
    path = write_wav(tmp_path / "p.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    item = EvalItem("a", "Hi.", str(path), "s", target_audio=str(path), prompt_offset_s=0.25, prompt_duration_s=0.5)
    prompt = item.load_prompt(8_000)
    expected = read_audio(path, 8_000, offset_s=0.25, duration_s=0.5).samples
    assert np.array_equal(prompt, expected) and len(prompt) == 4_000
    prompt[:] = 0  # a system may change its copy
    assert np.array_equal(item.load_prompt(8_000), expected)
    assert np.array_equal(Sample(item, "sys", np.zeros(1, np.float32), SR).prompt_audio(8_000), expected)
    assert np.array_equal(item.load_target(SR), read_audio(path, SR).samples)
    assert EvalItem("b", "Hi.", str(path), "s").load_target(SR) is None


def test_from_json_reads_back_to_json_and_names_each_bad_field(tmp_path):
    path = write_wav(tmp_path / "p.wav", np.zeros(SR, np.float32), SR)
    item = EvalItem("a", "Hi.", str(path), "s", prompt_offset_s=0.5, meta={"k": 1})
    assert EvalItem.from_json(item.to_json(tmp_path), tmp_path) == (item, [])
    _, problems = EvalItem.from_json({"id": "x", "text": 3, "speaker": "s", "prompt_audio": "p.wav", "z": 1}, tmp_path)
    assert problems == [
        ItemProblem(
            "x",
            "z",
            "unknown field (known: id, text, prompt_audio, speaker, prompt_text, target_audio, "
            "prompt_offset_s, prompt_duration_s, meta, task, source_audio, source_speaker)",
        ),
        ItemProblem("x", "text", "wrong type: expected a string, got int"),
    ]
    assert EvalItem.from_json([], tmp_path) == (None, [ItemProblem(None, "<line>", "expected a JSON object, got list")])


def test_a_vc_item_round_trips_and_loads_its_source(tmp_path):
    t = np.arange(SR) / SR
    source = write_wav(tmp_path / "src.wav", (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), SR)
    prompt = write_wav(tmp_path / "p.wav", np.zeros(SR, np.float32), SR)
    item = EvalItem(
        "v", "Hi.", str(prompt), "target", task="vc", source_audio=str(source), source_speaker="src", target_audio=None
    )
    line = item.to_json(tmp_path)
    assert line["task"] == "vc" and line["source_audio"] == "src.wav" and line["source_speaker"] == "src"
    assert EvalItem.from_json(line, tmp_path) == (item, [])
    assert np.array_equal(item.load_source(8_000), read_audio(source, 8_000).samples)
    assert EvalItem("a", "Hi.", str(prompt), "s").load_source(SR) is None
    # a TTS line is written as before: no task, no source fields
    assert list(EvalItem("a", "Hi.", str(prompt), "s").to_json(tmp_path)) == [
        "id", "text", "speaker", "prompt_audio", "prompt_text", "target_audio"
    ]  # fmt: skip


def test_bad_vc_items_name_the_item_and_the_field(tmp_path):
    wav = write_wav(tmp_path / "p.wav", np.zeros(SR, np.float32), SR)
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    base = {"id": "v", "task": "vc", "text": "Hi.", "speaker": "t", "prompt_audio": wav.name}

    def problems(**changes):
        return [(p.item_id, p.field, p.message) for p in EvalItem.from_json({**base, **changes}, tmp_path)[1]]

    missing = problems()
    assert [(i, f) for i, f, _ in missing] == [("v", "source_audio"), ("v", "source_speaker")]
    assert all("missing required field for a vc item" in m for _, _, m in missing)
    same = problems(source_audio=wav.name, source_speaker="t")
    assert same == [("v", "source_speaker", "the source speaker is the target speaker 't': nothing to do")]
    unreadable = problems(source_audio="broken.wav", source_speaker="s")
    assert [(i, f) for i, f, _ in unreadable] == [("v", "source_audio")]
    gone = problems(source_audio="gone.wav", source_speaker="s")
    assert [(i, f) for i, f, _ in gone] == [("v", "source_audio")] and "gone.wav" in gone[0][2]
    assert problems(task="asr", source_audio=wav.name, source_speaker="s")[0][:2] == ("v", "task")
    tts = {k: v for k, v in base.items() if k != "task"}
    _, wrong = EvalItem.from_json({**tts, "source_audio": wav.name}, tmp_path)
    assert [(p.field, p.message) for p in wrong] == [
        ("source_audio", 'only a vc item has a source (add "task": "vc", or remove the field)')
    ]
