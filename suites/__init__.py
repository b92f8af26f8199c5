"""Metric suites. Importing this package registers every built-in suite in `suites.base.SUITES`:

- ``wer``: word error rate through Whisper (offline tiny.en by default) or HuBERT-CTC;
- ``similarity``: speaker similarity SIM-o / SIM-r through WavLM-TDNN or resemblyzer;
- ``prosody``: F0 statistics, diversity across seeds, the paper's pitch / duration JSD;
- ``rtf``: real-time factor from the systems' per-stage timings;
- ``defects``: failed-generation flags (long pauses, edge silence, noise tails, clipping, truncated or runaway
  length) from the audio and the item's text.

Model weights load lazily, on a suite's first `load()`.
"""

from suites import defects, mos, prosody, rtf, similarity, wer  # noqa: F401  (registration)
from suites.base import SUITES, ItemScore, MetricInfo, Need, Sample, Suite, SuiteError, build_suite, register

__all__ = ["SUITES", "ItemScore", "MetricInfo", "Need", "Sample", "Suite", "SuiteError", "build_suite", "register"]
