"""Real, independently written TTS engines as external-command programs (`bench.systems.external`).

Each module is a program that answers the external system's JSONL request file through one shared request
loop (`loop`): the engine loads once per process, untimed, and each item's synthesis call alone is timed.
All four speak with one fixed voice and ignore the prompt: configure them with `prompted = false`.

- `piper`: piper (GPL-3.0, run only as its own process) with the en_US-joe-medium voice, 22.05 kHz;
- `hibari`: hibari (Apache-2.0) with its "heart" voice, 24 kHz, seeded;
- `flite`: CMU Flite's built-in voices (default slt), 16 kHz; needs the `flite` program;
- `espeak`: espeak-ng en-us from the espeakng-loader wheel, 22.05 kHz.

Run one as `python -m bench.systems.engines.<name> [options] {input}`.
"""
