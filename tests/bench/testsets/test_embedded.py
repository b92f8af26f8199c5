"""The embedded smoke set, built for real (the held-out voices of the full corpus, about 40 s)."""

from __future__ import annotations

import pytest

from bench.testsets.embedded import embedded_manifest, list_embedded
from bench.testsets.synth import HELDOUT_VOICES


@pytest.mark.slow
def test_smoke_set_builds_and_lists(tmp_path):
    manifest = embedded_manifest("smoke", tmp_path, progress=False)
    assert manifest.ok and len(manifest) == 40
    assert {i.speaker for i in manifest.items} == set(HELDOUT_VOICES)
    assert len({i.text for i in manifest.items}) == 40  # disjoint targets across voices
    assert all(i.target_audio and i.prompt_text for i in manifest.items)
    rows = {r.name: r for r in list_embedded(tmp_path)}
    smoke = rows["smoke"]
    assert smoke.built and smoke.items == 40 and smoke.speakers == 5 and smoke.problems == 0
    assert 100 < smoke.target_seconds < 300 and 80 < smoke.prompt_seconds < 180
    assert embedded_manifest("smoke", tmp_path, progress=False).items == manifest.items  # cached, stable


def test_unknown_embedded_set():
    with pytest.raises(KeyError, match="known: smoke, real"):
        embedded_manifest("nope")
