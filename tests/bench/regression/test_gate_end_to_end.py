"""The regression gate as a user meets it: `flashspeech-bench run --gate` on the committed 16-item `smoke` set,
with an external system that copies the ground truth and is made worse on purpose (tests/fixtures/degradable_tts.py),
scored by Whisper tiny.en, resemblyzer and RTF. Identical code passes cold or warm; a truncated, shrunken or slower
candidate fails (exit 3); a warm run that times nothing fails closed on RTF unless allowed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.gate.compare import compare
from bench.gate.rules import GateConfig
from bench.results import Results
from bench.testsets.embedded import embedded_manifest

SCRIPT = Path("tests/fixtures/degradable_tts.py").resolve()
PACE = 0.02  # seconds of "synthesis" per second of audio: RTF ~0.02, far above the program's own overhead
GATE = """
[gate.metrics."rtf.rtf"]
allowed_rel = 0.5  # the external program's timing includes a process start: wider than the default 10 %
"""

CONFIG = """
name = "gate-e2e"
seeds = [0]
mlflow = false
reports = false
bootstrap_resamples = 200
cache_dir = "{cache}"

[[testsets]]
name = "smoke"

[[systems]]
kind = "external"
name = "copy"
batch_size = 2  # 8 batches: enough for the sign-flip test over batch clusters (RTF), half the process starts
command = ["{{python}}", "{script}", "{{input}}", "{targets}", "{settings}"]
fingerprint_files = ["{script}", "{settings}"]

[suites.wer]

[suites.similarity]

[suites.rtf]
"""


class Bench:
    """One config, one cache; `run(name, truncate=..., pace=..., *args)` runs it through the CLI."""

    def __init__(self, root: Path):
        self.root = root
        targets = {item.id: item.target_audio for item in embedded_manifest("smoke").items}
        (root / "targets.json").write_text(json.dumps(targets))
        self.settings = root / "settings.json"
        self.config = root / "gate-e2e.toml"
        self.config.write_text(
            CONFIG.format(cache=root / "cache", script=SCRIPT, targets=root / "targets.json", settings=self.settings)
        )
        self.gate = root / "gate.toml"
        self.gate.write_text(GATE)

    def run(self, name: str, *args: str, truncate: float = 0.0, pace: float = PACE) -> tuple[int, Path]:
        self.settings.write_text(json.dumps({"truncate": truncate, "seconds_per_audio_s": pace}))
        out = self.root / name
        argv = ["run", "--config", str(self.config), "--output-dir", str(out), "--quiet", *args]
        return main(argv), out

    def gated(self, name: str, baseline: Path, *args: str, **degrade: float) -> tuple[int, Path]:
        return self.run(name, "--gate", str(baseline), "--gate-config", str(self.gate), *args, **degrade)

    def verdicts(self, baseline: Path, candidate: Path) -> dict[str, str]:
        report = compare(Results.load(baseline), Results.load(candidate), GateConfig.from_toml(self.gate))
        return {r.metric: r.verdict for r in report.rows if r.system.endswith("copy")}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Bench:
    return Bench(tmp_path_factory.mktemp("gate-e2e"))


@pytest.fixture(scope="module")
def baseline(bench) -> Path:
    code, out = bench.run("baseline")
    assert code == 0
    return out


def _contended(results: Path) -> bool:
    items = Results.load(results).items
    return bool(items["contended"].fillna(False).astype(bool).any())


@pytest.mark.slow
def test_identical_code_passes_cold_or_warm(bench, baseline, capsys):
    code, warm = bench.gated("identical", baseline)  # the gate re-times: every generation again, scores cached
    out = capsys.readouterr().out
    assert code == 0 or _contended(warm) or _contended(baseline), out[-3000:]  # busy: RTF fails closed
    assert "16 generated, 0 from the cache" in out
    b, c = (Results.load(p).metadata["evaluators"] for p in (baseline, warm))
    assert b == c  # the similarity fingerprint does not depend on what the score cache held
    verdicts = bench.verdicts(baseline, warm)
    assert verdicts["wer.wer_corpus"] == verdicts["similarity.sim_o"] == "unchanged"
    # warm and not re-timed: quality from the cache; RTF cannot compare, so the gate fails closed ...
    code, _ = bench.gated("warm-untimed", baseline, "--no-retime")
    out = capsys.readouterr().out
    assert code == 3 and "0 generated, 16 from the cache" in out and "a gating metric must compare" in out
    # ... unless that is explicitly allowed, which the report says
    code, _ = bench.gated("warm-allowed", baseline, "--no-retime", "--allow-incomparable", "rtf.rtf")
    assert code == 0 and "not comparable, allowed (--allow-incomparable)" in capsys.readouterr().out


@pytest.mark.slow
def test_truncating_40_percent_fails_on_wer(bench, baseline):
    code, out = bench.gated("truncated-40", baseline, truncate=0.4)
    assert code == 3
    verdicts = bench.verdicts(baseline, out)
    assert verdicts["wer.wer_corpus"] == "regressed" and verdicts["wer.wer"] == "regressed"


@pytest.mark.slow
def test_truncating_15_percent_is_worse(bench, baseline):
    code, out = bench.gated("truncated-15", baseline, truncate=0.15)
    verdict = bench.verdicts(baseline, out)["wer.wer_corpus"]
    assert verdict in ("regressed", "worse (not significant)")
    assert code == 3 or verdict == "worse (not significant)"


@pytest.mark.slow
def test_a_shrunken_test_set_fails(bench, baseline):
    code, out = bench.gated("shrunken", baseline, "--set", "testsets.0.max_items=12")
    assert code == 3
    assert bench.verdicts(baseline, out)["testset.items"] == "regressed"


@pytest.mark.slow
def test_a_2x_slowdown_fails_on_rtf(bench, baseline):
    code, out = bench.gated("slower", baseline, pace=2 * PACE)
    assert code == 3
    rtf = bench.verdicts(baseline, out)["rtf.rtf"]
    busy = _contended(out) or _contended(bench.root / "baseline")
    assert rtf == "regressed" or (rtf == "not comparable" and busy)  # timed on a busy machine: fails closed


def test_the_fixture_program_copies_and_truncates(tmp_path):
    """The degradable program itself, without the harness (fast)."""
    import subprocess

    import soundfile as sf

    item = embedded_manifest("smoke").items[0]
    (tmp_path / "t.json").write_text(json.dumps({item.id: item.target_audio}))
    (tmp_path / "s.json").write_text(json.dumps({"truncate": 0.5}))
    request = {"id": item.id, "output": str(tmp_path / "o.wav")}
    (tmp_path / "r.jsonl").write_text(json.dumps(request) + "\n")
    argv = [sys.executable, str(SCRIPT), str(tmp_path / "r.jsonl"), str(tmp_path / "t.json"), str(tmp_path / "s.json")]
    subprocess.run(argv, check=True)
    full, half = sf.read(item.target_audio)[0], sf.read(tmp_path / "o.wav")[0]
    assert abs(len(half) - len(full) / 2) <= 1
    assert "synthesis" in json.loads((tmp_path / "o.wav.json").read_text())["timings"]
