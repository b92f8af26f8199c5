"""Metric suites (WER, speaker similarity, prosody, RTF)."""
