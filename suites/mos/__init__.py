"""Predicted-MOS suite ("mos"): DistillMOS (offline default), DNSMOS, and UTMOS22 strong from a local checkpoint."""

from suites.mos.backends import (
    BACKENDS,
    DistillMOSBackend,
    DistillMOSOptions,
    DNSMOSBackend,
    DNSMOSOptions,
    MosBackend,
    UTMOSBackend,
    build_backend,
)
from suites.mos.suite import MosOptions, MosSuite

__all__ = [
    "BACKENDS",
    "DNSMOSBackend",
    "DNSMOSOptions",
    "DistillMOSBackend",
    "DistillMOSOptions",
    "MosBackend",
    "MosOptions",
    "MosSuite",
    "UTMOSBackend",
    "build_backend",
]
