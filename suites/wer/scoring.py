"""Word-error counts for one (reference, hypothesis) pair and the corpus-level summaries.

Two conventions are reported side by side (they differ whenever utterance lengths differ):
- ``wer_corpus`` = sum of errors / sum of reference words (ZipVoice, NeMo, HuBERT/LibriSpeech papers);
- ``wer_mean`` = mean of per-utterance WERs (seed-tts-eval, F5-TTS: "macro", over-weights short items).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import jiwer

from suites.base import Ratio

OVER_THRESHOLD = 0.5  # an item "over 50 %" has WER strictly above this


@dataclass(frozen=True)
class WordCounts:
    """Levenshtein alignment counts of one normalised (reference, hypothesis) pair."""

    substitutions: int
    deletions: int
    insertions: int
    ref_words: int
    hyp_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words

    def as_metrics(self) -> dict[str, float]:
        return {
            "wer": self.wer,
            "substitutions": float(self.substitutions),
            "deletions": float(self.deletions),
            "insertions": float(self.insertions),
            "ref_words": float(self.ref_words),
            "hyp_words": float(self.hyp_words),
        }


def count_words(reference: str, hypothesis: str) -> WordCounts:
    """Counts for already-normalised texts; an empty hypothesis is all deletions. Raises ValueError on an
    empty reference (its WER is undefined)."""
    ref_words, hyp_words = reference.split(), hypothesis.split()
    if not ref_words:
        raise ValueError("empty reference: WER is undefined")
    if not hyp_words:
        return WordCounts(0, len(ref_words), 0, len(ref_words), 0)
    out = jiwer.process_words(" ".join(ref_words), " ".join(hyp_words))
    return WordCounts(out.substitutions, out.deletions, out.insertions, len(ref_words), len(hyp_words))


WER_CORPUS = Ratio(("substitutions", "deletions", "insertions"), "ref_words")  # corpus WER: Σ errors / Σ ref words


def summarize(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Corpus summaries over per-item metric dicts (as made by `WordCounts.as_metrics`)."""
    rows = list(rows)
    if not rows:
        return {}
    total = {k: sum(r[k] for r in rows) for k in ("substitutions", "deletions", "insertions", "ref_words", "hyp_words")}
    errors = total["substitutions"] + total["deletions"] + total["insertions"]
    over = sum(1 for r in rows if r["wer"] > OVER_THRESHOLD)
    return {
        "wer_corpus": WER_CORPUS.of(rows),
        "wer_mean": sum(r["wer"] for r in rows) / len(rows),
        **total,
        "errors": errors,
        "over_50pct": float(over),
        "over_50pct_frac": over / len(rows),
    }
