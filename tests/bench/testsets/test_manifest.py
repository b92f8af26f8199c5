"""The JSONL manifest: loading, every problem reported in one pass with line/item/field, round trips."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.testsets.manifest import Manifest, ManifestError, load_manifest, write_manifest
from flashspeech.foundation.audio import read_audio, write_wav
from suites.item import EvalItem

SR = 16_000


def make_wav(path: Path, seconds: float = 1.0, freq: float = 220.0) -> Path:
    t = np.arange(round(seconds * SR)) / SR
    return write_wav(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)


def write_lines(path: Path, lines: list[object]) -> Path:
    """Dicts/lists become JSON; strings are written as they are (bad JSON, blank lines)."""
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def row(item_id: str, **fields: object) -> dict[str, object]:
    out: dict[str, object] = {"id": item_id, "text": f"Text of {item_id}.", "speaker": "spk", "prompt_audio": "p.wav"}
    out.update(fields)
    return out


@pytest.fixture
def audio_dir(tmp_path) -> Path:
    """p.wav (1 s), t.wav (1.5 s), garbage.wav (not audio), empty.wav (valid header, 0 frames)."""
    d = tmp_path / "set"
    make_wav(d / "p.wav", 1.0)
    make_wav(d / "t.wav", 1.5, freq=330.0)
    (d / "garbage.wav").write_bytes(b"definitely not audio" * 10)
    sf.write(d / "empty.wav", np.zeros(0, dtype=np.float32), SR)
    return d


# --- valid files ------------------------------------------------------------------------------------------------------


def test_valid_manifest_loads(audio_dir, tmp_path):
    elsewhere = make_wav(tmp_path / "abs" / "other.wav", 2.0)
    path = write_lines(
        audio_dir / "test.jsonl",
        [
            row("a", text="  Hello there.  ", target_audio="t.wav"),
            row(
                "b",
                prompt_audio=str(elsewhere),
                prompt_text="Some prompt.",
                prompt_offset_s=0.5,
                prompt_duration_s=1.25,
                meta={"target_duration_s": 1.5},
            ),
            row("c", prompt_text=None, target_audio=None, prompt_duration_s=None),
            row("d", prompt_audio="t.wav", prompt_offset_s=1, prompt_duration_s=0.5, speaker="other"),  # ints ok
        ],
    )

    m = load_manifest(path)

    assert m.ok and m.problems == []
    assert m.name == "test" and m.source == str(path)
    assert [i.id for i in m.items] == ["a", "b", "c", "d"] and len(m) == 4
    a, b, c, d = m.items
    assert a == EvalItem(
        id="a",
        text="Hello there.",  # stripped
        prompt_audio=str((audio_dir / "p.wav").resolve()),
        speaker="spk",
        target_audio=str((audio_dir / "t.wav").resolve()),
    )
    # defaults of the optional fields
    assert (a.prompt_text, a.prompt_offset_s, a.prompt_duration_s, a.meta) == (None, 0.0, None, {})
    assert b.prompt_audio == str(elsewhere)  # absolute paths are kept
    assert (b.prompt_text, b.prompt_offset_s, b.prompt_duration_s) == ("Some prompt.", 0.5, 1.25)
    assert b.meta == {"target_duration_s": 1.5} and b.target_audio is None
    assert (c.prompt_text, c.target_audio, c.prompt_duration_s) == (None, None, None)
    assert isinstance(d.prompt_offset_s, float) and (d.prompt_offset_s, d.prompt_duration_s) == (1.0, 0.5)
    assert d.speaker == "other"
    assert m.raise_for_problems() is m


def test_relative_paths_resolve_against_manifest_dir_not_cwd(audio_dir, tmp_path, monkeypatch):
    sub = audio_dir / "lists"
    sub.mkdir()
    path = write_lines(sub / "m.jsonl", [row("a", prompt_audio="../p.wav", target_audio="../t.wav")])
    monkeypatch.chdir(tmp_path)  # somewhere else entirely

    m = load_manifest(path).raise_for_problems()

    assert m.items[0].prompt_audio == str((audio_dir / "p.wav").resolve())
    assert m.items[0].target_audio == str((audio_dir / "t.wav").resolve())


def test_name_argument_and_missing_manifest(audio_dir):
    path = write_lines(audio_dir / "m.jsonl", [row("a")])
    assert load_manifest(path, name="custom").name == "custom"
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        load_manifest(audio_dir / "nope.jsonl")


# --- every problem in one pass ----------------------------------------------------------------------------------------

# (line, item id, field, text the message must contain); line numbers count the blank line 2.
BAD_LINES: list[tuple[object, list[tuple[str | None, str, str]]]] = [
    (row("ok1", target_audio="t.wav"), []),  # 1
    ("", []),  # 2 blank
    ('{"id": "j1", "text": ', [(None, "<line>", "invalid JSON")]),  # 3
    ('["not", "an", "object"]', [(None, "<line>", "expected a JSON object, got list")]),  # 4
    ({"id": "m1", "speaker": "spk", "prompt_audio": "p.wav"}, [("m1", "text", "missing required field")]),  # 5
    (row("e1", text="   \t "), [("e1", "text", "empty text")]),  # 6
    (row("n1", text=42), [("n1", "text", "wrong type: expected a string, got int")]),  # 7
    (row("s1", speaker=["a", "b"]), [("s1", "speaker", "wrong type: expected a string, got list")]),  # 8
    (row("f1", prompt_audio="missing.wav"), [("f1", "prompt_audio", "file not found")]),  # 9
    (row("g1", prompt_audio="garbage.wav"), [("g1", "prompt_audio", "unreadable audio")]),  # 10
    (row("z1", prompt_audio="empty.wav"), [("z1", "prompt_audio", "empty audio")]),  # 11
    (row("t1", target_audio="no_target.flac"), [("t1", "target_audio", "file not found")]),  # 12
    (row("o1", prompt_offset_s=-0.5), [("o1", "prompt_offset_s", "expected a number >= 0")]),  # 13
    (row("c1", prompt_offset_s=0.5, prompt_duration_s=1.0), [("c1", "prompt_duration_s", "clip ends at 1.500s")]),  # 14
    (
        {"id": "u1", "text": "Hi.", "speaker": "spk", "prompt_wav": "p.wav"},  # 15: a misspelt field
        [("u1", "prompt_wav", "unknown field"), ("u1", "prompt_audio", "missing required field")],
    ),
    (row("ok2", prompt_text=None), []),  # 16
    (row("ok1", text="Same id again."), [("ok1", "id", "duplicate id (first on line 1)")]),  # 17
    (
        {"text": "No id.", "speaker": 7, "prompt_audio": "p.wav", "meta": [1]},  # 18: several problems, no id
        [(None, "id", "missing required field"), (None, "speaker", "wrong type"), (None, "meta", "wrong type")],
    ),
    (row("pt1", prompt_text="  "), [("pt1", "prompt_text", "empty text")]),  # 19
    (row("d1", prompt_duration_s=0), [("d1", "prompt_duration_s", "expected a number > 0 or null")]),  # 20
    (row("b1", prompt_offset_s=True), [("b1", "prompt_offset_s", "expected a number >= 0")]),  # 21: bool is no number
    (  # 22: Python's json reads NaN and Infinity
        '{"id": "nan1", "text": "x", "speaker": "s", "prompt_audio": "p.wav", "prompt_offset_s": NaN}',
        [("nan1", "prompt_offset_s", "expected a number >= 0, got nan")],
    ),
    (  # 23
        '{"id": "inf1", "text": "x", "speaker": "s", "prompt_audio": "p.wav", "prompt_duration_s": Infinity}',
        [("inf1", "prompt_duration_s", "expected a number > 0 or null, got inf")],
    ),
    (row("ok3", prompt_offset_s=0.25, prompt_duration_s=0.75), []),  # 24: ends exactly at the end
]


@pytest.fixture
def bad_manifest(audio_dir) -> Path:
    return write_lines(audio_dir / "bad.jsonl", [line for line, _ in BAD_LINES])


def expected_problems(check_audio: bool = True) -> list[tuple[int, str | None, str, str]]:
    out = []
    for line_no, (_, problems) in enumerate(BAD_LINES, start=1):
        for item_id, fld, text in problems:
            is_audio = fld in {"prompt_audio", "target_audio"} and "missing required" not in text
            is_audio |= text.startswith("clip ends")
            if check_audio or not is_audio:
                out.append((line_no, item_id, fld, text))
    return out


def test_every_problem_reported_in_one_pass(bad_manifest):
    m = load_manifest(bad_manifest)

    expected = expected_problems()
    got = [(p.line, p.item_id, p.field) for p in m.problems]
    assert sorted(got, key=str) == sorted([e[:3] for e in expected], key=str)
    assert len(got) == len(expected)  # each problem once
    assert [p.line for p in m.problems] == sorted(p.line for p in m.problems)  # in file order

    by_key = {(p.line, p.field): p for p in m.problems}
    for line_no, item_id, fld, text in expected:
        problem = by_key[(line_no, fld)]
        assert text in problem.message, (line_no, fld, problem.message)
        assert problem.source == str(bad_manifest)
        rendered = str(problem)
        assert f"{bad_manifest}:{line_no} " in rendered
        assert repr(fld) in rendered and text in rendered
        if item_id is not None:
            assert f"item {item_id!r}" in rendered
        else:
            assert " item " not in rendered

    # audio problems name the offending file
    assert str((bad_manifest.parent / "missing.wav").resolve()) in by_key[(9, "prompt_audio")].message
    assert str((bad_manifest.parent / "garbage.wav").resolve()) in by_key[(10, "prompt_audio")].message
    assert str((bad_manifest.parent / "no_target.flac").resolve()) in by_key[(12, "target_audio")].message

    # the valid lines are kept, in order; the duplicate does not replace the first ok1
    assert [(i.id, i.text) for i in m.items] == [
        ("ok1", "Text of ok1."),
        ("ok2", "Text of ok2."),
        ("ok3", "Text of ok3."),
    ]
    assert not m.ok


def test_raise_for_problems_lists_all(bad_manifest):
    m = load_manifest(bad_manifest)
    with pytest.raises(ManifestError) as exc:
        m.raise_for_problems()
    message = str(exc.value)
    assert message.startswith(f"{len(m.problems)} problem(s) in the test set:")
    for problem in m.problems:
        assert str(problem) in message
    assert exc.value.problems == m.problems
    assert isinstance(exc.value, ValueError)


def test_check_audio_false_skips_file_checks_only(bad_manifest):
    m = load_manifest(bad_manifest, check_audio=False)

    expected = expected_problems(check_audio=False)
    assert sorted(((p.line, p.item_id, p.field) for p in m.problems), key=str) == sorted(
        [e[:3] for e in expected], key=str
    )
    # the lines whose only problems were in the audio files are now items
    assert [i.id for i in m.items] == ["ok1", "f1", "g1", "z1", "t1", "c1", "ok2", "ok3"]
    assert m.items[1].prompt_audio == str((bad_manifest.parent / "missing.wav").resolve())


def test_blank_lines_ignored_but_counted(audio_dir):
    path = audio_dir / "blank.jsonl"
    path.write_text(
        "\n   \n" + json.dumps(row("a")) + "\n\t\n\n" + json.dumps(row("b", text="")) + "\n\n",
        encoding="utf-8",
    )

    m = load_manifest(path)

    assert [i.id for i in m.items] == ["a"]
    assert [(p.line, p.item_id, p.field) for p in m.problems] == [(6, "b", "text")]
    assert f"{path}:6 " in str(m.problems[0])


def test_empty_manifest_is_clean(audio_dir):
    path = audio_dir / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    m = load_manifest(path)
    assert m.items == [] and m.problems == [] and m.raise_for_problems() is m


# --- prompt clip bounds agree with read_audio ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "duration", "ok"),
    [
        (0.0, 1.0, True),  # the whole file
        (0.9999, None, True),  # the last sample
        (1.0, None, False),  # starts at the end
        (0.0, 1.00005, True),  # rounds to one sample past the end: read_audio accepts it
        (0.0, 1.0005, False),  # 8 samples past the end: read_audio refuses it
        (0.5, 0.5004, False),
    ],
)
def test_valid_prompt_clips_are_readable(audio_dir, offset, duration, ok):
    fields: dict[str, object] = {"prompt_offset_s": offset}
    if duration is not None:
        fields["prompt_duration_s"] = duration
    m = load_manifest(write_lines(audio_dir / "clip.jsonl", [row("a", **fields)]))

    assert m.ok is ok, m.problems
    if ok:
        item = m.items[0]
        clip = read_audio(item.prompt_audio, offset_s=item.prompt_offset_s, duration_s=item.prompt_duration_s)
        assert len(clip.samples) > 0
    else:
        assert [(p.line, p.field) for p in m.problems] == [(1, "prompt_duration_s")]
        assert "audio lasts 1.000s" in m.problems[0].message


# --- writing ----------------------------------------------------------------------------------------------------------


def test_write_then_load_round_trip(audio_dir, tmp_path):
    source = write_lines(
        audio_dir / "src.jsonl",
        [
            row("a", target_audio="t.wav", prompt_text="Prompt words.", meta={"k": [1, 2], "é": "ü"}),
            row("b", text="Ünïcode — text.", prompt_offset_s=0.25, prompt_duration_s=0.5),
            row("c", speaker="x"),
        ],
    )
    items = load_manifest(source).raise_for_problems().items
    out = tmp_path / "elsewhere" / "deep" / "out.jsonl"

    written = write_manifest(items, out)

    assert written == out
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["out.jsonl"]  # no temp files left
    raw = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in raw] == ["a", "b", "c"]
    for r in raw:
        assert not Path(r["prompt_audio"]).is_absolute()
        assert r["prompt_audio"] == str(Path("..", "..", "set", "p.wav"))
    assert raw[0]["target_audio"] == str(Path("..", "..", "set", "t.wav"))
    assert "Ünïcode — text." in out.read_text(encoding="utf-8")  # not \u-escaped
    assert "prompt_offset_s" not in raw[0] and raw[1]["prompt_offset_s"] == 0.25

    again = load_manifest(out)
    assert again.ok
    assert again.items == items


def test_manifest_write_method_and_absolute_paths(audio_dir, tmp_path):
    items = load_manifest(write_lines(audio_dir / "src.jsonl", [row("a")])).items
    out = Manifest(name="x", items=items).write(tmp_path / "m.jsonl")
    assert load_manifest(out).items == items

    absolute = write_manifest(items, tmp_path / "abs.jsonl", relative=False)
    raw = json.loads(absolute.read_text(encoding="utf-8"))
    assert raw["prompt_audio"] == items[0].prompt_audio and Path(raw["prompt_audio"]).is_absolute()
    assert load_manifest(absolute).items == items


def test_write_empty_manifest(tmp_path):
    out = write_manifest([], tmp_path / "none.jsonl")
    assert out.read_text() == ""
    assert load_manifest(out).items == []


def test_a_test_set_has_one_task(audio_dir):
    """A vc line in a TTS set (or the reverse) is a problem naming the item and the set's first item."""
    vc = {"task": "vc", "source_audio": "t.wav", "source_speaker": "other"}
    path = write_lines(audio_dir / "mixed.jsonl", [row("a"), row("b", **vc), row("c")])
    manifest = load_manifest(path)
    assert manifest.task == "tts" and [i.id for i in manifest.items] == ["a", "c"]
    [problem] = manifest.problems
    assert (problem.line, problem.item_id, problem.field) == (2, "b", "task")
    assert "task 'vc' in a tts test set (item 'a' on line 1" in problem.message
    vc_set = load_manifest(write_lines(audio_dir / "vc.jsonl", [row("b", **vc)]))
    assert vc_set.ok and vc_set.task == "vc" and vc_set.items[0].source_speaker == "other"
