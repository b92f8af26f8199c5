"""The embedded sets: the espeak set built for real (the held-out voices of the full corpus, about 40 s) and
the committed natural-voice sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.testsets.embedded import embedded_manifest, list_embedded
from bench.testsets.espeak_corpus import HELDOUT_VOICES


@pytest.mark.slow
def test_espeak_set_builds_and_lists(tmp_path):
    manifest = embedded_manifest("espeak", tmp_path, progress=False)
    assert manifest.ok and len(manifest) == 40
    assert {i.speaker for i in manifest.items} == set(HELDOUT_VOICES)
    assert len({i.text for i in manifest.items}) == 40  # disjoint targets across voices
    assert all(i.target_audio and i.prompt_text for i in manifest.items)
    rows = {r.name: r for r in list_embedded(tmp_path)}
    espeak = rows["espeak"]
    assert espeak.built and espeak.items == 40 and espeak.speakers == 5 and espeak.problems == 0
    assert 100 < espeak.target_seconds < 300 and 80 < espeak.prompt_seconds < 180
    assert embedded_manifest("espeak", tmp_path, progress=False).items == manifest.items  # cached, stable


def test_unknown_embedded_set():
    with pytest.raises(KeyError, match="known: smoke, smoke-seen, gate, gate-seen, vc, vc-seen, espeak, real"):
        embedded_manifest("nope")


def test_natural_sets_are_committed_and_split_by_voice():
    from bench.testsets.natural import NATURAL_HELDOUT, NATURAL_VOICES

    unseen = embedded_manifest("smoke", progress=False)
    seen = embedded_manifest("smoke-seen", progress=False)
    assert unseen.ok and seen.ok and len(unseen) == 16 and len(seen) == 16
    assert {i.speaker for i in unseen.items} == set(NATURAL_HELDOUT)
    assert {i.speaker for i in seen.items} == {v.name for v in NATURAL_VOICES} - set(NATURAL_HELDOUT)
    for item in [*unseen.items, *seen.items]:
        assert item.prompt_audio != item.target_audio and item.prompt_text != item.text
        assert Path(item.target_audio).is_file() and Path(item.prompt_audio).is_file()
        assert item.meta["durations_method"] in ("segments", "dtw")
        assert len(item.meta["target_phonemes"]) == len(item.meta["target_durations"])
    rows = {r.name: r for r in list_embedded()}
    assert rows["smoke"].built and rows["smoke"].speakers == 2 and rows["smoke-seen"].speakers == 4


def test_gate_sets_are_larger_and_cover_every_test_sentence():
    from bench.testsets.natural import NATURAL_HELDOUT, NATURAL_VOICES

    sets = {name: embedded_manifest(name, progress=False) for name in ("smoke", "smoke-seen", "gate", "gate-seen")}
    gate, gate_seen = sets["gate"], sets["gate-seen"]
    assert gate.ok and gate_seen.ok and len(gate) == 40 and len(gate_seen) == 40
    assert {i.speaker for i in gate.items} == set(NATURAL_HELDOUT)
    assert {i.speaker for i in gate_seen.items} == {v.name for v in NATURAL_VOICES} - set(NATURAL_HELDOUT)
    for manifest in (gate, gate_seen):  # every test sentence once: disjoint targets across voices
        assert len({i.text for i in manifest.items}) == 40
        assert len({i.id for i in manifest.items}) == 40
    for item in [*gate.items, *gate_seen.items]:
        assert item.prompt_audio != item.target_audio and item.prompt_text != item.text
        assert Path(item.target_audio).is_file() and Path(item.prompt_audio).is_file()
        assert len(item.meta["target_phonemes"]) == len(item.meta["target_durations"])
    ids = [i.id for m in sets.values() for i in m.items]
    assert len(ids) == len(set(ids))  # item ids never collide across the natural sets
    rows = {r.name: r for r in list_embedded()}
    assert rows["gate"].items == 40 and rows["gate"].speakers == 2 and rows["gate"].problems == 0
    assert rows["gate-seen"].items == 40 and rows["gate-seen"].speakers == 4 and rows["gate-seen"].problems == 0


def test_vc_sets_are_committed_from_the_natural_clips_and_rebuild_identically(tmp_path):
    """Each vc item converts another voice's reading of a test sentence into the target voice, whose own reading is
    the topline; the committed manifests are what `vc_manifests` writes from the committed clips."""
    from bench.testsets.natural import NATURAL_HELDOUT, natural_assets_dir
    from bench.testsets.vc_sets import VC_SETS, vc_items

    for spec in VC_SETS:
        manifest = embedded_manifest(spec.name, progress=False)
        assert manifest.ok and manifest.task == "vc" and len(manifest) == 8
        assert {i.speaker for i in manifest.items} == set(spec.targets)
        for item in manifest.items:
            sentence = item.id.rsplit("-", 1)[1]
            assert item.source_speaker != item.speaker
            assert Path(item.source_audio).name == f"{item.source_speaker}-{sentence}.flac"
            assert Path(item.target_audio).name == f"{item.speaker}-{sentence}.flac"
            assert Path(item.prompt_audio).parent.name == item.speaker and item.prompt_audio != item.target_audio
        assert len({i.prompt_audio for i in manifest.items}) == len(manifest)  # each prompt once
        assert vc_items(spec, natural_assets_dir()) == manifest.items  # rebuilt from the clips: the same items
    assert set(VC_SETS[0].targets) == set(NATURAL_HELDOUT)  # `vc`: the voices the shipped models never heard
