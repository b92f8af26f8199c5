"""How small a change the regression gate flags on the shipped test sets.

An external system copies each item's ground-truth recording (tests/fixtures/degradable_tts.py) and is made worse
step by step: the end of every clip cut off (WER), white noise added (SIM-o), a slower pace (RTF). Each step runs
through the CLI (`flashspeech-bench run --gate <clean run>`) on `smoke`, `smoke-seen` and `real` with the default
gate, and its verdicts are written as Markdown.

    python docs/measurements/gate_sensitivity.py OUT.md [WORK_DIR]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.cli import main
from bench.gate.compare import compare
from bench.gate.rules import GateConfig
from bench.results import Results
from bench.testsets.embedded import embedded_manifest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "fixtures" / "degradable_tts.py"
SETS = ("smoke", "smoke-seen", "real")
PACE = 0.02
STEPS = [
    *(("truncate", x) for x in (0.05, 0.1, 0.15, 0.2, 0.3)),
    *(("noise_snr_db", x) for x in (30.0, 20.0, 10.0)),
    *(("pace", x) for x in (1.25, 1.5, 2.0)),
]
METRICS = ("wer.wer_corpus", "similarity.sim_o", "rtf.rtf")
CONFIG = """
name = "gate-sensitivity"
seeds = [0]
mlflow = false
reports = false
cache_dir = "{cache}"
{testsets}
[[systems]]
kind = "external"
name = "copy"
command = ["{{python}}", "{script}", "{{input}}", "{targets}", "{settings}"]
fingerprint_files = ["{script}", "{settings}"]

[suites.wer]

[suites.similarity]

[suites.rtf]
"""


def run(work: Path, name: str, settings: dict, *args: str) -> tuple[int, Path]:
    (work / "settings.json").write_text(json.dumps(settings))
    out = work / name
    return main(["run", "--config", str(work / "config.toml"), "--output-dir", str(out), "--quiet", *args]), out


def main_(out_md: str, work_dir: str | None = None) -> None:
    work = Path(work_dir or tempfile.mkdtemp(prefix="gate-sensitivity-"))
    work.mkdir(parents=True, exist_ok=True)
    targets = {i.id: i.target_audio for s in SETS for i in embedded_manifest(s).items}  # ids are unique across sets
    (work / "targets.json").write_text(json.dumps(targets))
    testsets = "".join(f'\n[[testsets]]\nname = "{s}"\n' for s in SETS)
    (work / "config.toml").write_text(
        CONFIG.format(
            cache=work / "cache",
            testsets=testsets,
            script=SCRIPT,
            targets=work / "targets.json",
            settings=work / "settings.json",
        )
    )
    started = time.time()
    code, clean = run(work, "clean", {"seconds_per_audio_s": PACE}, "--retime")
    assert code == 0, "the clean run failed"
    rows = []
    for kind, value in STEPS:
        settings = {"seconds_per_audio_s": PACE * (value if kind == "pace" else 1.0)}
        if kind != "pace":
            settings[kind] = value
        code, out = run(work, f"{kind}-{value}", settings, "--gate", str(clean))
        report = compare(Results.load(clean), Results.load(out), GateConfig())
        for r in report.rows:
            if r.metric in METRICS:
                rows.append((r.system.split(":")[0], f"{kind} {value:g}", r.metric, r, code))
    lines = [
        "# What the gate flags on the shipped sets (measured)",
        "",
        f"`python docs/measurements/gate_sensitivity.py`, {time.strftime('%Y-%m-%d')}, "
        f"{time.time() - started:.0f} s: an external system copies the ground truth of `smoke` (16 items, 2 "
        "voices), `smoke-seen` (16 items, 4 voices) and `real` (12 items, 3 voices), one seed, scored with Whisper "
        "tiny.en, resemblyzer and RTF on this machine's CPU; each degraded run gated (default rules) against the "
        "clean one. Δ: candidate - baseline; verdict as the gate prints it (its p is Holm-adjusted over the run's "
        "comparisons); exit: the run's exit status (3 = the gate failed).",
        "",
        "| set | degradation | metric | baseline | Δ | CI of Δ | allowed | verdict | exit |",
        "|---|---|---|---:|---:|---|---:|---|---:|",
    ]
    for testset, step, metric, r, code in rows:
        ci = f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]" if r.ci_low == r.ci_low else "–"
        lines.append(
            f"| {testset} | {step} | {metric} | {r.baseline:.4f} | {r.delta:+.4f} | {ci} | {r.allowed:+.4f} "
            f"| {r.verdict} | {code} |"
        )
    Path(out_md).write_text("\n".join(lines) + "\n")
    print(f"wrote {out_md}")


if __name__ == "__main__":
    main_(*sys.argv[1:3])
