"""Configs, the generation cache, system adapters and the benchmark runner (small real runs on CPU)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cache import GenerationCache, generation_key
from bench.config import BenchConfig, ConfigError, load_config
from bench.run import run_benchmark
from bench.systems import Generated
from bench.systems.external import ExternalSystem
from bench.testsets.manifest import write_manifest
from flashspeech.foundation.audio import write_wav
from reports.comparability import PAPER_NORMALIZER
from suites.base import SUITES
from suites.item import EvalItem

REAL = "bench/testsets/assets/real"


# --- configs ------------------------------------------------------------------------------------------


def test_shipped_configs_load_and_overrides_apply():
    smoke = load_config("smoke")
    assert [t.name for t in smoke.testsets] == ["smoke", "smoke-seen", "real", "vc"]
    assert smoke.systems[0].options.steps == [1, 2, 4] and smoke.systems[0].kind == "flashspeech"
    kinds = {"flashspeech", "flashspeech_vc", "source_passthrough", "ground_truth", "codec_resynthesis"}
    assert {s.kind for s in smoke.systems} == kinds
    paper = load_config("paper")
    assert paper.suites["wer"]["backend"] == "hubert" and paper.suites["similarity"]["backend"] == "wavlm-tdnn"
    assert paper.suites["wer"]["normalizer"] == PAPER_NORMALIZER == "seedtts"  # what the paper view checks
    c = load_config("smoke", ["seeds=[3,4]", "systems.0.steps=[2]", 'suites.wer.normalizer="seedtts"', "device=cuda"])
    assert c.seeds == [3, 4] and c.systems[0].options.steps == [2]
    assert c.suites["wer"]["normalizer"] == "seedtts" and c.device == "cuda"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["colour=1"], "--set colour: unknown key 'colour'"),
        (["systems.0.kind=teleport"], "systems.0.kind"),
        (["systems.0.steps=[]"], "systems.0.steps"),
        (["seeds=[]"], "seeds"),
        (["testsets=[]"], "no test sets"),
        (["no-equals-sign"], "expected dotted.key=value"),
    ],
)
def test_bad_configs_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", overrides)


# --- cache ----------------------------------------------------------------------------------------------


def _item(tmp_path, name="a", text="Hello there.") -> EvalItem:
    prompt = write_wav(tmp_path / f"{name}.wav", 0.1 * np.sin(np.arange(16000) / 5.0), 16000)
    return EvalItem(id=name, text=text, prompt_audio=str(prompt), speaker="s")


def test_generation_key_tracks_what_determines_the_audio(tmp_path):
    item = _item(tmp_path)
    system = {"kind": "flashspeech", "steps": 2, "checkpoint_sha256": "x"}
    key = generation_key(system, item, 0)
    assert key == generation_key(dict(system), item, 0)
    assert key != generation_key(system, item, 1)
    assert key != generation_key({**system, "steps": 4}, item, 0)
    assert key != generation_key(system, EvalItem(**{**item.__dict__, "text": "Other."}), 0)
    write_wav(item.prompt_audio, np.zeros(8000) + 0.01, 16000)  # the prompt file changed
    assert key != generation_key(system, item, 0)


def test_target_recording_joins_the_key_only_of_systems_that_read_it(tmp_path):
    from bench.systems.flashspeech import FlashSpeechSystem
    from bench.systems.references import GroundTruthSystem

    item = _item(tmp_path)
    target = write_wav(tmp_path / "target.wav", np.zeros(8000) + 0.01, 16000)
    with_target = EvalItem(**{**item.__dict__, "target_audio": str(target)})
    system = {"kind": "any"}
    assert GroundTruthSystem.reads_target and not FlashSpeechSystem.reads_target
    assert generation_key(system, with_target, 0) != generation_key(system, item, 0)
    assert generation_key(system, with_target, 0, reads_target=False) == generation_key(system, item, 0)


def test_a_conversions_source_joins_its_generation_and_score_keys(tmp_path):
    """A vc item's key holds its source file's identity (a new source regenerates and rescores); a TTS item's key
    has no source part, so the TTS keys of every earlier run still hit."""
    from bench.cache import ScoreCache
    from suites.base import Sample

    item = _item(tmp_path)
    source = write_wav(tmp_path / "source.wav", np.zeros(8000) + 0.01, 16000)
    vc = EvalItem(**{**item.__dict__, "task": "vc", "source_audio": str(source), "source_speaker": "o"})
    system = {"kind": "any"}
    key = generation_key(system, vc, 0)
    assert key != generation_key(system, item, 0)
    audio = np.zeros(1600, np.float32)
    score = ScoreCache.key({"suite": "similarity"}, [Sample(vc, "s", audio, 16000)])
    write_wav(source, np.zeros(12000) + 0.02, 16000)  # another source recording, same path
    assert generation_key(system, vc, 0) != key
    assert ScoreCache.key({"suite": "similarity"}, [Sample(vc, "s", audio, 16000)]) != score


def test_a_generation_is_this_runs_by_its_run_id_field_not_its_batch_id(tmp_path):
    from bench.cache import CachedSystem
    from bench.run import timed_label

    cache = GenerationCache(tmp_path / "cache")
    audio = np.zeros(160, np.float32)
    timed = {"batch_id": "t:s#0@run-1", "device": "cpu", "cpu": "Some CPU", "host": "h", "measured_at": "now"}
    cache.put("ab" + "0" * 62, Generated(audio, 16000, timed=timed))  # an older entry: no run_id field
    cache.put("cd" + "0" * 62, Generated(audio, 16000, timed={**timed, "run_id": "run-1"}))
    cached = CachedSystem(ExternalSystem(["x"], "s"), cache, "run-1", retime=True)
    assert not cached.done("ab" + "0" * 62) and cached.done("cd" + "0" * 62)
    assert cached.hit("cd" + "0" * 62) is None  # a re-timing run plans no hit
    assert cached.collect("ab" + "0" * 62, None).timed["source"] == "cache"
    assert cached.collect("cd" + "0" * 62, None).timed["source"] == "this run"
    assert cached.collect("ef" + "0" * 62, "boom").error == "boom"
    assert timed_label({**timed, "git_commit": "0123456789abc"}) == "now on h (Some CPU) at 0123456789"
    assert timed_label({"device": "cuda:0", "gpu": "H100", "cpu": "Some CPU"}) == "? on ? (H100) at unknown co"
    assert timed_label({"measured_at": "now"}) == "now on ? (unknown device) at unknown co"


def test_cache_round_trip_and_damaged_entries(tmp_path):
    cache = GenerationCache(tmp_path / "cache")
    audio = (0.1 * np.sin(np.arange(1600) / 3.0)).astype(np.float32)
    path = cache.put("ab" + "0" * 62, Generated(audio, 16000, timings={"sampling": 0.5}, meta={"x": 1}))
    hit, hit_path = cache.get("ab" + "0" * 62)
    assert hit_path == path and np.array_equal(hit.audio, audio) and hit.timings == {"sampling": 0.5}
    assert cache.size() == 1 and cache.get("cd" + "0" * 62) is None
    path.write_bytes(b"garbage")
    assert cache.get("ab" + "0" * 62) is None  # regenerated, never trusted
    with pytest.raises(ValueError, match="not cached"):
        cache.put("ef" + "0" * 62, Generated(None, 16000, error="boom"))


# --- external system --------------------------------------------------------------------------------------

EXTERNAL = textwrap.dedent(
    """
    import json, sys
    import numpy as np, soundfile as sf
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if "bad" in r["id"]:
            continue  # this program fails on some items
        sf.write(r["output"], 0.1 * np.sin(np.arange(24000) / 4.0), 24000)
        if r["seed"] == 1:
            json.dump({"timings": {"model": 0.25}}, open(r["output"] + ".json", "w"))
    """
)


def test_external_command_contract(tmp_path):
    script = tmp_path / "tts.py"
    script.write_text(EXTERNAL)
    system = ExternalSystem([sys.executable, str(script), "{input}"], "ext")
    items = [_item(tmp_path, "good"), _item(tmp_path, "bad")]
    out = system.generate([items[0], items[1], items[0]], [0, 0, 1])
    assert out[0].error is None and out[0].sample_rate == 16000 and len(out[0].audio) == 16000  # 1 s, resampled
    assert out[1].error and "bad" not in out[0].meta
    assert out[2].timings == {"model": 0.25}
    assert set(out[0].timings) == {"total"} and out[0].meta["timing"].startswith("command wall time")


# --- the runner -------------------------------------------------------------------------------------------


def _config(tmp_path, **extra) -> BenchConfig:
    real = Path(REAL).resolve()
    manifest = write_manifest(
        [
            EvalItem(
                "ok-1",
                "He was not an ill disposed young man.",
                str(real / "librivox_0890.wav"),
                "librivox",
                target_audio=str(real / "librivox_0880.wav"),
            ),
            EvalItem("no-phonemes", "...", str(real / "cards_001.wav"), "cards"),
        ],
        tmp_path / "set.jsonl",
    )
    data = {
        "name": "t",
        "output_dir": str(tmp_path / "out"),
        "seeds": [0, 1],
        "testsets": [{"name": "t", "manifest": str(manifest)}],
        "systems": [
            {"kind": "flashspeech", "checkpoint": "random:tiny", "steps": [1, 2]},
            {"kind": "ground_truth"},
        ],
        "suites": {"wer": {}, "rtf": {}},
        "mlflow": False,
        "reports": False,
        "bootstrap_resamples": 50,
        **extra,
    }
    return BenchConfig.from_dict(data)


def test_run_records_failures_and_resumes_from_the_cache(tmp_path):
    config = _config(tmp_path)
    first = run_benchmark(config, progress=False)
    items = first.results.items
    assert len(items) == 3 * 2 * 2  # 3 systems x 2 items x 2 seeds
    failed = items[items["status"] == "failed"]
    assert set(failed["item_id"]) == {"no-phonemes"} and len(failed) == 6
    assert failed[failed["system"] == "t:flashspeech@1"]["error"].str.contains("no phonemes").all()
    assert failed[failed["system"] == "t:ground_truth"]["error"].str.contains("no ground-truth").all()
    ok = items[items["status"] == "ok"]
    assert ok["wer.wer"].notna().all() and ok[ok["kind"] == "flashspeech"]["rtf.rtf"].gt(0).all()
    agg = first.results.aggregates.set_index(["system", "suite", "metric"])["value"]
    assert agg[("t:flashspeech@2", "generation", "failed")] == 2
    assert agg[("t:ground_truth", "wer", "wer_corpus")] < 0.5  # tiny.en on the real recording
    assert (first.generated, first.cached) == (4 + 4 + 2, 0)  # ground truth: one generation serves both seeds
    record = first.results.metadata["record"]
    assert record["config"] == "t" and record["provenance"]["commit"] == first.results.metadata["run"]["git_commit"]
    systems = first.results.metadata["systems"]
    assert list(systems) == ["t:flashspeech@1", "t:flashspeech@2", "t:ground_truth"]
    assert systems["t:flashspeech@2"]["key"] == {
        "testset": "t", "name": "flashspeech@2", "kind": "flashspeech", "series": "flashspeech",
        "family": "consistency", "sampler": "consistency", "steps": 2, "nfe": 2, "task": "tts", "noise_level": None,
    }  # fmt: skip
    saved = (tmp_path / "out" / "items.csv").read_text()
    assert "no phonemes" in saved
    # what the WER was computed from is in the table, not only in the score cache
    assert (ok["text"] == "He was not an ill disposed young man.").all()
    assert (ok["wer.reference"] == "he was not an ill disposed young man").all()
    truth = ok[ok["kind"] == "ground_truth"]
    assert truth["wer.hypothesis_raw"].str.contains("young man", case=False).all()
    assert "wer.hypothesis" in items.columns and "he was not an ill disposed young man" in saved
    score_cache = tmp_path / "generation-cache" / "scores"
    # rows cached per suite and system: wer x 3 systems; rtf is never cached (it must not replay old timings)
    assert len(list(score_cache.glob("*.json"))) == 3
    again = run_benchmark(config, progress=False)
    assert len(list(score_cache.glob("*.json"))) == 3  # same samples, same suites: nothing rescored
    assert (again.generated, again.cached) == (2 + 2 + 1, 2 + 2 + 2)  # only the failed ones are retried
    np.testing.assert_allclose(
        again.results.items["wer.wer"].to_numpy(dtype=float), items["wer.wer"].to_numpy(dtype=float)
    )


def test_adding_a_system_scores_only_that_system(tmp_path, monkeypatch):
    from suites.wer.suite import WerSuite

    config = _config(tmp_path)
    first = run_benchmark(config, progress=False)
    scored: list[str] = []
    original = WerSuite.score

    def spy(self, samples, progress=False, context=None):
        scored.extend(s.system for s in samples)
        return original(self, samples, progress=progress, context=context)

    monkeypatch.setattr(WerSuite, "score", spy)
    systems = [
        {"kind": "flashspeech", "checkpoint": "random:tiny", "steps": [1, 2]},
        {"kind": "ground_truth"},
        {"kind": "flashspeech", "name": "more", "checkpoint": "random:tiny", "steps": [4]},
    ]
    again = run_benchmark(_config(tmp_path, systems=systems), progress=False)
    assert set(scored) == {"t:more@4"}
    before = first.results.items.set_index(["system", "item_id", "seed"])["wer.wer"]
    after = again.results.items.set_index(["system", "item_id", "seed"])["wer.wer"].loc[before.index]
    np.testing.assert_allclose(after.to_numpy(dtype=float), before.to_numpy(dtype=float))


def test_a_deterministic_systems_seeds_are_scored_once_and_their_rows_copied(tmp_path, monkeypatch):
    from suites.wer.suite import WerSuite

    scored: list[tuple[str, str, int]] = []
    original = WerSuite.score_batch

    def spy(self, samples):
        scored.extend(s.key for s in samples)
        return original(self, samples)

    monkeypatch.setattr(WerSuite, "score_batch", spy)
    run = run_benchmark(_config(tmp_path), progress=False)
    truth = [k for k in scored if k[0] == "t:ground_truth"]
    model = [k for k in scored if k[0] == "t:flashspeech@1"]
    assert truth == [("t:ground_truth", "ok-1", 0)]  # one recording: seed 1 is the same audio, not transcribed again
    assert sorted(k[2] for k in model) == [0, 1]  # a sampled system's seeds differ: both are scored
    items = run.results.items.set_index(["system", "item_id", "seed"])
    assert (
        items.loc[("t:ground_truth", "ok-1", 1), "wer.hypothesis_raw"]
        == items.loc[("t:ground_truth", "ok-1", 0), "wer.hypothesis_raw"]
    )
    assert items.loc[("t:ground_truth", "no-phonemes", 1), "status"] == "failed"  # failures stay per seed
    assert WerSuite.rows_per_sample and not SUITES["similarity"].rows_per_sample  # prompts looked across


# --- the items table: what a researcher audits ------------------------------------------------------------


def test_items_table_carries_text_and_scalar_details_through_save_and_load(tmp_path):
    from bench.results import AGGREGATE_COLUMNS, GenerationRecord, Results, groups_table, items_table
    from reports.tables import is_missing
    from suites.base import ItemScore

    records = [
        GenerationRecord("t:s", "flashspeech", 2, item, "1089", 0, f"{item}.wav", 1.0) for item in ("a", "b")
    ] + [GenerationRecord("t:s", "flashspeech", 2, "c", "1089", 0, None, None, error="RuntimeError: boom")]
    wer = {"wer": 0.0, "substitutions": 0.0, "deletions": 0.0, "insertions": 0.0, "ref_words": 2.0, "hyp_words": 2.0}
    empty = {**wer, "wer": 1.0, "deletions": 1.0, "ref_words": 1.0, "hyp_words": 0.0}
    scores = {
        "wer": [
            ItemScore("wer", "t:s", "a", 0, wer, {"text": "Fifty-five?", "reference": "55", "hypothesis": "55",
                                                  "hypothesis_raw": "55."}),
            ItemScore("wer", "t:s", "b", 0, empty, {"text": "Hi.", "reference": "hi", "hypothesis": "",
                                                    "hypothesis_raw": "", "note": "empty audio scored as ..."}),
        ],
        "similarity": [
            ItemScore("similarity", "t:s", "a", 0, {"sim_o": 0.5, "sim_r": 0.25}, {"spk_id_nearest": "1089"}),
            ItemScore("similarity", "t:s", "b", 0, {"sim_o": 0.4}, {"sim_r": "no reconstruction", "backend": "x"}),
        ],
        "prosody": [
            ItemScore("prosody", "t:s", "a", 0, {"duration_s": 1.0}, {"pitch_hist": [1, 2], "voiced_frames": 70,
                                                                    "level": 3}),
            ItemScore("prosody", "t:s", "b", 0, {"duration_s": 1.0}, {"level": "high"}),  # mixed: all text
            ItemScore("prosody", "t:s", "a", None, {"seed_duration_std_s": 0.1}, {"seeds": [0, 1]}),
        ],
    }  # fmt: skip
    items = items_table(records, scores)
    row = items.set_index("item_id").loc["a"]
    assert row["text"] == "Fifty-five?" and items.set_index("item_id").loc["b", "text"] == "Hi."
    assert (row["wer.reference"], row["wer.hypothesis"], row["wer.hypothesis_raw"]) == ("55", "55", "55.")
    assert row["wer.substitutions"] == 0 and row["similarity.sim_o"] == 0.5 and row["prosody.voiced_frames"] == 70
    assert items.set_index("item_id").loc["b", "similarity.sim_r_note"] == "no reconstruction"
    assert "prosody.pitch_hist" not in items.columns and "prosody.seeds" not in items.columns  # arrays stay out
    assert "wer.text" not in items.columns and items.columns.get_loc("text") < items.columns.get_loc("wer.wer")
    assert is_missing(items.set_index("item_id").loc["c", "text"])  # failed generation: no suite row

    results = Results(items, groups_table(scores), pd.DataFrame(columns=AGGREGATE_COLUMNS), metadata={"run": {}})
    loaded = Results.load(results.save(tmp_path / "run")).items.set_index("item_id")
    a, b = loaded.loc["a"], loaded.loc["b"]
    assert (a["wer.reference"], a["wer.hypothesis"], a["similarity.spk_id_nearest"]) == ("55", "55", "1089")
    assert a["text"] == "Fifty-five?" and a["wer.hypothesis_raw"] == "55." and a["prosody.voiced_frames"] == 70
    assert is_missing(b["wer.hypothesis"]) and b["wer.hyp_words"] == 0  # an empty string reads back as missing
    assert b["wer.note"] == "empty audio scored as ..." and b["similarity.sim_r_note"] == "no reconstruction"
    assert loaded["similarity.sim_r"].dtype == float and loaded["wer.wer"].dtype == float
    assert list(loaded["prosody.level"][:2]) == ["3", "high"]
