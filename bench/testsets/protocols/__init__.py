"""Loaders that turn local copies of standard TTS test protocols into manifests."""

from __future__ import annotations

from collections.abc import Callable

from bench.testsets.manifest import Manifest
from bench.testsets.protocols.f5_librispeech_pc import load_f5_librispeech_pc
from bench.testsets.protocols.librispeech import LibriSpeechOptions, load_librispeech
from bench.testsets.protocols.seedtts import load_seedtts

# protocol name (as in `flashspeech-bench data import <protocol>`) -> loader
PROTOCOLS: dict[str, Callable[..., Manifest]] = {
    "librispeech": load_librispeech,
    "f5-librispeech-pc": load_f5_librispeech_pc,
    "seedtts": load_seedtts,
}

__all__ = ["PROTOCOLS", "LibriSpeechOptions", "load_f5_librispeech_pc", "load_librispeech", "load_seedtts"]
