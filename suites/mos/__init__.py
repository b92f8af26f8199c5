"""Predicted-MOS suite ("mos"): DistillMOS (offline default), DNSMOS, and UTMOS22 strong from a local checkpoint."""

from suites.mos.backends import (
    MOS_BACKENDS,
    DistillMOSBackend,
    DistillMOSOptions,
    DNSMOSBackend,
    DNSMOSOptions,
    MosBackend,
    UTMOSBackend,
    UTMOSOptions,
)
from suites.mos.suite import MosOptions, MosSuite

__all__ = [
    "MOS_BACKENDS",
    "DNSMOSBackend",
    "DNSMOSOptions",
    "DistillMOSBackend",
    "DistillMOSOptions",
    "MosBackend",
    "MosOptions",
    "MosSuite",
    "UTMOSBackend",
    "UTMOSOptions",
]
