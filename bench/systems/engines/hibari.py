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

from bench.systems.engines.loop import Engine, main


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


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.systems.engines.hibari", description=__doc__.split("\n")[0])
    parser.add_argument("--voice", default="heart", help="a hibari voice (default: heart, shipped in the wheel)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1, hibari's own)")
    return main(parser, lambda args: HibariEngine(args.voice, args.threads), argv)


if __name__ == "__main__":
    sys.exit(run())
