"""Protocol loaders on small synthetic trees laid out like the real test sets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.testsets.manifest import Manifest, load_manifest
from bench.testsets.protocols import PROTOCOLS, LibriSpeechOptions, load_f5_librispeech_pc, load_librispeech
from bench.testsets.protocols.seedtts import load_seedtts
from flashspeech.foundation.audio import audio_info, read_audio, write_wav
from suites.item import EvalItem

SR = 16_000

# utterance id -> seconds. Targets are 4.0-10.0 s inclusive; prompts need >= 3.0 s.
UTTERANCES = {
    "19-198-0000": 2.0,
    "19-198-0001": 3.5,
    "19-198-0002": 4.0,  # lower edge: a target
    "19-198-0003": 6.0,
    "19-198-0004": 10.0,  # upper edge: a target
    "19-198-0005": 10.5,  # too long for a target, fine as a prompt source
    "84-121123-0000": 5.0,
    "84-121123-0001": 7.0,
    "84-121550-0000": 3.0,  # exactly prompt_s: a prompt source whose only clip starts at 0
    "84-121550-0001": 9.0,
    "1089-134686-0000": 5.0,  # its speaker has nothing else >= 3 s: no prompt
    "1089-134686-0001": 2.0,
}
TARGETS = [  # eligible targets in sorted id order
    "1089-134686-0000",
    "19-198-0002",
    "19-198-0003",
    "19-198-0004",
    "84-121123-0000",
    "84-121123-0001",
    "84-121550-0001",
]
NO_PROMPT = "1089-134686-0000"


def tone(seconds: float, freq: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def text_of(utt: str) -> str:
    return f"WORDS SPOKEN IN {utt.replace('-', ' ')}"


def flac_path(root: Path, utt: str) -> Path:
    spk, chapter, _ = utt.split("-")
    return root / spk / chapter / f"{utt}.flac"


def write_flac(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds), SR, format="FLAC")


def make_librispeech(root: Path, utterances: dict[str, float] = UTTERANCES, reverse: bool = False) -> Path:
    """Flacs plus one trans.txt per chapter; `reverse` creates files and writes lines in reverse order."""
    order = sorted(utterances, reverse=reverse)
    chapters: dict[Path, list[str]] = {}
    for utt in order:
        write_flac(flac_path(root, utt), utterances[utt])
        chapters.setdefault(flac_path(root, utt).parent, []).append(utt)
    for chapter_dir, utts in chapters.items():
        spk, chapter = chapter_dir.parent.name, chapter_dir.name
        lines = [f"{u} {text_of(u)}" for u in utts]
        (chapter_dir / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def relative(manifest: Manifest, root: Path) -> list[tuple]:
    """Items with paths relative to `root`, to compare manifests of different trees."""
    return [
        (
            i.id,
            i.text,
            i.speaker,
            Path(i.prompt_audio).relative_to(root.resolve()),
            i.prompt_offset_s,
            i.prompt_duration_s,
            Path(i.target_audio).relative_to(root.resolve()),
            i.meta,
        )
        for i in manifest.items
    ]


@pytest.fixture
def libri(tmp_path: Path) -> Path:
    return make_librispeech(tmp_path / "test-clean")


# ---- LibriSpeech cross-sentence ------------------------------------------------------------------------


def test_librispeech_keeps_targets_of_4_to_10_s_inclusive(libri: Path) -> None:
    m = load_librispeech(libri)
    assert m.name == "librispeech-test-clean"
    assert [i.id for i in m.items] == [t for t in TARGETS if t != NO_PROMPT]
    for item in m.items:
        assert item.text == text_of(item.id)
        assert item.speaker == item.id.split("-")[0]
        assert item.target_audio == str(flac_path(libri.resolve(), item.id))
        assert item.prompt_text is None
        assert item.meta["target_duration_s"] == UTTERANCES[item.id]
        assert item.meta["chapter"] == item.id.split("-")[1]


def test_librispeech_prompt_is_a_3s_clip_of_another_utterance_of_the_speaker(libri: Path) -> None:
    m = load_librispeech(libri)
    assert m.items
    for item in m.items:
        prompt_utt = item.meta["prompt_utt"]
        assert prompt_utt != item.id
        assert prompt_utt.split("-")[0] == item.speaker
        assert item.prompt_audio == str(flac_path(libri.resolve(), prompt_utt))
        assert UTTERANCES[prompt_utt] >= 3.0
        assert item.prompt_duration_s == 3.0
        assert item.prompt_offset_s == round(item.prompt_offset_s, 3)
        prompt_len = audio_info(item.prompt_audio).duration
        assert 0.0 <= item.prompt_offset_s <= prompt_len - 3.0
        clip = read_audio(item.prompt_audio, None, offset_s=item.prompt_offset_s, duration_s=3.0)
        assert len(clip.samples) == 3 * SR


def test_librispeech_prompt_source_of_exactly_prompt_s_is_cut_from_zero(libri: Path) -> None:
    chosen = [
        item
        for seed in range(40)
        for item in load_librispeech(libri, LibriSpeechOptions(seed=seed)).items
        if item.meta["prompt_utt"] == "84-121550-0000"
    ]
    assert chosen, "the 3.0 s utterance should win for some seed"
    assert all(item.prompt_offset_s == 0.0 for item in chosen)


def test_librispeech_no_prompt_available_is_a_problem(libri: Path) -> None:
    m = load_librispeech(libri)
    assert len(m.problems) == 1
    (p,) = m.problems
    assert (p.item_id, p.field, p.line) == (NO_PROMPT, "prompt_audio", 0)
    assert p.source == str(flac_path(libri.resolve(), NO_PROMPT))
    assert "no other utterance" in p.message


def test_librispeech_is_deterministic_per_seed(libri: Path) -> None:
    a = load_librispeech(libri, LibriSpeechOptions(seed=7))
    b = load_librispeech(libri, LibriSpeechOptions(seed=7))
    assert a.items == b.items
    c = load_librispeech(libri, LibriSpeechOptions(seed=8))
    assert [i.id for i in c.items] == [i.id for i in a.items]
    choices = [(i.meta["prompt_utt"], i.prompt_offset_s) for i in a.items]
    assert choices != [(i.meta["prompt_utt"], i.prompt_offset_s) for i in c.items]


def test_librispeech_ignores_listing_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forward = make_librispeech(tmp_path / "a")
    backward = make_librispeech(tmp_path / "b", reverse=True)  # reversed creation and transcript line order
    expected = relative(load_librispeech(forward), forward)
    real_glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: reversed(sorted(real_glob(self, pattern))))
    assert relative(load_librispeech(forward), forward) == expected
    assert relative(load_librispeech(backward), backward) == expected


def test_librispeech_unrelated_utterances_leave_other_items_alone(tmp_path: Path) -> None:
    def by_id(root: Path) -> dict[str, tuple]:
        return {row[0]: row for row in relative(load_librispeech(root), root)}

    before = by_id(make_librispeech(tmp_path / "base"))

    # a short utterance of a known speaker and a whole new speaker: nothing else may move
    extra = make_librispeech(
        tmp_path / "extra", {**UTTERANCES, "19-198-0006": 1.5, "200-300-0000": 6.0, "200-300-0001": 4.5}
    )
    after = by_id(extra)
    assert after.pop("200-300-0000") and after.pop("200-300-0001")
    assert after == before

    # a new long utterance of speaker 19 may only take over as a prompt, never reshuffle the others
    added = "19-198-0007"
    more = make_librispeech(tmp_path / "more", {**UTTERANCES, added: 8.0})
    after = by_id(more)
    assert after.pop(added)  # 8 s: a new target itself
    moved = [item_id for item_id in before if after[item_id] != before[item_id]]
    assert all(after[item_id][-1]["prompt_utt"] == added for item_id in moved)


def test_librispeech_every_nth_and_max_items(libri: Path) -> None:
    full = {i.id: i for i in load_librispeech(libri).items}

    nth = load_librispeech(libri, LibriSpeechOptions(every_nth=2))
    assert [i.id for i in nth.items] == ["19-198-0003", "84-121123-0000", "84-121550-0001"]  # TARGETS[::2]
    assert [p.item_id for p in nth.problems] == [NO_PROMPT]  # TARGETS[0]
    assert all(full[i.id] == i for i in nth.items)  # subsampling does not move prompts

    capped = load_librispeech(libri, LibriSpeechOptions(max_items=3))
    assert [i.id for i in capped.items] == ["19-198-0002", "19-198-0003"]
    assert [p.item_id for p in capped.problems] == [NO_PROMPT]

    both = load_librispeech(libri, LibriSpeechOptions(every_nth=3, max_items=2))
    assert [i.id for i in both.items] == ["19-198-0004"]  # TARGETS[0], TARGETS[3]


def test_librispeech_options_are_validated() -> None:
    for bad in ({"min_s": 5.0, "max_s": 4.0}, {"prompt_s": 0.0}, {"every_nth": 0}, {"max_items": -1}):
        with pytest.raises(ValueError):
            LibriSpeechOptions(**bad)


def test_librispeech_transcript_and_audio_problems(libri: Path) -> None:
    chapter = libri / "19" / "198"
    trans = chapter / "19-198.trans.txt"
    lines = trans.read_text(encoding="utf-8").splitlines()
    lines.insert(2, "19-198-0042 A LINE WITHOUT A FLAC")  # line 3
    lines.append("19-198-0001 A DUPLICATE LINE")  # line 8
    lines.append("19-198-0043")  # line 9: no text
    trans.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_flac(chapter / "19-198-0043.flac", 5.0)
    write_flac(chapter / "19-198-0044.flac", 5.0)  # no transcript line
    (chapter / "19-198-0003.flac").write_bytes(b"not a flac at all")  # unreadable target

    m = load_librispeech(libri)
    got = {(p.source, p.line, p.item_id, p.field) for p in m.problems}
    assert got == {
        (str(trans.resolve()), 3, "19-198-0042", "target_audio"),
        (str(trans.resolve()), 8, "19-198-0001", "id"),
        (str(trans.resolve()), 9, "19-198-0043", "text"),
        (str((chapter / "19-198-0044.flac").resolve()), 0, "19-198-0044", "text"),
        (str((chapter / "19-198-0003.flac").resolve()), 0, "19-198-0003", "target_audio"),
        (str(flac_path(libri.resolve(), NO_PROMPT)), 0, NO_PROMPT, "prompt_audio"),
    }
    ids = [i.id for i in m.items]
    assert ids == ["19-198-0002", "19-198-0004", "84-121123-0000", "84-121123-0001", "84-121550-0001"]
    assert all(i.meta["prompt_utt"] not in {"19-198-0003", "19-198-0043", "19-198-0044"} for i in m.items)


def test_librispeech_missing_root(tmp_path: Path) -> None:
    m = load_librispeech(tmp_path / "nowhere")
    assert not m.items
    assert [(p.field, p.line) for p in m.problems] == [("root", 0)]


# ---- F5-TTS LibriSpeech-PC -----------------------------------------------------------------------------


def f5_line(ref: str, gen: str, ref_dur: str = "3.5", gen_dur: str = "6.0", ref_text: str | None = None,
            gen_text: str | None = None) -> str:  # fmt: skip
    ref_text = f"Ref text of {ref}." if ref_text is None else ref_text
    gen_text = f"Gen text of {gen}." if gen_text is None else gen_text
    return "\t".join([ref, ref_dur, ref_text, gen, gen_dur, gen_text])


def test_f5_list_resolves_against_the_librispeech_root(libri: Path, tmp_path: Path) -> None:
    lst = tmp_path / "lists" / "librispeech_pc_test_clean_cross_sentence.lst"
    lst.parent.mkdir()
    header = "\t".join(["ref_utt", "ref_dur", "ref_text", "gen_utt", "gen_dur", "gen_text"])
    lines = [header, f5_line("19-198-0001", "19-198-0003"), f5_line("84-121550-0000", "84-121123-0001", "3")]
    lst.write_text("\n".join(lines) + "\n", encoding="utf-8")

    m = load_f5_librispeech_pc(lst, libri)
    assert m.ok, m.problems
    first, second = m.items
    assert first == EvalItem(
        id="19-198-0003",
        text="Gen text of 19-198-0003.",
        prompt_audio=str(flac_path(libri.resolve(), "19-198-0001")),
        speaker="19",
        prompt_text="Ref text of 19-198-0001.",
        target_audio=str(flac_path(libri.resolve(), "19-198-0003")),
        meta={"ref_utt": "19-198-0001", "ref_dur": 3.5, "gen_dur": 6.0},
    )
    assert second.prompt_audio == str(libri.resolve() / "84" / "121550" / "84-121550-0000.flac")
    assert second.meta["ref_dur"] == 3.0 and isinstance(second.meta["ref_dur"], float)
    assert (second.prompt_offset_s, second.prompt_duration_s) == (0.0, None)


def test_f5_list_problems_by_line_and_column(libri: Path, tmp_path: Path) -> None:
    (libri / "19" / "198" / "19-198-0099.flac").write_bytes(b"garbage")
    lines = [
        f5_line("19-198-0001", "19-198-0003"),  # 1 ok
        "19-198-0001\t3.5\tRef.\t19-198-0004\t10.0",  # 2 five fields
        f5_line("19-198-0001", "19-198-0004", ref_dur="three"),  # 3
        f5_line("19-198-0001", "19-198-0004", gen_dur="nan"),  # 4
        f5_line("19-198-0001", "19-198-0004", gen_text=" "),  # 5
        "",  # 6 blank: skipped, still counted
        f5_line("19-198-0001", "19-198-0004", ref_text=""),  # 7
        f5_line("19-198-0001", "19-198-0077"),  # 8 missing flac
        f5_line("19-198-0099", "19-198-0004"),  # 9 unreadable flac
        f5_line("84-121123-0000", "19-198-0004"),  # 10 different speakers
        f5_line("19-198", "19-198-0004"),  # 11 malformed id
        f5_line("19-198-0001", "19-198-0078", gen_dur="x"),  # 12 two problems on one line
        f5_line("19-198-0005", "19-198-0003"),  # 13 duplicate of line 1's gen_utt
        f5_line("19-198-0001", "19-198-0002"),  # 14 ok
    ]
    lst = tmp_path / "cross.lst"
    lst.write_text("\n".join(lines) + "\n", encoding="utf-8")

    m = load_f5_librispeech_pc(lst, libri)
    assert [i.id for i in m.items] == ["19-198-0003", "19-198-0002"]
    got = [(p.line, p.field) for p in m.problems]
    assert got == [
        (2, "<line>"),
        (3, "ref_dur"),
        (4, "gen_dur"),
        (5, "gen_text"),
        (7, "ref_text"),
        (8, "gen_utt"),
        (9, "ref_utt"),
        (10, "speaker"),
        (11, "ref_utt"),
        (12, "gen_dur"),
        (12, "gen_utt"),
        (13, "gen_utt"),
    ]
    assert all(p.source == str(lst) for p in m.problems)
    by_line = {p.line: p for p in m.problems}
    assert "got 5" in by_line[2].message
    assert "file not found" in by_line[8].message
    assert "unreadable" in by_line[9].message
    assert "84" in by_line[10].message and "19" in by_line[10].message
    assert "duplicate" in by_line[13].message


def test_f5_list_with_missing_root(tmp_path: Path) -> None:
    lst = tmp_path / "cross.lst"
    lst.write_text(f5_line("19-198-0001", "19-198-0003") + "\n", encoding="utf-8")
    m = load_f5_librispeech_pc(lst, tmp_path / "no-root")
    assert not m.items
    assert [(p.line, p.field) for p in m.problems] == [(0, "librispeech_root")]
    with pytest.raises(FileNotFoundError):
        load_f5_librispeech_pc(tmp_path / "no.lst", tmp_path)


# ---- seed-tts-eval -------------------------------------------------------------------------------------


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    en = tmp_path / "seedtts_testset" / "en"
    write_wav(en / "prompt-wavs" / "spk_a.wav", tone(3.0), SR)
    write_wav(en / "prompt-wavs" / "spk_b.wav", tone(4.0), SR)
    write_wav(en / "wavs" / "u2.wav", tone(5.0), SR)
    write_wav(tmp_path / "elsewhere" / "spk_c.wav", tone(3.0), SR)
    return en


def test_seedtts_four_and_five_fields_and_relative_paths(
    seed_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = tmp_path / "elsewhere" / "spk_c.wav"
    lines = [
        "u1|Prompt one.|prompt-wavs/spk_a.wav|Target one.",
        "u2|Prompt two.|prompt-wavs/spk_b.wav|Target two.|wavs/u2.wav",
        f"u3|Prompt three.|{absolute}|Target three.|",
    ]
    (seed_dir / "meta.lst").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # paths resolve against meta.lst's folder, not the working directory

    m = load_seedtts(Path(os.path.relpath(seed_dir / "meta.lst", tmp_path)))
    assert m.ok, m.problems
    assert m.name == "seedtts-en"
    u1, u2, u3 = m.items
    assert u1 == EvalItem(
        id="u1",
        text="Target one.",
        prompt_audio=str((seed_dir / "prompt-wavs" / "spk_a.wav").resolve()),
        speaker="spk_a",
        prompt_text="Prompt one.",
        target_audio=None,
    )
    assert u2.target_audio == str((seed_dir / "wavs" / "u2.wav").resolve())
    assert u2.speaker == "spk_b"
    assert (u3.prompt_audio, u3.speaker, u3.target_audio) == (str(absolute), "spk_c", None)


def test_seedtts_problems(seed_dir: Path) -> None:
    lines = [
        "u1|Prompt one.|prompt-wavs/spk_a.wav|Target one.",  # 1 ok
        "u2|Prompt|with a bar.|prompt-wavs/spk_a.wav|Target two.|wavs/u2.wav",  # 2 six fields
        "u3|Prompt three.|prompt-wavs/spk_a.wav",  # 3 three fields
        "u4|Prompt four.|prompt-wavs/missing.wav|Target four.",  # 4
        "u5|Prompt five.|prompt-wavs/spk_a.wav|Target five.|wavs/missing.wav",  # 5
        "u6|Prompt six.||Target six.",  # 6 empty prompt wav
        "u7|Prompt seven.|prompt-wavs/spk_b.wav| ",  # 7 empty target text
    ]
    meta = seed_dir / "hardcase.lst"
    meta.write_text("\n".join(lines) + "\n", encoding="utf-8")

    m = load_seedtts(meta)
    assert m.name == "seedtts-en-hardcase"
    assert [i.id for i in m.items] == ["u1"]
    assert [(p.line, p.item_id, p.field) for p in m.problems] == [
        (2, "u2", "<line>"),
        (3, "u3", "<line>"),
        (4, "u4", "prompt_wav"),
        (5, "u5", "gt_wav"),
        (6, "u6", "prompt_wav"),
        (7, "u7", "target_text"),
    ]
    bad_count = m.problems[0].message
    assert "got 6" in bad_count and "'|' inside a text cannot be represented" in bad_count
    assert "got 3" in m.problems[1].message
    with pytest.raises(FileNotFoundError):
        load_seedtts(seed_dir / "none.lst")


# ---- all protocols -------------------------------------------------------------------------------------


def test_registry_names_the_loaders() -> None:
    assert {
        "librispeech": load_librispeech,
        "f5-librispeech-pc": load_f5_librispeech_pc,
        "seedtts": load_seedtts,
    } == PROTOCOLS


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_round_trip_through_a_manifest_file(protocol: str, libri: Path, seed_dir: Path, tmp_path: Path) -> None:
    if protocol == "librispeech":
        manifest = load_librispeech(libri)
    elif protocol == "f5-librispeech-pc":
        lst = tmp_path / "cross.lst"
        lst.write_text(f5_line("19-198-0001", "19-198-0003") + "\n" + f5_line("84-121550-0000", "84-121123-0001"))
        manifest = load_f5_librispeech_pc(lst, libri)
    else:
        (seed_dir / "meta.lst").write_text(
            "u1|P.|prompt-wavs/spk_a.wav|T.\nu2|P.|prompt-wavs/spk_b.wav|T.|wavs/u2.wav\n"
        )
        manifest = load_seedtts(seed_dir / "meta.lst")
    assert len(manifest.items) >= 2
    path = manifest.write(tmp_path / "out" / f"{protocol}.jsonl")
    back = load_manifest(path)
    assert back.ok, back.problems
    assert back.items == manifest.items
    written = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
    assert not Path(written["prompt_audio"]).is_absolute()  # relative: the pair survives moving the tree


def test_librispeech_one_folder_too_high_names_the_subsets_and_fails_the_import(libri: Path, capsys) -> None:
    from bench.cli import main

    parent = libri.parent  # LibriSpeech/ instead of LibriSpeech/test-clean
    manifest = load_librispeech(parent)
    assert len(manifest) == 0 and len(manifest.problems) == 1
    assert "it holds the subsets test-clean: pass one of those" in manifest.problems[0].message
    empty = parent / "empty"
    empty.mkdir()
    assert "no LibriSpeech utterances under it" in load_librispeech(empty).problems[0].message
    out = parent / "ls.jsonl"
    assert main(["data", "import", "librispeech", str(parent), "-o", str(out)]) == 1  # not only with --strict
    assert "no items imported" in capsys.readouterr().err
    assert main(["data", "import", "librispeech", str(libri), "-o", str(out), "--partial"]) == 0
