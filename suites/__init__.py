"""Metric suites. Importing this package registers every built-in suite in `suites.base.SUITES`:

- ``wer``: word error rate through Whisper (offline tiny.en by default) or HuBERT-CTC;
- ``similarity``: speaker similarity SIM-o / SIM-r through WavLM-TDNN or resemblyzer;
- ``prosody``: F0 statistics, diversity across seeds, the paper's pitch / duration JSD;
- ``rtf``: real-time factor from the systems' per-stage timings;
- ``mos``: predicted MOS through DistillMOS, DNSMOS or UTMOS22 strong;
- ``defects``: failed-generation flags (long pauses, edge silence, noise tails, clipping, truncated or runaway
  length) from the audio and the item's text.

A suite declares what its config table may set (`Suite.Options`); a suite that scores through a named model
takes the backend's options too, its backends registered by name with one build signature
(`ASR_BACKENDS`, `SPEAKER_BACKENDS`, `MOS_BACKENDS`: `build(name, device=..., **options)`).
`check_suite_options(name, options)` checks a table when a config loads, building nothing; `build_suite(name,
device=..., **options)` builds the suite. Model weights load lazily, on a suite's first `load()`.
"""

from suites import defects, mos, prosody, rtf, similarity, wer  # noqa: F401  (registration)
from suites.base import (
    SUITES,
    ItemScore,
    MetricInfo,
    Need,
    Sample,
    Suite,
    SuiteError,
    SuiteOptions,
    build_suite,
    check_suite_options,
    register,
)

__all__ = [
    "SUITES",
    "ItemScore",
    "MetricInfo",
    "Need",
    "Sample",
    "Suite",
    "SuiteError",
    "SuiteOptions",
    "build_suite",
    "check_suite_options",
    "register",
]
