"""Aligner phone labels (ARPAbet or IPA) -> the espeak-ng en-us vocabulary, with frame durations.

ARPAbet stress digits become the vocabulary's stress marks (AE1 -> "ˈæ", AE0 -> "æ"), and, by default, a
few phone pairs become the single symbols espeak-ng uses for them (vowel + ɹ before a non-vowel -> "ɑːɹ",
"ɪɹ", ...; aɪ + ɚ -> "aɪɚ"; aɪ/iː + ə -> "aɪə"/"iə"). Silences become the pause symbol; leading and
trailing silence goes to `<s>` / `</s>`. Durations are in frames at `hop` samples of `sample_rate` (80 Hz
by default): boundaries at round(t * sample_rate / hop), so they sum exactly to round(end * sample_rate /
hop).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence

from bench.training.textgrid import Interval
from flashspeech.text.phonemes import BOS, EOS, PAUSE, SPECIALS, STRESS_MARKS, PhonemeVocab

SILENCE_LABELS = frozenset({"", "sil", "sp", "spn", "<eps>", "<sil>"})


class AlignmentError(ValueError):
    """An alignment that cannot become phonemes; the message names the utterance, label and time."""


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
def default_vocab() -> PhonemeVocab:
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
    vocab = vocab or default_vocab()
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
    vocab = vocab or default_vocab()
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
