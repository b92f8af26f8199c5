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
            "prompt_offset_s, prompt_duration_s, meta)",
        ),
        ItemProblem("x", "text", "wrong type: expected a string, got int"),
    ]
    assert EvalItem.from_json([], tmp_path) == (None, [ItemProblem(None, "<line>", "expected a JSON object, got list")])
