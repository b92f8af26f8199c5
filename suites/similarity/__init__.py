"""Speaker similarity suite (SIM-o, SIM-r, SIM-target, speaker-ID accuracy): WavLM-TDNN and resemblyzer backends."""

from suites.similarity.backends import (
    SPEAKER_BACKENDS,
    AudioRejected,
    EmbeddingBackend,
    ResemblyzerBackend,
    WavLMTDNNBackend,
    WavLMTDNNOptions,
)
from suites.similarity.identification import FEW_SPEAKERS, SpeakerReference
from suites.similarity.suite import NO_RECONSTRUCTION, NO_TARGET, SimilarityOptions, SimilaritySuite

__all__ = [
    "FEW_SPEAKERS",
    "NO_RECONSTRUCTION",
    "NO_TARGET",
    "SPEAKER_BACKENDS",
    "AudioRejected",
    "EmbeddingBackend",
    "ResemblyzerBackend",
    "SimilarityOptions",
    "SimilaritySuite",
    "SpeakerReference",
    "WavLMTDNNBackend",
    "WavLMTDNNOptions",
]
