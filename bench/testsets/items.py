"""Evaluation items from a built corpus: cross-sentence pairs of a voice's test sentence and another prompt."""

from __future__ import annotations

import random
from collections.abc import Sequence

from bench.testsets.corpus import Corpus
from suites.item import EvalItem

PROMPT_RANGE_S = (2.0, 4.5)  # prompts near the protocols' 3 s


def cross_sentence_items(
    corpus: Corpus, voices: Sequence[str], items_per_voice: int, *, prefix: str, seed: int = 0
) -> list[EvalItem]:
    """Cross-sentence items for `voices` of a built corpus (deterministic given `seed`).

    Test sentences are dealt out so that voices get disjoint targets where there are enough; each
    prompt is a non-test sentence of the same voice lasting 2-4.5 s, used at most once per voice.
    """
    rng = random.Random(seed)
    tests = sorted({u.sentence_id for u in corpus.utterances if u.test_sentence})
    rng.shuffle(tests)
    items = []
    for k, voice in enumerate(voices):
        utts = {u.sentence_id: u for u in corpus.by_voice(voice)}
        if not utts:
            raise ValueError(f"voice {voice!r} is not built in {corpus.root}")
        targets = [tests[(k * items_per_voice + j) % len(tests)] for j in range(min(items_per_voice, len(tests)))]
        lo, hi = PROMPT_RANGE_S
        prompts = [u for u in utts.values() if not u.test_sentence and lo <= u.n_samples / corpus.sample_rate <= hi]
        prompts.sort(key=lambda u: u.sentence_id)
        rng.shuffle(prompts)
        if len(prompts) < len(targets):
            raise ValueError(
                f"voice {voice!r} has {len(prompts)} prompt candidates of {lo}-{hi} s for {len(targets)} targets"
            )
        for target_id, prompt in zip(targets, prompts, strict=False):
            target = utts[target_id]
            items.append(
                EvalItem(
                    id=f"{prefix}-{target.id}",
                    text=target.text,
                    prompt_audio=str(corpus.audio_path(prompt)),
                    prompt_text=prompt.text,
                    speaker=voice,
                    target_audio=str(corpus.audio_path(target)),
                    meta={
                        "prompt_utt": prompt.id,
                        "target_utt": target.id,
                        # the synthesizer's alignment of the ground truth, for phone-level prosody metrics
                        "target_phonemes": list(target.phonemes),
                        "target_durations": list(target.durations),
                        "durations_method": target.durations_method,
                    },
                )
            )
    return items


__all__ = ["PROMPT_RANGE_S", "cross_sentence_items"]
