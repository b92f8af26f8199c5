"""hibari (Apache-2.0; a 6 M-parameter distillation of Kokoro-82M) with its "heart" voice, as an external
system: `python -m bench.systems.engines.hibari [--voice heart] [--threads 1] REQUESTS.jsonl`.

In process (onnxruntime, `--threads` intra-op threads, hibari's default 1), 24 kHz. Seeded: the request's
seed fixes hibari's noise component, so the same text and seed give the same samples. The timed call is
hibari's own text-to-audio call (G2P, the network, its signal processing). Voices other than "heart" are
downloaded by hibari on first use; offline, they fail to load.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from bench.systems.base import error_text
from bench.systems.engines.loop import Engine, dist_version, file_digest, fingerprint, main


class HibariEngine(Engine):
    def __init__(self, voice: str = "heart", threads: int = 1):
        try:
            from hibari import Hibari
        except ImportError as exc:
            raise RuntimeError("hibari-tts is not installed: pip install 'flashspeech-bench[voices]'") from exc
        self._tts = Hibari(voice=voice, threads=threads)
        self._tts.g2p  # noqa: B018 - loads the lexicon, tagger and OOV net now, not in the first timed call

    def synthesize(self, text: str, seed: int) -> tuple[np.ndarray, int]:
        return self._tts(text, seed=seed), int(self._tts.sample_rate)


def identify(args: argparse.Namespace) -> str:
    """The engine's code, hibari's and onnxruntime's versions, and the voice model's sha256 (a voice not yet
    downloaded: the sha256 hibari's registry holds for it, which hibari checks the download against)."""
    try:
        from hibari.voices import VOICES, voice_path

        try:
            voice = f"voice {args.voice} {file_digest(voice_path(args.voice, download_missing=False))}"
        except FileNotFoundError:
            voice = f"voice {args.voice} {VOICES[args.voice]['sha256'][:16]} (not downloaded yet)"
    except Exception as exc:  # not installed, unknown voice: every request fails too, saying why
        voice = f"voice {args.voice} unavailable ({error_text(exc)})"
    versions = f"hibari-tts {dist_version('hibari-tts')}; onnxruntime {dist_version('onnxruntime')}"
    return fingerprint(__spec__.name, versions, voice)


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.systems.engines.hibari", description=__doc__.split("\n")[0])
    parser.add_argument("--voice", default="heart", help="a hibari voice (default: heart, shipped in the wheel)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1, hibari's own)")
    return main(parser, lambda args: HibariEngine(args.voice, args.threads), argv, identify)


if __name__ == "__main__":
    sys.exit(run())
