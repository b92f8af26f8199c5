"""The model card: validation curves drawn from training runs."""

from __future__ import annotations

import json


def test_model_card_draws_the_validation_curves_of_runs_that_have_them(tmp_path):
    from reports.model_card import plot_validation_curves, validation_curves
    from tests.fixtures.images import is_png

    run = tmp_path / "ct"
    run.mkdir()
    rows = [{"step": 0, "val_mse_sigma80": 0.25}, {"step": 10, "loss": 1.0}, {"step": 250, "val_mse_sigma80": 0.1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "no-val").mkdir()
    (tmp_path / "no-val" / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 1.0}) + "\n")
    curves = validation_curves({"ct": run, "no-val": tmp_path / "no-val", "absent": tmp_path / "nowhere"})
    assert curves == {"ct": [(0, 0.25), (250, 0.1)]}
    assert validation_curves({"tuned": (run, 3500)}) == {"tuned": [(3500, 0.25), (3750, 0.1)]}
    out = plot_validation_curves(curves, tmp_path / "curves.png")
    assert is_png(out.read_bytes())
