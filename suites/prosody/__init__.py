"""Prosody: F0 statistics, diversity across seeds and the FlashSpeech pitch / duration JSD."""

from flashspeech.foundation.f0 import DEFAULT_F0, F0Config, F0Track, extract_f0
from suites.prosody.jsd import jensen_shannon
from suites.prosody.suite import ProsodySuite

__all__ = ["DEFAULT_F0", "F0Config", "F0Track", "ProsodySuite", "extract_f0", "jensen_shannon"]
