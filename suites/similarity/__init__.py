"""Speaker similarity suite (SIM-o, SIM-r, SIM-target, speaker-ID accuracy): WavLM-TDNN and resemblyzer backends."""

from suites.similarity.backends import (
    BACKENDS,
    AudioRejected,
    EmbeddingBackend,
    ResemblyzerBackend,
    WavLMTDNNBackend,
    build_backend,
)
from suites.similarity.identification import FEW_SPEAKERS, SpeakerReference
from suites.similarity.suite import NO_RECONSTRUCTION, NO_TARGET, SimilaritySuite

__all__ = [
    "BACKENDS",
    "FEW_SPEAKERS",
    "NO_RECONSTRUCTION",
    "NO_TARGET",
    "AudioRejected",
    "EmbeddingBackend",
    "ResemblyzerBackend",
    "SimilaritySuite",
    "SpeakerReference",
    "WavLMTDNNBackend",
    "build_backend",
]
