"""Synthetic benchmark results for tests and demos: known numbers, no models, no audio synthesis.

`toy_results()` builds a `Results` for FlashSpeech at 1/2/4 steps and ground truth over a few items and
seeds, with WER, similarity and RTF rows shaped exactly like the real suites' rows (the real suite
classes compute the aggregates), one failed generation and one failed score.
"""

from __future__ import annotations

import numpy as np

from bench.results import GenerationRecord, Results, aggregates_table, groups_table, items_table
from suites.base import ItemScore
from suites.rtf import RtfSuite
from suites.similarity import SimilaritySuite
from suites.wer import WerSuite

TOY_SYSTEMS = (
    ("flashspeech@1", 1, 0.06),
    ("flashspeech@2", 2, 0.04),
    ("flashspeech@4", 4, 0.05),
    ("ground_truth", None, 0.02),
)


def toy_results(n_items: int = 6, seeds: tuple[int, ...] = (0, 1), rtf_scale: float = 1.0, seed: int = 0) -> Results:
    """Deterministic toy results; `rtf_scale` multiplies every timing (to fake a speed regression)."""
    rng = np.random.default_rng(seed)
    wer, sim, rtf = WerSuite(), SimilaritySuite(), RtfSuite()
    records: list[GenerationRecord] = []
    scores: dict[str, list[ItemScore]] = {"wer": [], "similarity": [], "rtf": []}
    for system, steps, base_wer in TOY_SYSTEMS:
        kind = "ground_truth" if steps is None else "flashspeech"
        for i in range(n_items):
            item = f"item-{i:02d}"
            for s in seeds:
                if system == "flashspeech@1" and i == 0 and s == seeds[0]:
                    records.append(
                        GenerationRecord(system, kind, steps, item, f"spk{i % 2}", s, None, None, "RuntimeError: boom")
                    )
                    continue
                audio_s = 2.0 + i * 0.5
                timings = (
                    {}
                    if kind == "ground_truth"
                    else {
                        "frontend": 0.001 * rtf_scale,
                        "prosody": 0.004 * rtf_scale,
                        "sampling": 0.002 * (steps or 1) * audio_s * rtf_scale,
                        "decoder": 0.01 * audio_s * rtf_scale,
                    }
                )
                records.append(
                    GenerationRecord(
                        system,
                        kind,
                        steps,
                        item,
                        f"spk{i % 2}",
                        s,
                        f"{system}/{item}-{s}.wav",
                        audio_s,
                        timings=timings,
                    )
                )
                words = 10 + i
                errors = int(rng.binomial(words, base_wer))
                scores["wer"].append(
                    ItemScore(
                        "wer",
                        system,
                        item,
                        s,
                        metrics={
                            "wer": errors / words,
                            "substitutions": errors,
                            "deletions": 0,
                            "insertions": 0,
                            "ref_words": words,
                            "hyp_words": words,
                        },
                        details={"hypothesis": "toy", "reference": "toy"},
                    )
                )
                if system == "flashspeech@4" and i == 1 and s == seeds[0]:
                    scores["similarity"].append(
                        ItemScore("similarity", system, item, s, error="AudioRejected: too short")
                    )
                else:
                    sim_o = float(0.8 - base_wer + rng.normal(0, 0.01))
                    scores["similarity"].append(
                        ItemScore(
                            "similarity",
                            system,
                            item,
                            s,
                            metrics={
                                "sim_o": sim_o,
                                "spk_id_correct": float(sim_o > 0.6),
                                "spk_id_margin": sim_o - 0.6,
                            },
                            details={"spk_id_speakers": 3},
                        )
                    )
                if timings:
                    total = sum(timings.values())
                    metrics = {"time_s": total, "audio_s": audio_s, "rtf": total / audio_s}
                    metrics.update({f"time_{k}_s": v for k, v in timings.items()})
                    scores["rtf"].append(ItemScore("rtf", system, item, s, metrics=metrics))
    return Results(
        items=items_table(records, scores),
        groups=groups_table(scores),
        aggregates=aggregates_table([wer, sim, rtf], scores, records, resamples=200),
        metadata={
            "run": {"name": "toy", "git_commit": "0" * 40},
            "environment": {"device": "cpu", "torch": "toy"},
            "systems": {
                name: {"kind": "ground_truth" if st is None else "flashspeech", "steps": st}
                for name, st, _ in TOY_SYSTEMS
            },
            "suites": {s.name: {"suite": s.name, "backend": "toy"} for s in (wer, sim, rtf)},
        },
    )
