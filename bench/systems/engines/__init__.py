"""Real, independently written TTS engines as external-command programs (`bench.systems.external`).

Each module is a program that answers the external system's JSONL request file through one shared request
loop (`loop`): the engine loads once per process, untimed, and each item's synthesis call alone is timed.
All four speak with one fixed voice and ignore the prompt: configure them with `prompted = false`.

- `piper`: piper (GPL-3.0, run only as its own process) with the en_US-joe-medium voice, 22.05 kHz;
- `hibari`: hibari (Apache-2.0) with its "heart" voice, 24 kHz, seeded;
- `flite`: CMU Flite's built-in voices (default slt), 16 kHz; needs the `flite` program;
- `espeak`: espeak-ng en-us from the espeakng-loader wheel, 22.05 kHz.

Run one as `python -m bench.systems.engines.<name> [options] {input}`. With `--fingerprint` in place of the
request file, it prints what determines its audio (its code, its synthesizer's version, its voice file) and
exits: an external system running one records that in its description without a `version_command`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

ENGINES = ("piper", "hibari", "flite", "espeak")


def fingerprint_command(command: Sequence[str]) -> list[str] | None:
    """The argv printing the fingerprint of the engine `command` runs (`-m bench.systems.engines.<name>`): the
    command with its `{input}` argument replaced by `--fingerprint`. None when it runs no engine of this package."""
    modules = {f"{__name__}.{engine}" for engine in ENGINES}
    runs_engine = any(a == "-m" and b in modules for a, b in itertools.pairwise(command))
    if not runs_engine or "{input}" not in command:
        return None
    return ["--fingerprint" if a == "{input}" else a for a in command]
