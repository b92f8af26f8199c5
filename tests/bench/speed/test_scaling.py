"""The actor-scaling benchmark: every configuration scores every clip, rows and table say where they ran."""

from __future__ import annotations

import os

import pytest

from bench.speed.scaling import ScalingConfig, markdown, measure_scaling

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")


def test_scaling_times_local_and_each_actor_count():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, object_store_memory=100 << 20, include_dashboard=False, log_to_driver=False)
    try:
        config = ScalingConfig(
            model="wavlm:tiny", items=4, unit_items=2, batch=2, actors=(1, 2), min_seconds=1.0, max_seconds=2.0
        )
        report = measure_scaling(config, log=lambda _: None)
    finally:
        ray.shutdown()
    rows = report["rows"]
    assert [(r["executor"], r["actors"]) for r in rows] == [("local", 1), ("ray", 1), ("ray", 2)]
    assert all(r["items"] == 4 and r["failed_units"] == 0 and r["items_per_s"] > 0 for r in rows)
    assert [r["workers_seen"] for r in rows] == [1, 1, 2]  # two actors shared the units
    assert rows[1]["extra"]["cluster"]["CPU"] == 2
    table = markdown(report)
    assert "wavlm:tiny" in table and report["machine"]["cpu_count"] == os.cpu_count()
    assert table.count("| ray |") == 2 and f"Ray {ray.__version__}" in table


def test_scaling_config_is_checked():
    with pytest.raises(ValueError, match="model"):
        ScalingConfig(model="whisper:huge").validate()
    with pytest.raises(ValueError, match="actor count"):
        ScalingConfig(actors=(0,)).validate()
