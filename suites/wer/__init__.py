"""Word error rate suite ("wer"): Whisper or HuBERT-CTC ASR, selectable normalisation, corpus and mean WER."""

from suites.wer.normalize import NORMALIZERS, Normalizer, get_normalizer
from suites.wer.scoring import WordCounts, count_words, summarize
from suites.wer.suite import AsrBackend, WerSuite, build_backend

__all__ = [
    "NORMALIZERS",
    "AsrBackend",
    "Normalizer",
    "WerSuite",
    "WordCounts",
    "build_backend",
    "count_words",
    "get_normalizer",
    "summarize",
]
