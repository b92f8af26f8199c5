"""LibriTTS-style training directories with Praat TextGrid alignments -> `TrainingUtterance`s.

Layout: `<root>/<speaker>/<chapter>/<utt>.wav` with `<utt>.normalized.txt` (or `.original.txt`, `.lab`)
and `<utt>.TextGrid` beside it, or under a separate `textgrid_root` (`<speaker>/<chapter>/<utt>.TextGrid`
or `<speaker>/<utt>.TextGrid`, as Montreal Forced Aligner writes them).

Phone labels are ARPAbet (MFA's english_us_arpa) or IPA (english_mfa). They are mapped onto the espeak-ng
en-us vocabulary: ARPAbet stress digits become the vocabulary's stress marks (AE1 -> "ˈæ", AE0 -> "æ"),
and, by default, a few phone pairs become the single symbols espeak-ng uses for them (vowel + ɹ before a
non-vowel -> "ɑːɹ", "ɪɹ", ...; aɪ + ɚ -> "aɪɚ"; aɪ/iː + ə -> "aɪə"/"iə"). Silences become the pause
symbol; leading and trailing silence goes to `<s>` / `</s>`. Durations are in frames at `hop` samples of
`sample_rate` (80 Hz by default): boundaries at round(t * sample_rate / hop), so they sum exactly to
round(end * sample_rate / hop).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.training.sources import TrainingUtterance
from flashspeech.text.phonemes import BOS, EOS, PAUSE, SPECIALS, STRESS_MARKS, PhonemeVocab

AUDIO_SUFFIXES = (".wav", ".flac")
TRANSCRIPT_SUFFIXES = (".normalized.txt", ".original.txt", ".lab")
SILENCE_LABELS = frozenset({"", "sil", "sp", "spn", "<eps>", "<sil>"})


class TextGridError(ValueError):
    """A TextGrid that cannot be parsed; the message names the file and line."""


class AlignmentError(ValueError):
    """An alignment that cannot become phonemes; the message names the utterance, label and time."""


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    label: str


# ---------------------------------------------------------------------------------------------------------
# TextGrid parsing. Praat reads text files as a stream of values (numbers, "strings", <flags>) and ignores
# the "xmin =", "item [1]:" decoration, so one token reader covers both the long and the short format.

_TOKEN = re.compile(
    r'(?P<string>"(?:[^"]|"")*")'
    r"|(?P<comment>![^\n]*)"
    r"|(?P<index>\[[^\]\n]*\])"
    r"|(?P<flag><exists>|<absent>)"
    r"|(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])"
    r"|(?P<word>[A-Za-z_]\w*)"
    r"|(?P<punct>[=:?])"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "number" or "flag"
    value: str
    line: int


class _Reader:
    def __init__(self, text: str, source: str):
        self.source = source
        self.tokens: list[_Token] = []
        newlines = [i for i, c in enumerate(text) if c == "\n"]
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            line = bisect.bisect_right(newlines, m.start()) + 1
            if kind == "other":
                what = "unterminated string" if m.group() == '"' else f"unexpected character {m.group()!r}"
                raise TextGridError(f"{source}:{line}: {what}")
            if kind in ("string", "number", "flag"):
                value = m.group()[1:-1].replace('""', '"') if kind == "string" else m.group()
                self.tokens.append(_Token(kind, value, line))
        self.pos = 0

    def _next(self, kind: str, what: str) -> _Token:
        if self.pos >= len(self.tokens):
            last = self.tokens[-1].line if self.tokens else 1
            raise TextGridError(f"{self.source}:{last}: unexpected end of file, expected {what}")
        tok = self.tokens[self.pos]
        if tok.kind != kind:
            raise TextGridError(f"{self.source}:{tok.line}: expected {what}, found {tok.kind} {tok.value!r}")
        self.pos += 1
        return tok

    def string(self, what: str) -> str:
        return self._next("string", what).value

    def number(self, what: str) -> tuple[float, int]:
        tok = self._next("number", what)
        return float(tok.value), tok.line

    def count(self, what: str) -> int:
        tok = self._next("number", what)
        value = float(tok.value)
        if value < 0 or value != int(value):
            raise TextGridError(f"{self.source}:{tok.line}: {what} must be a whole number >= 0, got {tok.value}")
        return int(value)

    def flag(self, what: str) -> str:
        return self._next("flag", what).value


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TextGridError(f"{path}: not UTF-8 or UTF-16 text ({exc})") from exc


def parse_textgrid(path_or_text: str | os.PathLike) -> dict[str, list[Interval]]:
    """Interval tiers of a Praat TextGrid (long or short text format), by tier name.

    A str holding a newline or "ooTextFile" is parsed as the file's content, anything else is a path.
    Point tiers (TextTier) are skipped. Raises TextGridError naming the file and line on malformed input.
    """
    if isinstance(path_or_text, str) and ("\n" in path_or_text or "ooTextFile" in path_or_text):
        text, source = path_or_text, "<TextGrid text>"
    else:
        path = Path(path_or_text)
        try:
            text = _read_text(path)
        except OSError as exc:
            raise TextGridError(f"{path}: cannot read TextGrid ({exc})") from exc
        source = str(path)
    r = _Reader(text, source)
    file_type = r.string('file type "ooTextFile"')
    if not file_type.startswith("ooTextFile"):
        raise TextGridError(f"{source}:1: not a Praat text file (file type {file_type!r})")
    object_class = r.string('object class "TextGrid"')
    if object_class != "TextGrid":
        raise TextGridError(f"{source}:{r.tokens[1].line}: object class is {object_class!r}, not 'TextGrid'")
    r.number("TextGrid xmin")
    r.number("TextGrid xmax")
    if r.flag("<exists> or <absent>") == "<absent>":
        return {}
    tiers: dict[str, list[Interval]] = {}
    for _ in range(r.count("number of tiers")):
        tier_class = r.string("tier class")
        name = r.string("tier name")
        r.number("tier xmin")
        r.number("tier xmax")
        n = r.count("number of intervals/points")
        if tier_class == "IntervalTier":
            intervals = []
            for _ in range(n):
                start, line = r.number("interval xmin")
                end, _ = r.number("interval xmax")
                label = r.string("interval text")
                if end < start:
                    raise TextGridError(
                        f"{source}:{line}: interval [{start}, {end}] of tier {name!r} ends before it starts"
                    )
                intervals.append(Interval(start, end, label))
            if name in tiers:
                raise TextGridError(f"{source}: two interval tiers named {name!r}")
            tiers[name] = intervals
        elif tier_class in ("TextTier", "PointTier"):
            for _ in range(n):
                r.number("point time")
                r.string("point mark")
        else:
            tok = r.tokens[r.pos - 5]
            raise TextGridError(f"{source}:{tok.line}: unknown tier class {tier_class!r}")
    return tiers


# ---------------------------------------------------------------------------------------------------------
# Phone labels -> vocabulary symbols.

# ARPAbet vowel -> (symbol for stress 0, symbol for stress 1/2 or no digit); the stress mark is added on top.
ARPABET_VOWELS: dict[str, tuple[str, str]] = {
    "AA": ("ɑː", "ɑː"),
    "AE": ("æ", "æ"),
    "AH": ("ə", "ʌ"),
    "AO": ("ɔː", "ɔː"),
    "AW": ("aʊ", "aʊ"),
    "AX": ("ə", "ə"),
    "AXR": ("ɚ", "ɚ"),
    "AY": ("aɪ", "aɪ"),
    "EH": ("ɛ", "ɛ"),
    "ER": ("ɚ", "ɜː"),
    "EY": ("eɪ", "eɪ"),
    "IH": ("ɪ", "ɪ"),
    "IX": ("ᵻ", "ᵻ"),
    "IY": ("i", "iː"),
    "OW": ("oʊ", "oʊ"),
    "OY": ("ɔɪ", "ɔɪ"),
    "UH": ("ʊ", "ʊ"),
    "UW": ("uː", "uː"),
    "UX": ("uː", "uː"),
    "EL": ("əl", "əl"),
    "EN": ("n̩", "n̩"),
}
ARPABET_CONSONANTS: dict[str, str] = {
    "B": "b",
    "CH": "tʃ",
    "D": "d",
    "DH": "ð",
    "DX": "ɾ",
    "F": "f",
    "G": "ɡ",
    "HH": "h",
    "JH": "dʒ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "ŋ",
    "NX": "n",
    "P": "p",
    "Q": "ʔ",
    "R": "ɹ",
    "S": "s",
    "SH": "ʃ",
    "T": "t",
    "TH": "θ",
    "V": "v",
    "W": "w",
    "WH": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "ʒ",
}
_ARPABET = re.compile(r"([A-Za-z]+)([012]?)")
_STRESS_OF_DIGIT = {"0": "", "1": STRESS_MARKS[0], "2": STRESS_MARKS[1], "": ""}

# MFA english_mfa IPA phones that espeak-ng's inventory spells differently (aspiration, palatalisation,
# dental and labialised variants collapse to the plain phone); a space separates several symbols.
IPA_ALIASES: dict[str, str] = {
    "aj": "aɪ",
    "aw": "aʊ",
    "ej": "eɪ",
    "ow": "oʊ",
    "ɔj": "ɔɪ",
    "ɑ": "ɑː",
    "ɒ": "ɑː",
    "ɒː": "ɑː",
    "ɛː": "ɛ",
    "ɜ": "ɜː",
    "ɝ": "ɜː",
    "ʉ": "uː",
    "ʉː": "uː",
    "u": "uː",
    "e": "eɪ",
    "ɫ": "l",
    "ɫ̩": "əl",
    "l̩": "əl",
    "ɱ": "m",
    "ɲ": "n",
    "ʎ": "l",
    "c": "k",
    "ɟ": "ɡ",
    "g": "ɡ",
    "ç": "h",
    "ʍ": "w",
    "ɾ̃": "ɾ",
    "m̩": "ə m",  # no syllabic m in the inventory: schwa + m share the interval
}
_IPA_MODIFIERS = ("ʰ", "ʷ", "ʲ", "\u032a")  # aspiration, labialisation, palatalisation, dental


@functools.cache
def _default_vocab() -> PhonemeVocab:
    return PhonemeVocab.load()


def _split_stress(symbol: str) -> tuple[str, str]:
    if symbol[:1] in STRESS_MARKS:
        return symbol[:1], symbol[1:]
    return "", symbol


def _with_stress(mark: str, base: str, vocab: PhonemeVocab) -> str:
    return mark + base if mark and mark + base in vocab else base


def _segment(label: str, vocab: PhonemeVocab) -> tuple[str, ...] | None:
    """Greedy longest-match split of an IPA string into vocabulary symbols (None if it does not split)."""
    symbols = sorted((s for s in vocab.symbols if s not in SPECIALS), key=len, reverse=True)
    out: list[str] = []
    i = 0
    while i < len(label):
        match = next((s for s in symbols if label.startswith(s, i)), None)
        if match is None:
            return None
        out.append(match)
        i += len(match)
    return tuple(out)


def phone_symbols(label: str, vocab: PhonemeVocab | None = None, *, stress: bool = True) -> tuple[str, ...] | None:
    """Vocabulary symbols of one aligner phone label: (PAUSE,) for silence, None if it cannot be mapped.

    Order: silence, a vocabulary symbol as is, ARPAbet (stress digits -> stress marks unless `stress` is
    False), an IPA alias, the IPA label without modifier letters, and last a split into known symbols.
    """
    vocab = vocab or _default_vocab()
    label = label.strip()
    if label.lower() in SILENCE_LABELS or label == PAUSE:
        return (PAUSE,)
    if label in vocab and label not in SPECIALS:
        return (label if stress else _split_stress(label)[1],)
    m = _ARPABET.fullmatch(label)
    if m:
        base, digit = m.group(1).upper(), m.group(2)
        if base in ARPABET_VOWELS:
            reduced, full = ARPABET_VOWELS[base]
            mark = _STRESS_OF_DIGIT[digit] if stress else ""
            return (_with_stress(mark, reduced if digit == "0" else full, vocab),)
        if base in ARPABET_CONSONANTS and not digit:
            return (ARPABET_CONSONANTS[base],)
    ipa = label.replace(":", "ː")
    mark, base = _split_stress(ipa)
    for candidate in (base, base.translate({ord(c): None for c in "".join(_IPA_MODIFIERS)})):
        symbols = IPA_ALIASES.get(candidate, candidate).split()
        if symbols and all(s in vocab and s not in SPECIALS for s in symbols):
            return (_with_stress(mark if stress else "", symbols[0], vocab), *symbols[1:])
    split = _segment(ipa, vocab)
    if split and not stress:
        split = tuple(_split_stress(s)[1] for s in split)
    return split


# espeak-ng writes these pairs as one symbol: vowel + ɹ before a non-vowel, and some vowel sequences.
_RHOTIC = {"ɑː": "ɑːɹ", "ɔː": "ɔːɹ", "ɛ": "ɛɹ", "ɪ": "ɪɹ", "iː": "ɪɹ", "ʊ": "ʊɹ", "uː": "ʊɹ"}
_VOWEL_PAIRS = {("aɪ", "ɚ"): "aɪɚ", ("aɪ", "ə"): "aɪə", ("iː", "ə"): "iə", ("i", "ə"): "iə"}


def _is_vowel(symbol: str, vocab: PhonemeVocab) -> bool:
    return STRESS_MARKS[0] + _split_stress(symbol)[1] in vocab


def _espeak_clusters(items: list[tuple[str, float, float]], vocab: PhonemeVocab) -> list[tuple[str, float, float]]:
    out: list[tuple[str, float, float]] = []
    i = 0
    while i < len(items):
        sym, start, _ = items[i]
        mark, base = _split_stress(sym)
        nxt = items[i + 1] if i + 1 < len(items) else None
        merged = None
        if nxt is not None and nxt[0] == "ɹ" and base in _RHOTIC:
            after = items[i + 2][0] if i + 2 < len(items) else None
            if after is None or not _is_vowel(after, vocab):
                merged = _RHOTIC[base]
        elif nxt is not None and (base, nxt[0]) in _VOWEL_PAIRS:
            merged = _VOWEL_PAIRS[(base, nxt[0])]
        if merged is not None and mark + merged in vocab:
            out.append((mark + merged, start, nxt[2]))
            i += 2
        else:
            out.append(items[i])
            i += 1
    return out


def alignment_phonemes(
    intervals: Sequence[Interval],
    *,
    utt_id: str,
    vocab: PhonemeVocab | None = None,
    sample_rate: int = 16_000,
    hop: int = 200,
    stress: bool = True,
    espeak_clusters: bool = True,
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """`<s>` phonemes `</s>` and their frame durations from a phone tier.

    Consecutive silences merge into one PAUSE; leading/trailing silence becomes the duration of
    `<s>` / `</s>` (0 when there is none). A label that splits into k symbols shares its interval evenly.
    Raises AlignmentError naming `utt_id`, the label and its time.
    """
    vocab = vocab or _default_vocab()
    if not intervals:
        raise AlignmentError(f"{utt_id}: empty phone tier")
    items: list[tuple[str, float, float]] = []
    previous = intervals[0].start
    for iv in intervals:
        where = f"at {iv.start:.3f}-{iv.end:.3f} s"
        if iv.start < previous:
            raise AlignmentError(f"{utt_id}: phone {iv.label!r} {where} starts before the previous one")
        previous = iv.start
        symbols = phone_symbols(iv.label, vocab, stress=stress)
        if not symbols:
            raise AlignmentError(f"{utt_id}: unmappable phone label {iv.label!r} {where}")
        step = (iv.end - iv.start) / len(symbols)
        items.extend((s, iv.start + k * step, iv.start + (k + 1) * step) for k, s in enumerate(symbols))
    if espeak_clusters:
        items = _espeak_clusters(items, vocab)
    merged: list[tuple[str, float, float]] = []
    for item in items:
        if merged and item[0] == PAUSE and merged[-1][0] == PAUSE:
            merged[-1] = (PAUSE, merged[-1][1], item[2])
        else:
            merged.append(item)
    content = merged[1:] if merged[0][0] == PAUSE else merged
    content = content[:-1] if content and content[-1][0] == PAUSE else content
    if not content:
        raise AlignmentError(f"{utt_id}: the phone tier holds only silence")
    times = [0.0, *(start for _, start, _ in content), content[-1][2], intervals[-1].end]
    bounds = [round(t * sample_rate / hop) for t in times]
    durations = tuple(b - a for a, b in itertools.pairwise(bounds))
    return (BOS, *(s for s, _, _ in content), EOS), durations


# ---------------------------------------------------------------------------------------------------------
# Directory walk.


def _first_existing(paths: Iterable[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _utterance(
    wav: Path,
    rel: Path,
    *,
    textgrid_root: Path | None,
    tier: str,
    vocab: PhonemeVocab,
    sample_rate: int,
    hop: int,
    stress: bool,
    espeak_clusters: bool,
) -> TrainingUtterance:
    from bench.data.audio import audio_info

    utt_id, speaker = wav.stem, rel.parts[0]
    stem = wav.with_suffix("")
    transcript = _first_existing(stem.with_name(stem.name + s) for s in TRANSCRIPT_SUFFIXES)
    if transcript is None:
        raise ValueError(f"no transcript ({', '.join('<utt>' + s for s in TRANSCRIPT_SUFFIXES)})")
    text = transcript.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"empty transcript {transcript}")
    candidates = [wav.with_suffix(".TextGrid")]
    if textgrid_root is not None:
        candidates += [textgrid_root / rel.with_suffix(".TextGrid"), textgrid_root / speaker / f"{utt_id}.TextGrid"]
    textgrid = _first_existing(candidates)
    if textgrid is None:
        raise ValueError(f"no TextGrid (looked for {', '.join(str(c) for c in candidates)})")
    tiers = parse_textgrid(textgrid)
    names = [tier] if tier in tiers else [n for n in tiers if n.endswith(f" - {tier}")]  # MFA: "spk - phones"
    if len(names) != 1:
        raise ValueError(f"{textgrid} has no single interval tier {tier!r} (tiers: {sorted(tiers)})")
    intervals = tiers[names[0]]
    if not intervals:
        raise ValueError(f"{textgrid}: tier {names[0]!r} is empty")
    audio_s = audio_info(wav).duration
    end = intervals[-1].end
    if end > audio_s + hop / sample_rate:
        raise ValueError(f"TextGrid ends at {end:.3f} s, beyond the audio ({audio_s:.3f} s)")
    phonemes, durations = alignment_phonemes(
        intervals,
        utt_id=utt_id,
        vocab=vocab,
        sample_rate=sample_rate,
        hop=hop,
        stress=stress,
        espeak_clusters=espeak_clusters,
    )
    vocab.encode(phonemes)  # every symbol is in the vocabulary by construction; fail loudly if not
    return TrainingUtterance(id=utt_id, speaker=speaker, audio=wav, text=text, phonemes=phonemes, durations=durations)


def libritts_utterances(
    root: str | os.PathLike,
    *,
    tier: str = "phones",
    sample_rate: int = 16_000,
    hop: int = 200,
    speakers: Iterable[str] | None = None,
    textgrid_root: str | os.PathLike | None = None,
    vocab: PhonemeVocab | None = None,
    stress: bool = True,
    espeak_clusters: bool = True,
) -> tuple[list[TrainingUtterance], list[str]]:
    """Utterances of a `<root>/<speaker>/<chapter>/<utt>.wav` tree, sorted by id, and the problems found.

    An utterance without transcript or TextGrid, with an unmappable phone, or whose TextGrid ends more
    than one hop beyond its audio is skipped, and "<id>: <problem>" is recorded in the problems list.
    `speakers` keeps only those speaker directories (the others are not problems).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    tg_root = Path(textgrid_root) if textgrid_root is not None else None
    keep = None if speakers is None else {speakers} if isinstance(speakers, str) else set(speakers)
    vocab = vocab or _default_vocab()
    found: dict[str, TrainingUtterance] = {}
    seen: dict[str, Path] = {}
    problems: list[str] = []
    wavs = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    for wav in wavs:
        rel = wav.relative_to(root)
        if len(rel.parts) < 2:
            problems.append(f"{wav.stem}: {wav} is not inside a speaker directory")
            continue
        if keep is not None and rel.parts[0] not in keep:
            continue
        if wav.stem in seen:
            problems.append(f"{wav.stem}: duplicate id ({wav} and {seen[wav.stem]})")
            continue
        seen[wav.stem] = wav
        try:
            found[wav.stem] = _utterance(
                wav,
                rel,
                textgrid_root=tg_root,
                tier=tier,
                vocab=vocab,
                sample_rate=sample_rate,
                hop=hop,
                stress=stress,
                espeak_clusters=espeak_clusters,
            )
        except (ValueError, OSError) as exc:  # TextGridError, AlignmentError, AudioError, missing files
            message = str(exc)
            problems.append(message if message.startswith(f"{wav.stem}: ") else f"{wav.stem}: {message}")
    return [found[k] for k in sorted(found)], sorted(problems)


def summarize(utterances: Sequence[TrainingUtterance], *, sample_rate: int = 16_000, hop: int = 200) -> dict:
    """Utterance count, speaker count, total frames and hours (from the durations at `hop` / `sample_rate`)."""
    frames = sum(sum(u.durations) for u in utterances)
    return {
        "count": len(utterances),
        "speakers": len({u.speaker for u in utterances}),
        "frames": frames,
        "hours": frames * hop / sample_rate / 3600,
    }
