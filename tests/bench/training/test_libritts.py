"""LibriTTS-style directories with TextGrid alignments -> TrainingUtterances (tiny fixtures in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.training.libritts import libritts_utterances, summarize
from bench.training.phones import (
    ARPABET_CONSONANTS,
    ARPABET_VOWELS,
    AlignmentError,
    alignment_phonemes,
    phone_symbols,
)
from bench.training.textgrid import Interval, TextGridError, parse_textgrid
from flashspeech.text.phonemes import BOS, EOS, PAUSE, PhonemeVocab

Tier = list[tuple[float, float, str]]


@pytest.fixture(scope="module")
def vocab() -> PhonemeVocab:
    return PhonemeVocab.load()


def _q(label: str) -> str:
    return '"' + label.replace('"', '""') + '"'


def long_textgrid(tiers: dict[str, Tier], points: dict[str, list[tuple[float, str]]] | None = None) -> str:
    """A Praat long-format TextGrid ("ooTextFile" with xmin = / intervals [i]: lines)."""
    points = points or {}
    xmax = max(t[-1][1] for t in tiers.values())
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ", f"xmax = {xmax} "]
    lines += ["tiers? <exists> ", f"size = {len(tiers) + len(points)} ", "item []: "]
    k = 0
    for name, intervals in tiers.items():
        k += 1
        lines += [f"    item [{k}]:", '        class = "IntervalTier" ', f"        name = {_q(name)} "]
        lines += ["        xmin = 0 ", f"        xmax = {xmax} ", f"        intervals: size = {len(intervals)} "]
        for i, (a, b, label) in enumerate(intervals, 1):
            lines += [f"        intervals [{i}]:", f"            xmin = {a} ", f"            xmax = {b} "]
            lines += [f"            text = {_q(label)} "]
    for name, pts in points.items():
        k += 1
        lines += [f"    item [{k}]:", '        class = "TextTier" ', f"        name = {_q(name)} "]
        lines += ["        xmin = 0 ", f"        xmax = {xmax} ", f"        points: size = {len(pts)} "]
        for i, (t, mark) in enumerate(pts, 1):
            lines += [f"        points [{i}]:", f"            number = {t} ", f"            mark = {_q(mark)} "]
    return "\n".join(lines) + "\n"


def short_textgrid(tiers: dict[str, Tier]) -> str:
    """The same content in Praat's short format (values only, one per line)."""
    xmax = max(t[-1][1] for t in tiers.values())
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", str(xmax), "<exists>", str(len(tiers))]
    for name, intervals in tiers.items():
        lines += ['"IntervalTier"', _q(name), "0", str(xmax), str(len(intervals))]
        for a, b, label in intervals:
            lines += [str(a), str(b), _q(label)]
    return "\n".join(lines) + "\n"


HELLO: Tier = [
    (0, 0.3, ""),
    (0.3, 0.4, "HH"),
    (0.4, 0.5, "AH0"),
    (0.5, 0.6, "sil"),
    (0.6, 0.65, "sp"),
    (0.65, 0.8, "L"),
    (0.8, 1.0, "OW1"),
    (1.0, 1.3, ""),
]
HELLO_WORDS: Tier = [(0, 0.3, ""), (0.3, 0.5, "hello"), (0.5, 0.65, ""), (0.65, 1.0, 'say "lo"'), (1.0, 1.3, "")]


def test_long_and_short_formats_parse_alike(tmp_path: Path) -> None:
    tiers = {"words": HELLO_WORDS, "phones": HELLO}
    long_path = tmp_path / "long.TextGrid"
    long_path.write_text(long_textgrid(tiers, points={"tones": [(0.4, "H*")]}), encoding="utf-8")
    short_path = tmp_path / "short.TextGrid"
    short_path.write_text(short_textgrid(tiers), encoding="utf-16")  # Praat writes UTF-16 with a BOM

    parsed = parse_textgrid(long_path)
    assert parsed == parse_textgrid(short_path) == parse_textgrid(short_textgrid(tiers))
    assert list(parsed) == ["words", "phones"]  # the point tier is skipped
    assert parsed["phones"] == [Interval(float(a), float(b), label) for a, b, label in HELLO]
    assert parsed["words"][3].label == 'say "lo"'


def test_malformed_textgrid_names_file_and_line(tmp_path: Path) -> None:
    text = long_textgrid({"phones": HELLO})
    lines = text.splitlines()
    bad_line = next(i for i, line in enumerate(lines) if "xmax = 0.5" in line)
    lines[bad_line] = "            xmax = oops "
    path = tmp_path / "bad.TextGrid"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(TextGridError, match=rf"bad\.TextGrid:{bad_line + 2}: expected interval xmax"):
        parse_textgrid(path)

    path.write_text("\n".join(text.splitlines()[:30]), encoding="utf-8")
    with pytest.raises(TextGridError, match=r"bad\.TextGrid:\d+: unexpected end of file"):
        parse_textgrid(path)
    with pytest.raises(TextGridError, match=r":1: not a Praat text file"):
        parse_textgrid('File type = "ooBinaryFile"\n')
    with pytest.raises(TextGridError, match="unterminated string"):
        parse_textgrid(short_textgrid({"phones": HELLO}).rstrip()[:-1])  # the last label loses its closing quote


def test_arpabet_mapping_keeps_stress_as_vocabulary_marks(vocab: PhonemeVocab) -> None:
    expected = {
        "AH0": "ə",
        "AH1": "ˈʌ",
        "AH2": "ˌʌ",
        "ER0": "ɚ",
        "ER1": "ˈɜː",
        "IY0": "i",
        "IY1": "ˈiː",
        "AE1": "ˈæ",
        "AA2": "ˌɑː",
        "AO1": "ˈɔː",
        "AY1": "ˈaɪ",
        "OW0": "oʊ",
        "UW1": "ˈuː",
        "R": "ɹ",
        "G": "ɡ",
        "CH": "tʃ",
        "JH": "dʒ",
        "HH": "h",
        "Y": "j",
        "NG": "ŋ",
    }
    for label, symbol in expected.items():
        assert phone_symbols(label, vocab) == (symbol,), label
    assert phone_symbols("AH1", vocab, stress=False) == ("ʌ",)
    assert phone_symbols("IY2", vocab, stress=False) == ("iː",)
    assert phone_symbols("ER1", vocab, stress=False) == ("ɜː",)


def test_every_arpabet_phone_maps_into_the_vocabulary(vocab: PhonemeVocab) -> None:
    labels = [v + d for v in ARPABET_VOWELS for d in ("", "0", "1", "2")] + list(ARPABET_CONSONANTS)
    for label in labels:
        for stress in (True, False):
            symbols = phone_symbols(label, vocab, stress=stress)
            assert symbols and all(s in vocab for s in symbols), label


def test_ipa_labels(vocab: PhonemeVocab) -> None:
    assert phone_symbols("æ", vocab) == ("æ",)
    assert phone_symbols("ˈæ", vocab) == ("ˈæ",)
    assert phone_symbols("aj", vocab) == ("aɪ",)  # MFA english_mfa diphthong spelling
    assert phone_symbols("tʰ", vocab) == ("t",)
    assert phone_symbols("ɫ̩", vocab) == ("əl",)
    assert phone_symbols("m̩", vocab) == ("ə", "m")
    assert phone_symbols("ts", vocab) == ("t", "s")  # split into known symbols
    assert phone_symbols("ʕ", vocab) is None


def test_silences_become_pause_and_edges_go_to_bos_eos(vocab: PhonemeVocab) -> None:
    phonemes, durations = alignment_phonemes(parse_textgrid(long_textgrid({"phones": HELLO}))["phones"], utt_id="u")
    assert phonemes == (BOS, "h", "ə", PAUSE, "l", "ˈoʊ", EOS)
    assert durations == (24, 8, 8, 12, 12, 16, 24)  # sil + sp merged into one pause of 0.15 s
    assert sum(durations) == round(1.3 * 80)

    no_edges = [Interval(0, 0.2, "S"), Interval(0.2, 0.5, "IY1")]
    assert alignment_phonemes(no_edges, utt_id="u") == ((BOS, "s", "ˈiː", EOS), (0, 16, 24, 0))
    with pytest.raises(AlignmentError, match="only silence"):
        alignment_phonemes([Interval(0, 1, "sil"), Interval(1, 2, "")], utt_id="u")


@pytest.mark.parametrize(("sample_rate", "hop"), [(16_000, 200), (24_000, 300), (22_050, 256)])
def test_durations_are_differences_of_rounded_boundaries(sample_rate: int, hop: int) -> None:
    rng = np.random.default_rng(0)
    labels = ["K", "AE1", "T", "S", "AH0", "N", "D", "OW2"]
    for _ in range(20):
        times = np.concatenate([[0.0], np.sort(rng.uniform(0, 3, size=len(labels) + 1))])
        tier = [Interval(0.0, float(times[1]), "sil")]
        tier += [Interval(float(times[i + 1]), float(times[i + 2]), lab) for i, lab in enumerate(labels)]
        end = tier[-1].end
        phonemes, durations = alignment_phonemes(tier, utt_id="u", sample_rate=sample_rate, hop=hop)
        assert len(phonemes) == len(durations) == len(labels) + 2
        assert sum(durations) == round(end * sample_rate / hop)
        bounds = [round(t * sample_rate / hop) for t in [0.0, *(iv.start for iv in tier[1:]), end, end]]
        assert list(durations) == list(np.diff(bounds))


def test_espeak_clusters(vocab: PhonemeVocab) -> None:
    def phones(*labels: str, **kwargs: bool) -> tuple[str, ...]:
        tier = [Interval(0.1 * i, 0.1 * (i + 1), lab) for i, lab in enumerate(labels)]
        return alignment_phonemes(tier, utt_id="u", **kwargs)[0][1:-1]

    assert phones("K", "AA1", "R") == ("k", "ˈɑːɹ")  # "car": r-coloured vowel before the end
    assert phones("HH", "AO1", "R", "S") == ("h", "ˈɔːɹ", "s")  # "horse": before a consonant
    assert phones("K", "AA1", "R", "IY0") == ("k", "ˈɑː", "ɹ", "i")  # "carry": the r starts a syllable
    assert phones("F", "AY1", "ER0") == ("f", "ˈaɪɚ")
    assert phones("K", "AA1", "R", espeak_clusters=False) == ("k", "ˈɑː", "ɹ")
    tier = [Interval(0, 0.1, "K"), Interval(0.1, 0.2, "AA1"), Interval(0.2, 0.35, "R")]
    assert alignment_phonemes(tier, utt_id="u")[1] == (0, 8, 20, 0)  # merged symbol spans both intervals


def test_unmappable_label_names_item_label_and_time() -> None:
    tier = [Interval(0, 0.3, ""), Interval(0.3, 0.45, "XQ1"), Interval(0.45, 0.6, "")]
    with pytest.raises(AlignmentError, match=r"84_121_000001_000000: unmappable phone label 'XQ1' at 0\.300-0\.450"):
        alignment_phonemes(tier, utt_id="84_121_000001_000000")


def _write_item(
    root: Path,
    speaker: str,
    chapter: str,
    utt: str,
    phones: Tier,
    *,
    seconds: float,
    transcript: str = ".normalized.txt",
) -> Path:
    folder = root / speaker / chapter
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(utt))
    sf.write(str(folder / f"{utt}.wav"), 0.01 * rng.standard_normal(round(seconds * 24_000)), 24_000)
    if transcript:
        (folder / f"{utt}{transcript}").write_text("Hello there.\n", encoding="utf-8")
    if phones:
        (folder / f"{utt}.TextGrid").write_text(long_textgrid({"phones": phones}), encoding="utf-8")
    return folder


def test_directory_walk_reports_problems(tmp_path: Path, vocab: PhonemeVocab) -> None:
    root = tmp_path / "LibriTTS" / "train-clean-100"
    _write_item(root, "84", "121", "84_121_000002_000000", HELLO, seconds=1.3)
    _write_item(root, "84", "121", "84_121_000001_000000", HELLO, seconds=1.3, transcript=".original.txt")
    _write_item(root, "19", "198", "19_198_000000_000000", HELLO, seconds=1.31, transcript=".lab")
    _write_item(root, "19", "198", "19_198_000001_000000", [], seconds=1.0)  # no TextGrid
    _write_item(root, "19", "198", "19_198_000002_000000", HELLO, seconds=1.0)  # TextGrid past the audio
    _write_item(root, "19", "227", "19_227_000000_000000", [*HELLO[:2], (0.4, 0.5, "QQ")], seconds=1.0)
    _write_item(root, "19", "227", "19_227_000001_000000", HELLO, seconds=1.3, transcript="")
    _write_item(root, "84", "999", "84_121_000002_000000", HELLO, seconds=1.3)  # same id in another chapter

    utterances, problems = libritts_utterances(root)
    assert [u.id for u in utterances] == ["19_198_000000_000000", "84_121_000001_000000", "84_121_000002_000000"]
    assert [u.speaker for u in utterances] == ["19", "84", "84"]
    assert utterances[0].audio == root / "19" / "198" / "19_198_000000_000000.wav"
    assert utterances[0].text == "Hello there."
    for u in utterances:
        assert u.phonemes == (BOS, "h", "ə", PAUSE, "l", "ˈoʊ", EOS)
        assert sum(u.durations) == round(1.3 * 80)
        vocab.encode(u.phonemes)
    assert len(problems) == 5
    assert problems[0].startswith("19_198_000001_000000: no TextGrid")
    assert problems[1].startswith("19_198_000002_000000: TextGrid ends at 1.300 s, beyond the audio (1.000 s)")
    assert problems[2].startswith("19_227_000000_000000: unmappable phone label 'QQ' at 0.400")
    assert problems[3].startswith("19_227_000001_000000: no transcript")
    assert problems[4].startswith("84_121_000002_000000: duplicate id")

    only_84, _ = libritts_utterances(root, speakers=["84"])
    assert [u.speaker for u in only_84] == ["84", "84"]
    assert summarize(utterances) == {"count": 3, "speakers": 2, "frames": 312, "hours": 312 / 80 / 3600}


def test_separate_textgrid_tree(tmp_path: Path) -> None:
    root, aligned = tmp_path / "corpus", tmp_path / "aligned"
    _write_item(root, "7", "11", "7_11_000000_000000", [], seconds=1.3)
    _write_item(root, "8", "12", "8_12_000000_000000", [], seconds=1.3)
    (aligned / "7" / "11").mkdir(parents=True)
    (aligned / "7" / "11" / "7_11_000000_000000.TextGrid").write_text(long_textgrid({"phones": HELLO}))
    (aligned / "8").mkdir(parents=True)  # MFA's <speaker>/<utt>.TextGrid layout, with a per-speaker tier name
    (aligned / "8" / "8_12_000000_000000.TextGrid").write_text(long_textgrid({"8 - phones": HELLO}))

    utterances, problems = libritts_utterances(root, textgrid_root=aligned)
    assert problems == []
    assert [u.id for u in utterances] == ["7_11_000000_000000", "8_12_000000_000000"]
