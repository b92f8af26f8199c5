"""Versioned phoneme vocabulary and the text frontend (English text -> espeak-ng phonemes -> ids).

The inventory is espeak-ng's en-us IPA phonemes as its phoneme events name them (stress marks stay on
the vowel: "ˈæ", "ˌæ", "æ" are three symbols, like ARPAbet's AE1/AE2/AE0), plus a pause symbol and
specials. The vocabulary file is committed and versioned: ids never change within a version, and a
checkpoint records the vocabulary it was trained with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from flashspeech.text.espeak import PAUSE, Espeak, VoiceSettings

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS, PAUSE)
STRESS_MARKS = ("ˈ", "ˌ")
DEFAULT_VOCAB = "phonemes_v1.json"

# The frontend's reference voice. Phoneme sequences do not depend on the voice variant or rate
# (tests check this), only the timings do.
FRONTEND_VOICE = VoiceSettings(name="en-us", rate=175)


class FrontendError(ValueError):
    """Text that cannot be turned into phonemes, or phonemes outside the vocabulary."""


@dataclass(frozen=True)
class PhonemeVocab:
    """Symbols with fixed ids (id = position). Id 0 is padding."""

    name: str
    version: int
    espeak_version: str
    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.symbols[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("vocabulary has duplicate symbols")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._index  # type: ignore[attr-defined]

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def fingerprint(self) -> str:
        """sha256 of the symbol list: two vocabularies with the same fingerprint assign the same ids."""
        return hashlib.sha256("\n".join(self.symbols).encode()).hexdigest()

    def id(self, symbol: str) -> int:
        try:
            return self._index[symbol]  # type: ignore[attr-defined]
        except KeyError:
            raise FrontendError(f"phoneme {symbol!r} is not in vocabulary {self.name} v{self.version}") from None

    def encode(self, phonemes: Sequence[str], *, unknown: str = "error") -> list[int]:
        """Ids of `phonemes`; unknown symbols raise (`unknown="error"`) or map to <unk> (`"unk"`)."""
        if unknown not in ("error", "unk"):
            raise ValueError(f"unknown must be 'error' or 'unk', got {unknown!r}")
        if unknown == "unk":
            unk = self._index[UNK]  # type: ignore[attr-defined]
            return [self._index.get(p, unk) for p in phonemes]  # type: ignore[attr-defined]
        return [self.id(p) for p in phonemes]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.symbols[i] for i in ids]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "espeak_version": self.espeak_version,
            "fingerprint": self.fingerprint,
            "symbols": list(self.symbols),
        }

    @classmethod
    def from_json(cls, data: dict) -> PhonemeVocab:
        vocab = cls(
            name=data["name"],
            version=int(data["version"]),
            espeak_version=data["espeak_version"],
            symbols=tuple(data["symbols"]),
        )
        if "fingerprint" in data and data["fingerprint"] != vocab.fingerprint:
            raise ValueError(f"vocabulary {vocab.name} v{vocab.version}: fingerprint does not match its symbols")
        return vocab

    @classmethod
    def load(cls, path: str | Path | None = None) -> PhonemeVocab:
        """The bundled vocabulary (default) or one from a JSON file."""
        if path is None:
            text = resources.files("flashspeech.text").joinpath(DEFAULT_VOCAB).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls.from_json(json.loads(text))


def build_inventory(phoneme_sequences: Iterable[Sequence[str]]) -> list[str]:
    """Sorted symbols seen, plus every stress variant of each vowel seen stressed."""
    seen: set[str] = set()
    for seq in phoneme_sequences:
        seen.update(seq)
    seen -= set(SPECIALS)
    vowels = {s[1:] for s in seen if s[:1] in STRESS_MARKS}
    for v in vowels:
        seen.update({v, *(m + v for m in STRESS_MARKS)})
    return sorted(seen)


class Frontend:
    """English text to phoneme symbols and ids, with the corpus's espeak-ng inventory."""

    def __init__(self, vocab: PhonemeVocab | None = None, voice: VoiceSettings = FRONTEND_VOICE):
        self.vocab = vocab or PhonemeVocab.load()
        self.voice = voice

    def phonemize(self, text: str) -> list[str]:
        """Phoneme symbols of `text` (pauses included); raises FrontendError if it has none."""
        if not isinstance(text, str) or not text.strip():
            raise FrontendError(f"empty text {text!r}: nothing to phonemize")
        phonemes = list(Espeak.get().synthesize(text, self.voice).phonemes)
        if all(p == PAUSE for p in phonemes):
            raise FrontendError(f"text {text!r} yields no phonemes")
        return phonemes

    def encode(self, text: str, *, unknown: str = "error") -> list[int]:
        """<s> phonemes </s> as ids."""
        return self.vocab.encode([BOS, *self.phonemize(text), EOS], unknown=unknown)
