"""The ground-truth survey's pure parts: speaker separation and its Markdown."""

from __future__ import annotations

import numpy as np

from bench.testsets.survey import SEPARATION_THRESHOLD, Survey, render_markdown, separation


def _voices(rng, centres, per_voice=5, spread=0.05):
    embeddings, names = [], []
    for name, centre in centres.items():
        for _ in range(per_voice):
            e = centre + spread * rng.standard_normal(centre.shape)
            embeddings.append(e / np.linalg.norm(e))
            names.append(name)
    return np.stack(embeddings), names


def test_separation_flags_voices_that_are_too_close():
    rng = np.random.default_rng(0)
    a, b = np.zeros(16), np.zeros(16)
    a[0], b[1] = 1.0, 1.0
    twin = a + 0.05 * np.eye(16)[2]
    embeddings, names = _voices(rng, {"a": a, "b": b, "twin": twin / np.linalg.norm(twin)})
    out = separation(embeddings, names)
    assert out["voices"] == ["a", "b", "twin"]
    assert [(p["a"], p["b"]) for p in out["too_close"]] == [("a", "twin")]
    assert out["closest"]["cosine"] > SEPARATION_THRESHOLD
    assert all(v > 0.9 for v in out["within_voice"].values())
    sims = np.asarray(out["centroid_cosine"])
    assert np.allclose(np.diag(sims), 1.0, atol=1e-3) and sims[0, 1] < 0.2


def test_markdown_has_every_section():
    rng = np.random.default_rng(1)
    embeddings, names = _voices(rng, {"x": np.eye(8)[0], "y": np.eye(8)[1]})
    survey = Survey(
        clips=10,
        per_voice=[{"tier": "natural", "voice": "x", "wer base greedy": 0.02, "dnsmos ovrl": None}],
        per_tier=[{"tier": "natural", "wer base greedy": 0.02}],
        separation=separation(embeddings, names),
        alignment={"flite-rms": 17.5},
        seconds={"distillmos": 3.0},
    )
    text = render_markdown(survey)
    for needle in ("## Per tier", "| natural | x | 0.02 | - |", "Too close: none", "flite-rms 17.5 ms", "10 clips"):
        assert needle in text
