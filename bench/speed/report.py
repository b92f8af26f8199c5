"""The speed results file (`results/speed/<config>-<device>.json`, written atomically) and its Markdown.

The JSON holds everything a reader needs to trust a figure: the config, `environment()`
(device, GPU name, driver, torch / CUDA / cuDNN versions, threads), the models (parameters, dtypes,
codec, compile), every system's per-call totals and per-stage times with their spreads, the speed-ups,
the suites' throughput, and each speed target (the paper's claims on one H100) with its value and pass / fail.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.record import Device
from bench.speed.generation import FlashSpeechResults
from bench.speed.settings import SpeedConfig
from flashspeech.timing import STAGES

SCHEMA = 1
TARGET_DEVICE = "one NVIDIA H100, paper preset"


def _find(systems: list[dict[str, Any]], batch: int, **fields: Any) -> dict[str, Any] | None:
    """The timed system at `batch` whose recorded fields (objective, sampler, steps) equal `fields`."""
    return next((s for s in systems if s["batch"] == batch and all(s[k] == v for k, v in fields.items())), None)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The speed targets (one H100, paper preset); `applicable` says whether this run is that setting."""
    cfg = report["config"]
    paper_gpu = cfg["device"].startswith("cuda") and cfg["preset"] == "paper"
    systems = report["flashspeech"]["systems"]
    ref = _find(systems, 1, objective="consistency", steps=2)
    base = _find(systems, 1, objective="diffusion", sampler=cfg["sampler"], steps=150)
    suites = report["suites"]
    full_suites = suites.get("whisper", {}).get("model") == "large-v3" and "wavlm_tdnn" in suites
    rows = [
        (
            "rtf_flashspeech_2step_batch1",
            "RTF of FlashSpeech, 2 steps, batch 1",
            ref and ref["rtf"],
            "<=",
            0.002,
            paper_gpu,
        ),
        (
            "speedup_diffusion150_vs_flashspeech2",
            "diffusion@150 time / FlashSpeech@2 time, batch 1",
            ref and base and base["time_s"]["median"] / ref["time_s"]["median"],
            ">=",
            25.0,
            paper_gpu,
        ),
        (
            "score_1200_items_s",
            f"wall time to score {suites['extrapolate_items']} items (Whisper + WavLM-TDNN)",
            suites.get("score_items_s"),
            "<",
            300.0,
            cfg["device"].startswith("cuda") and full_suites and suites["extrapolate_items"] == 1200,
        ),
    ]
    out = []
    for name, what, value, op, threshold, applicable in rows:
        passed = None
        if value is not None:
            passed = value <= threshold if op == "<=" else value >= threshold if op == ">=" else value < threshold
        out.append(
            {
                "name": name,
                "what": what,
                "value": value,
                "op": op,
                "threshold": threshold,
                "applicable": bool(applicable),
                "passed": passed,
                "defined_for": TARGET_DEVICE,
            }
        )
    return out


def build_report(
    config: SpeedConfig,
    flash: FlashSpeechResults,
    suites: dict[str, Any],
    environment: dict[str, Any],
    wall_s: float,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": "flashspeech-bench speed",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["flashspeech-bench", *sys.argv[1:]]) if sys.argv else None,
        "config": config.to_dict(),
        "environment": environment,
        "wall_s": wall_s,
        "flashspeech": {
            "models": flash.models,
            "systems": [s.to_dict() for s in flash.systems],
            "speedups": flash.speedups(config.reference_steps),
        },
        "suites": suites,
        "notes": [
            "Random weights throughout: timing only. Every system makes target_seconds of audio per item "
            "(total_frames forced), so RTFs and speed-ups compare equal work.",
            "time_s: end-to-end synthesize() (frontend, prosody, sampling, decoder) with CUDA synchronised "
            "around each call and each stage; 'other' = total - sum of stages.",
        ],
    }
    report["targets"] = targets(report)
    return report


def write_report(report: dict[str, Any], directory: str | Path) -> Path:
    """`<dir>/<config>-<device>.json`, written to a temporary file first and renamed into place."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report['config']['name']}-{Device.from_environment(report['environment']).slug}.json"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, sort_keys=False, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def markdown(report: dict[str, Any]) -> str:
    """Tables: environment, systems with the stage split, speed-ups, suites, targets."""
    env, cfg = report["environment"], report["config"]
    device = env.get("gpu") or env.get("cpu") or env["device"]
    lines = [
        f"### Speed: `{cfg['name']}` on {device}",
        "",
        f"torch {env['torch']}, CUDA {env.get('cuda')}, driver {env.get('driver') or '-'}, "
        f"{env['torch_threads']} CPU threads; dtype {cfg['dtype']}"
        f"{'' if cfg['dtype'] == 'float32' else ' (' + cfg['precision'] + ')'}, "
        f"compile {cfg['compile_mode'] if cfg['compile'] else 'off'}; {cfg['target_seconds']:g} s of audio per item, "
        f"{cfg['warmup']} warm-up, {cfg['repeats']} repeats (diffusion {cfg['diffusion_repeats'] or cfg['repeats']}).",
        "",
        "| system | batch | NFE | median ms | IQR ms | RTF | audio s / s | "
        + " | ".join(f"{s} ms" for s in (*STAGES, "other"))
        + " |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * (len(STAGES) + 1),
    ]
    for s in report["flashspeech"]["systems"]:
        stages = " | ".join(_ms(s["stages"][n]["median"]) for n in (*STAGES, "other"))
        lines.append(
            f"| {s['system']} | {s['batch']} | {s['nfe']} | {_ms(s['time_s']['median'])} | {_ms(s['time_s']['iqr'])} "
            f"| {s['rtf']:.5f} | {s['throughput_audio_s_per_s']:.1f} | {stages} |"
        )
    if report["flashspeech"]["speedups"]:
        lines += ["", "| speed-up | batch | x (time ratio) | NFE ratio |", "|---|---:|---:|---:|"]
        for r in report["flashspeech"]["speedups"]:
            lines.append(
                f"| {r['system']} / {r['reference']} | {r['batch']} | {r['speedup']:.1f} | {r['nfe_ratio']:.0f} |"
            )
    suites = report["suites"]
    rows = [(k, suites[k]) for k in ("whisper", "wavlm_tdnn") if k in suites]
    if rows:
        lines += [
            "",
            f"| suite model | batch | items/s | extrapolated s for {suites['extrapolate_items']} items |",
            "|---|---:|---:|---:|",
        ]
        for key, r in rows:
            lines.append(
                f"| {key}: {r['model']} ({r['compute_dtype']}) | {r['batch']} | {r['items_per_s']:.2f} | "
                f"{r['extrapolated_s']:.1f} |"
            )
    lines += ["", "| target | value | threshold | applies here | pass |", "|---|---:|---:|---|---|"]
    for t in report["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:.4g}"
        passed = "-" if t["passed"] is None else ("yes" if t["passed"] else "no")
        lines.append(
            f"| {t['what']} | {value} | {t['op']} {t['threshold']:g} | "
            f"{'yes' if t['applicable'] else 'no (' + t['defined_for'] + ')'} | {passed} |"
        )
    return "\n".join(lines)
