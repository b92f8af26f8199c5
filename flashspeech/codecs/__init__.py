"""Codec implementations behind `flashspeech.codec` (import from there: it holds the registry)."""
