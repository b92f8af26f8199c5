"""The embedded voice-conversion sets, made from the committed natural-voice clips (no new audio).

Each item converts one voice's reading of a test sentence (the source) into another voice (the target), prompted by
a non-test sentence of the target voice (2-4.5 s, each used once per target); the target voice's own reading of the
same test sentence is the item's ground truth (the topline). Every test sentence is read by at least two of the
committed voices, so every item has it.

- ``vc``: targets the two held-out voices (flite awb, hibari heart): conversion to voices the shipped models never
  heard, the paper's setting;
- ``vc-seen``: targets the four training voices (flite slt, rms, kal16; piper joe).

Sources are any other voice with that sentence, the least used first, so each target converts several voices.
`data natural --export` writes them beside the natural sets (`vc_manifests`), and `--check` compares them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.testsets.corpus import TEST_SENTENCE_EVERY, load_sentences
from bench.testsets.items import PROMPT_RANGE_S
from flashspeech.foundation.audio import audio_info
from suites.item import VC, EvalItem


@dataclass(frozen=True)
class VCSet:
    name: str
    targets: tuple[str, ...]
    items_per_target: int
    description: str


VC_SETS: tuple[VCSet, ...] = (
    VCSet(
        "vc",
        ("flite-awb", "hibari-heart"),
        4,
        "voice conversion to the unseen natural voices (flite awb, hibari heart), from the other voices' readings",
    ),
    VCSet(
        "vc-seen",
        ("flite-slt", "flite-rms", "flite-kal16", "piper-joe"),
        2,
        "voice conversion to the natural training voices (flite slt/rms/kal16, piper joe), from the other voices' "
        "readings",
    ),
)


def clips(root: Path) -> dict[str, dict[str, Path]]:
    """voice -> sentence id (`s0060`) -> its clip, for the voice folders under `root` (`<voice>/<voice>-s0060.flac`)."""
    out: dict[str, dict[str, Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob(f"{folder.name}-s*.flac")):
            out.setdefault(folder.name, {})[path.stem[len(folder.name) + 1 :]] = path
    return out


def vc_items(spec: VCSet, root: Path, seed: int = 0) -> list[EvalItem]:
    """The items of `spec` from the clips under `root` (deterministic given `seed`); ValueError naming the voice
    when a target lacks clips."""
    sentences = load_sentences()
    texts = {s.id: s.text for s in sentences}
    held_out = {s.id for s in sentences if int(s.id[1:]) % TEST_SENTENCE_EVERY == 0}  # never trained on
    voices = clips(root)
    items = []
    for target in spec.targets:
        if target not in voices:
            raise ValueError(f"{spec.name}: no clips of target voice {target!r} under {root}")
        rng = random.Random(f"{seed}:{spec.name}:{target}")
        own = voices[target]
        others = [v for name, v in voices.items() if name != target]
        tests = [s for s in sorted(own) if s in held_out and any(s in v for v in others)]
        rng.shuffle(tests)
        lo, hi = PROMPT_RANGE_S
        prompts = [s for s in sorted(own) if s not in held_out and lo <= audio_info(str(own[s])).duration <= hi]
        rng.shuffle(prompts)
        if len(tests) < spec.items_per_target or len(prompts) < spec.items_per_target:
            raise ValueError(
                f"{spec.name}: target {target!r} has {len(tests)} test sentences read by another voice and "
                f"{len(prompts)} prompts of {lo}-{hi} s, for {spec.items_per_target} items"
            )
        used: dict[str, int] = {}
        for sentence, prompt in zip(tests[: spec.items_per_target], prompts, strict=False):
            candidates = sorted(name for name, v in voices.items() if name != target and sentence in v)
            source = min(candidates, key=lambda name: (used.get(name, 0), rng.random()))
            used[source] = used.get(source, 0) + 1
            items.append(
                EvalItem(
                    id=f"{spec.name}-{source}-to-{target}-{sentence}",
                    task=VC,
                    text=texts[sentence],
                    speaker=target,
                    prompt_audio=str(own[prompt]),
                    prompt_text=texts[prompt],
                    source_audio=str(voices[source][sentence]),
                    source_speaker=source,
                    target_audio=str(own[sentence]),
                    meta={
                        "source_utt": f"{source}-{sentence}",
                        "target_utt": f"{target}-{sentence}",
                        "prompt_utt": f"{target}-{prompt}",
                    },
                )
            )
    return items


def vc_manifests(root: Path, sets: Sequence[VCSet] = VC_SETS, seed: int = 0) -> list[Path]:
    """Write each VC set's manifest `<name>.jsonl` under `root`, from the clips there; the paths written."""
    from bench.testsets.manifest import write_manifest

    return [write_manifest(vc_items(spec, root, seed), root / f"{spec.name}.jsonl") for spec in sets]


__all__ = ["VC_SETS", "VCSet", "clips", "vc_items", "vc_manifests"]
