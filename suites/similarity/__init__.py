"""Speaker similarity suite (SIM-o / SIM-r / SIM-target) with WavLM-TDNN and resemblyzer backends."""

from suites.similarity.backends import (
    BACKENDS,
    AudioRejected,
    EmbeddingBackend,
    ResemblyzerBackend,
    WavLMTDNNBackend,
    build_backend,
)
from suites.similarity.suite import NO_RECONSTRUCTION, NO_TARGET, SimilaritySuite

__all__ = [
    "BACKENDS",
    "NO_RECONSTRUCTION",
    "NO_TARGET",
    "AudioRejected",
    "EmbeddingBackend",
    "ResemblyzerBackend",
    "SimilaritySuite",
    "WavLMTDNNBackend",
    "build_backend",
]
