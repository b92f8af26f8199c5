"""Per-phoneme durations for voices whose synthesizer is not espeak-ng, on the frontend's own phonemes.

Training and the prosody metrics want durations for the phoneme sequence the model reads at inference: the
text frontend's espeak-ng phonemes. Other synthesizers segment speech their own way, so durations are
carried over by one of two methods, and every utterance records which one it got:

- ``segments``: the synthesizer reports its phone segments with end times (flite's ``-psdur``). Its phone
  labels (CMU ARPAbet) and the frontend's phonemes are mapped to one coarse key each and aligned with a
  global alignment (Needleman-Wunsch); a frontend phoneme spans the segments aligned to it. Segments
  aligned to no phoneme join the phoneme before them (espeak's r-coloured "ɑːɹ" takes flite's "aa" and "r");
  phonemes aligned to no segment share their left neighbour's span equally. Leading silence is ``<s>``.
- ``dtw``: the synthesizer reports nothing (piper through its command line, hibari). An espeak-ng voice of
  the same sex (en-us or en-us+f3: the phonemes do not depend on the variant) renders the same text with its
  phoneme events, and dynamic time warping of the two renderings' MFCCs (each coefficient normalised per
  utterance, cosine distance) maps each event into the natural audio. This is
  alignment by synthesis; its boundary error is measured against the ``segments`` method on the flite
  voices (see ``boundary_error_ms``) and published with the corpus survey.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flashspeech.text.espeak import PAUSE

# ARPAbet (flite's US phone set, stress-free) to a coarse IPA key shared with the frontend's phonemes.
_CMU_KEYS = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ao": "ɔ", "aw": "aʊ", "ax": "ə", "axr": "ɚ", "ay": "aɪ", "eh": "ɛ",
    "er": "ɚ", "ey": "eɪ", "ih": "ɪ", "ix": "ɪ", "iy": "i", "ow": "oʊ", "oy": "ɔɪ", "uh": "ʊ", "uw": "u",
    "b": "b", "ch": "tʃ", "d": "d", "dh": "ð", "dx": "ɾ", "el": "l", "em": "m", "en": "n", "f": "f", "g": "g",
    "hh": "h", "jh": "dʒ", "k": "k", "l": "l", "m": "m", "n": "n", "ng": "ŋ", "nx": "n", "p": "p", "r": "ɹ",
    "s": "s", "sh": "ʃ", "t": "t", "th": "θ", "v": "v", "w": "w", "y": "j", "z": "z", "zh": "ʒ",
    "pau": PAUSE, "h#": PAUSE, "brth": PAUSE,
}  # fmt: skip
# espeak-ng symbols (stress and length marks removed) whose key differs from the symbol.
_ESPEAK_KEYS = {
    "ɐ": "ə", "ᵻ": "ɪ", "ɜ": "ɚ", "n̩": "n", "əl": "ə", "ɑɹ": "ɑ", "ɔɹ": "ɔ", "ɛɹ": "ɛ", "ɪɹ": "ɪ",
    "ʊɹ": "ʊ", "aɪə": "aɪ", "aɪɚ": "aɪ", "iə": "i", "o": "oʊ", "r": "ɹ", "ɡ": "g", "ɑ̃": "ɑ", "ɔ̃": "ɔ",
}  # fmt: skip
_VOWEL_CHARS = set("aeiouæɑɒɔəɚɛɜɪʊʌᵻɐ")
_MATCH, _SAME_CLASS_VOWEL, _SAME_CLASS_CONSONANT, _MISMATCH, _GAP = 3.0, 1.0, 0.0, -2.0, -1.0


def espeak_key(symbol: str) -> str:
    """The coarse key of a frontend (espeak-ng) phoneme symbol."""
    bare = symbol.lstrip("ˈˌ").replace("ː", "")
    return _ESPEAK_KEYS.get(bare, bare)


def cmu_key(label: str) -> str:
    """The coarse key of a flite (ARPAbet) phone label; unknown labels keep their name (and rarely match)."""
    return _CMU_KEYS.get(label.lower().rstrip("012"), label)


def _is_vowel(key: str) -> bool:
    return bool(key) and key[0] in _VOWEL_CHARS


def _score(a: str, b: str) -> float:
    if a == b:
        return _MATCH
    if PAUSE in (a, b):
        return _MISMATCH
    va, vb = _is_vowel(a), _is_vowel(b)
    if va and vb:
        return _SAME_CLASS_VOWEL
    if not va and not vb:
        return _SAME_CLASS_CONSONANT
    return _MISMATCH


def align(target: Sequence[str], source: Sequence[str]) -> list[list[int]]:
    """Global alignment of two key sequences: for each target position, the source positions it spans.

    Every source position belongs to exactly one target position (in order): one aligned to a gap joins
    the target before it (the first target when it leads). Targets aligned to a gap span nothing.
    """
    n, m = len(target), len(source)
    if n == 0:
        raise ValueError("nothing to align to: the target sequence is empty")
    score = np.zeros((n + 1, m + 1))
    score[:, 0] = _GAP * np.arange(n + 1)
    score[0, :] = _GAP * np.arange(m + 1)
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diagonal, 1 up (target gap-free, source gap), 2 left
    move[1:, 0], move[0, 1:] = 1, 2
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            options = (
                score[i - 1, j - 1] + _score(target[i - 1], source[j - 1]),
                score[i - 1, j] + _GAP,
                score[i, j - 1] + _GAP,
            )
            best = int(np.argmax(options))
            score[i, j], move[i, j] = options[best], best
    spans: list[list[int]] = [[] for _ in range(n)]
    orphans: list[int] = []  # source positions aligned to a gap, attached after the walk
    i, j = n, m
    pairs: list[tuple[int | None, int | None]] = []
    while i > 0 or j > 0:
        step = move[i, j]
        if step == 0:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif step == 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    last_target = 0
    for t, s in reversed(pairs):
        if t is not None:
            last_target = t
            if s is not None:
                spans[t].append(s)
                spans[t].extend(orphans)
                orphans = []
        elif s is not None:
            if any(spans[: last_target + 1]):
                spans[last_target].append(s)
            else:
                orphans.append(s)  # leading unmatched source: joins the first matched target
    if orphans:
        spans[last_target].extend(orphans)
    return [sorted(sp) for sp in spans]


@dataclass(frozen=True)
class Segment:
    """A synthesizer's phone segment: its label and its end time in seconds (it starts where the last ends)."""

    label: str
    end_s: float


def starts_from_segments(phonemes: Sequence[str], segments: Sequence[Segment]) -> list[float]:
    """Start time (seconds) of each frontend phoneme, from a synthesizer's phone segments.

    Leading silence segments are left out (they become ``<s>``); see the module docstring for the rest.
    """
    if not segments:
        raise ValueError("the synthesizer reported no segments")
    bounds = [0.0, *[s.end_s for s in segments]]
    first = 0
    while first < len(segments) - 1 and cmu_key(segments[first].label) == PAUSE:
        first += 1
    keys = [cmu_key(s.label) for s in segments[first:]]
    spans = align([espeak_key(p) for p in phonemes], keys)
    starts: list[float | None] = [bounds[first + sp[0]] if sp else None for sp in spans]
    return _fill_gaps(starts, bounds[-1])


def _fill_gaps(starts: list[float | None], end: float) -> list[float]:
    """Starts for phonemes that got no segment: a run of them shares the span of the phoneme before it
    (the first matched phoneme's span, for a leading run) in equal parts."""
    known = [k for k, s in enumerate(starts) if s is not None]
    if not known:
        raise ValueError("no phoneme matched any segment")
    filled = list(starts)
    first = known[0]
    if first > 0:  # leading run: 0..first share the first matched phoneme's span
        nxt = next((filled[k] for k in range(first + 1, len(filled)) if filled[k] is not None), end)
        a, b = filled[first], nxt
        assert a is not None and b is not None
        for k in range(first + 1):
            filled[k] = a + (b - a) * k / (first + 1)
    k = 0
    while k < len(filled):
        if filled[k] is not None:
            k += 1
            continue
        left, right = k - 1, k
        while right < len(filled) and filled[right] is None:
            right += 1
        a = filled[left]
        b = filled[right] if right < len(filled) else end
        assert a is not None and b is not None
        for idx in range(k, right):
            filled[idx] = a + (b - a) * (idx - left) / (right - left)
        k = right
    return [float(s) for s in filled]  # type: ignore[arg-type]


def _mfcc(samples: np.ndarray, sample_rate: int, hop: int) -> np.ndarray:
    import librosa

    feats = librosa.feature.mfcc(y=samples, sr=sample_rate, n_mfcc=20, n_fft=4 * hop, hop_length=hop, n_mels=40)
    # every coefficient mean/variance normalised per utterance: c0 (energy) then marks speech against
    # silence without the renderings' loudness (measured on 40 sentences: hibari phonemes over 0.31 s 1.6 % -> 0.6 %)
    return (feats - feats.mean(axis=1, keepdims=True)) / (feats.std(axis=1, keepdims=True) + 1e-5)


def starts_by_dtw(
    reference: np.ndarray, reference_starts: Sequence[int], natural: np.ndarray, sample_rate: int, hop: int = 200
) -> list[int]:
    """Start samples in `natural` of the phonemes that start at `reference_starts` in `reference`.

    Both signals are mono float at `sample_rate`; DTW of their MFCC frames (every `hop` samples) maps each
    reference frame to the first natural frame on the warping path.
    """
    import librosa

    ref, nat = _mfcc(reference, sample_rate, hop), _mfcc(natural, sample_rate, hop)
    cost = 1.0 - (ref.T @ nat) / (np.linalg.norm(ref, axis=0)[:, None] * np.linalg.norm(nat, axis=0)[None, :] + 1e-9)
    _, path = librosa.sequence.dtw(C=cost, backtrack=True)
    first_natural = np.full(ref.shape[1], nat.shape[1] - 1)
    for r, q in path[::-1]:
        first_natural[r] = min(first_natural[r], q)
    first_natural = np.minimum.accumulate(first_natural[::-1])[::-1]  # monotone
    frames = [min(round(s / hop), ref.shape[1] - 1) for s in reference_starts]
    return [int(first_natural[f]) * hop for f in frames]


def boundary_error_ms(starts_a: Sequence[float], starts_b: Sequence[float]) -> float:
    """Median absolute difference (ms) of two start-time lists (seconds) for the same phonemes."""
    if len(starts_a) != len(starts_b):
        raise ValueError(f"{len(starts_a)} starts against {len(starts_b)}")
    return float(np.median(np.abs(np.asarray(starts_a) - np.asarray(starts_b)))) * 1000.0


__all__ = [
    "Segment",
    "align",
    "boundary_error_ms",
    "cmu_key",
    "espeak_key",
    "starts_by_dtw",
    "starts_from_segments",
]
