"""Text normalisers applied to both the reference and the ASR hypothesis before counting word errors.

- ``whisper``: openai-whisper's `EnglishTextNormalizer` (spelled-out numbers -> digits, British -> American
  spelling, contractions expanded, fillers like "um" dropped, punctuation removed, lowercase), then tokens
  with no letter or digit dropped (the normaliser turns "..." into a one-"word" ".").
- ``seedtts``: the seed-tts-eval English convention: punctuation deleted (not replaced by a space, so
  "well-known" -> "wellknown") except the apostrophe, lowercase, whitespace collapsed; no number
  normalisation ("fifty" vs "50" is an error). One deliberate difference: curly apostrophes are mapped to
  "'" first (seed-tts-eval deletes "’", so "don’t" vs "don't" would count as an error).
- ``f5``: the F5-TTS eval convention: ALL punctuation deleted, apostrophes included ("don't" -> "dont"),
  i.e. ASCII `string.punctuation` (which also holds symbols such as "$" and "%") and every Unicode
  punctuation character (F5 adds zhon's CJK punctuation, curly quotes among it), lowercase, whitespace
  collapsed (F5 replaces double spaces once; the word split makes that the same); no number normalisation.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "′": "'"})
_SPACES = re.compile(r"\s+")
_ASCII_PUNCT = frozenset(string.punctuation) - {"'"}


@dataclass(frozen=True)
class Normalizer:
    """A named text normaliser."""

    name: str
    description: str
    fn: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return self.fn(text)


def _is_punct(ch: str) -> bool:
    """ASCII punctuation (seed-tts-eval strips all of `string.punctuation`) or any Unicode punctuation."""
    return ch in _ASCII_PUNCT or (ch != "'" and unicodedata.category(ch).startswith("P"))


def f5_normalize(text: str) -> str:
    """F5-TTS's English normalisation (see module docstring)."""
    text = "".join(ch for ch in text if not (ch in string.punctuation or unicodedata.category(ch).startswith("P")))
    return _SPACES.sub(" ", text).strip().lower()


def seedtts_normalize(text: str) -> str:
    """seed-tts-eval's English normalisation (see module docstring)."""
    text = text.translate(_APOSTROPHES)
    text = "".join(ch for ch in text if not _is_punct(ch))
    return _SPACES.sub(" ", text).strip().lower()


@lru_cache(maxsize=1)
def _whisper_normalizer() -> Callable[[str], str]:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def whisper_normalize(text: str) -> str:
    """openai-whisper's `EnglishTextNormalizer`; tokens without a letter or digit (it leaves a lone "." for
    "..." or "Uh...") are dropped."""
    return " ".join(w for w in _whisper_normalizer()(text).split() if any(ch.isalnum() for ch in w))


NORMALIZERS: dict[str, Normalizer] = {
    "whisper": Normalizer(
        "whisper",
        "openai-whisper EnglishTextNormalizer (numbers to digits, American spelling, contractions expanded); "
        "tokens without a letter or digit dropped",
        whisper_normalize,
    ),
    "seedtts": Normalizer(
        "seedtts",
        "seed-tts-eval: delete punctuation except apostrophes (curly ones mapped to '), lowercase, collapse spaces",
        seedtts_normalize,
    ),
    "f5": Normalizer(
        "f5",
        "F5-TTS eval: delete all punctuation including apostrophes, lowercase, collapse spaces",
        f5_normalize,
    ),
}


def get_normalizer(name: str) -> Normalizer:
    if name not in NORMALIZERS:
        raise ValueError(f"unknown normaliser {name!r}; known: {', '.join(NORMALIZERS)}")
    return NORMALIZERS[name]
