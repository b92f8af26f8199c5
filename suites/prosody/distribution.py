"""Pool per-sample histograms into the system-vs-natural-speech JSDs (pitch and duration).

Pooling: every scored sample of the system (all seeds) adds its frame / phone counts to the generated
histogram; every item with a reference adds its ground-truth target's counts once to the natural
histogram. Only items that have a reference count on either side, so both sides cover the same texts.

Duration is compared at the phone level when every scored sample carries phone durations
(`sample.meta["durations"]`) and every item carries the target's (`item.meta["target_durations"]`);
otherwise at the utterance level, over the items with target audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from suites.base import ItemScore
from suites.prosody.jsd import jensen_shannon, utterance_duration_counts

NO_TARGET = (
    "no item has ground-truth target audio (item.target_audio): the JSD compares generated speech with "
    "natural speech of the same items"
)


@dataclass
class JsdResult:
    """The two JSDs (None where unavailable, with the reason in `notes`)."""

    pitch: float | None = None
    duration: float | None = None
    duration_level: str | None = None  # "phone" or "utterance"
    items: int = 0  # items with a reference for pitch
    notes: dict[str, str] = field(default_factory=dict)


def _sum(hists: Sequence[Sequence[int]]) -> np.ndarray:
    return np.sum(np.asarray(hists, dtype=np.float64), axis=0)


def _first_per_item(rows: Sequence[ItemScore], key: str) -> dict[str, ItemScore]:
    out: dict[str, ItemScore] = {}
    for row in rows:
        if key in row.details and row.item_id not in out:
            out[row.item_id] = row
    return out


def _target_errors(rows: Sequence[ItemScore]) -> str:
    errors = {r.item_id: r.details["target_error"] for r in rows if "target_error" in r.details}
    if not errors:
        return ""
    item, msg = next(iter(errors.items()))
    return f" ({len(errors)} item(s) had unreadable targets, e.g. {item}: {msg})"


def _pitch(rows: Sequence[ItemScore], result: JsdResult) -> None:
    refs = _first_per_item(rows, "target_pitch_hist")
    result.items = len(refs)
    if not refs:
        result.notes["pitch_jsd"] = NO_TARGET + _target_errors(rows)
        return
    gen = _sum([r.details["pitch_hist"] for r in rows if r.item_id in refs])
    ref = _sum([r.details["target_pitch_hist"] for r in refs.values()])
    if gen.sum() == 0:
        result.notes["pitch_jsd"] = "no voiced frames in the generated audio"
    elif ref.sum() == 0:
        result.notes["pitch_jsd"] = "no voiced frames in the target audio"
    else:
        result.pitch = jensen_shannon(gen, ref)


def _duration(rows: Sequence[ItemScore], result: JsdResult) -> None:
    phone_refs = _first_per_item(rows, "target_phone_dur_hist")
    items = {r.item_id for r in rows}
    missing_gen = sum("phone_dur_hist" not in r.details for r in rows)
    if missing_gen == 0 and phone_refs and set(phone_refs) == items:
        gen = _sum([r.details["phone_dur_hist"] for r in rows])
        ref = _sum([r.details["target_phone_dur_hist"] for r in phone_refs.values()])
        if gen.sum() > 0 and ref.sum() > 0:
            result.duration, result.duration_level = jensen_shannon(gen, ref), "phone"
            return
    why = (
        f"{missing_gen} sample(s) without phone durations (sample.meta['durations'])"
        if missing_gen
        else f"{len(items - set(phone_refs))} item(s) without item.meta['target_durations']"
    )
    refs = _first_per_item(rows, "target_duration_s")
    if not refs:
        result.notes["duration_jsd"] = f"{NO_TARGET}; no phone-level comparison either: {why}"
        return
    gen = utterance_duration_counts(np.array([r.metrics["duration_s"] for r in rows if r.item_id in refs]))
    ref = utterance_duration_counts(np.array([r.details["target_duration_s"] for r in refs.values()]))
    result.duration, result.duration_level = jensen_shannon(gen, ref), "utterance"
    result.notes["duration_jsd"] = f"utterance-level (0.5 s bins, {len(refs)} items): {why}"


def system_jsd(rows: Sequence[ItemScore]) -> JsdResult:
    """Pitch and duration JSD of the successful per-sample rows of one system."""
    rows = [r for r in rows if r.ok and r.seed is not None]
    result = JsdResult()
    if not rows:
        result.notes["pitch_jsd"] = result.notes["duration_jsd"] = "no successfully scored samples"
        return result
    systems = {r.system for r in rows}
    if len(systems) > 1:
        result.notes["systems"] = f"rows of {len(systems)} systems pooled ({', '.join(sorted(systems))})"
    _pitch(rows, result)
    _duration(rows, result)
    return result
