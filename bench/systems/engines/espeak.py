"""espeak-ng (GPL-3.0, formant synthesis) from the espeakng-loader wheel, through the repo's own binding
(`flashspeech.text.espeak`), as an external system: `python -m bench.systems.engines.espeak [--voice en-us]
REQUESTS.jsonl`.

In process, 22.05 kHz; the timed call is espeak-ng's synthesis of the text. The request's seed goes to
espeak-ng's random generator, which the plain en-us voice does not use: the same text sounds the same for
every seed. The samples are not bit-identical across runs, though: espeak-ng carries waveform phase over
from whatever the process synthesized before (see `flashspeech.text.espeak`). The embedded `smoke` set's
voices are en-us variants of this same synthesizer, so on that set this engine is close to in-domain.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from bench.systems.base import error_text
from bench.systems.engines.loop import Engine, code_digest, dist_version, fingerprint, main
from flashspeech.text.espeak import Espeak, VoiceSettings


class EspeakEngine(Engine):
    def __init__(self, voice: str = "en-us", rate: int = 175, pitch: int = 50):
        self._espeak = Espeak.get()
        self._voice = VoiceSettings(name=voice, rate=rate, pitch=pitch)

    def synthesize(self, text: str, seed: int) -> tuple[np.ndarray, int]:
        result = self._espeak.synthesize(text, self._voice, seed=seed)
        return result.samples, result.sample_rate


def identify(args: argparse.Namespace) -> str:
    """The engine's code (with the binding), espeak-ng's version and its wheel's (the voice is in the command)."""
    try:
        version = Espeak.get().version
    except Exception as exc:  # reported in the fingerprint; every request fails with it too
        version = f"not loadable ({error_text(exc)})"
    binding, loader = code_digest("flashspeech.text.espeak"), dist_version("espeakng-loader")
    return fingerprint(__spec__.name, f"binding {binding}", f"espeak-ng {version}", f"espeakng-loader {loader}")


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.systems.engines.espeak", description=__doc__.split("\n")[0])
    parser.add_argument("--voice", default="en-us", help="an espeak-ng voice name (default: en-us)")
    parser.add_argument("--rate", type=int, default=175, help="words per minute (default: espeak-ng's 175)")
    parser.add_argument("--pitch", type=int, default=50, help="base pitch 0-99 (default: espeak-ng's 50)")
    return main(parser, lambda args: EspeakEngine(args.voice, args.rate, args.pitch), argv, identify)


if __name__ == "__main__":
    sys.exit(run())
