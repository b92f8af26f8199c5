"""Word error rate suite ("wer"): Whisper or HuBERT-CTC ASR, selectable normalisation, corpus and mean WER."""

from suites.wer import ct2_backend, hubert_backend, whisper_backend  # noqa: F401  (registration in ASR_BACKENDS)
from suites.wer.backends import ASR_BACKENDS, AsrBackend
from suites.wer.normalize import NORMALIZERS, Normalizer, get_normalizer
from suites.wer.scoring import WordCounts, count_words, summarize
from suites.wer.suite import WerOptions, WerSuite

__all__ = [
    "ASR_BACKENDS",
    "NORMALIZERS",
    "AsrBackend",
    "Normalizer",
    "WerOptions",
    "WerSuite",
    "WordCounts",
    "count_words",
    "get_normalizer",
    "summarize",
]
