"""The shipped checkpoints' model card, rendered from their training metadata and a benchmark's results.

`flashspeech-bench model-card --results outputs/model-card` (after `flashspeech-bench run --config
model-card`) rewrites `flashspeech/pretrained/README.md`: what each checkpoint is, how it was trained
(stages, steps, wall time, machine, data, speech encoder, from the checkpoint's own metadata) and the
measured numbers with their 95 % bootstrap CIs, next to ground truth, with the card's targets checked (`targets`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.results import Results
from flashspeech.checkpoint import read_description, resolve_checkpoint

COLUMNS = [
    ("wer", "wer_corpus", "WER", "{:.3f}"),
    ("similarity", "sim_o", "SIM-o", "{:.3f}"),
    ("similarity", "spk_id_acc", "speaker ID", "{:.2f}"),
    ("prosody", "pitch_jsd", "pitch JSD", "{:.3f}"),
    ("rtf", "rtf", "RTF (CPU)", "{:.3f}"),
]


def _rows(frame: pd.DataFrame, system: str, suite: str, metric: str) -> pd.DataFrame:
    return frame[(frame.system == system) & (frame.suite == suite) & (frame.metric == metric)]


def _cell(frame: pd.DataFrame, system: str, suite: str, metric: str, fmt: str) -> str:
    row = _rows(frame, system, suite, metric)
    if row.empty or not math.isfinite(float(row.value.iloc[0])):
        return "-"
    r = row.iloc[0]
    text = fmt.format(float(r.value))
    if math.isfinite(float(r.ci_low)) and math.isfinite(float(r.ci_high)):
        text += f" [{fmt.format(float(r.ci_low))}, {fmt.format(float(r.ci_high))}]"
    return text


def _value(frame: pd.DataFrame, system: str, suite: str, metric: str) -> float:
    row = _rows(frame, system, suite, metric)
    return float(row.value.iloc[0]) if not row.empty else math.nan


def results_table(results: Results, testset: str) -> tuple[str, pd.DataFrame]:
    frame = results.aggregates
    frame = frame[frame.system.str.startswith(f"{testset}:")]
    systems = list(dict.fromkeys(frame.system))
    lines = ["| system | " + " | ".join(c[2] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for system in systems:
        cells = [_cell(frame, system, suite, metric, fmt) for suite, metric, _, fmt in COLUMNS]
        lines.append(f"| {system.split(':', 1)[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines), frame


def targets(frame: pd.DataFrame, testset: str, system: str = "flashspeech@2") -> list[str]:
    """The card's targets for FlashSpeech at 2 steps: WER <= ground truth + 0.10, SIM-o >= 0.75, speaker ID >= 0.80."""
    name = f"{testset}:{system}"
    wer = _value(frame, name, "wer", "wer_corpus")
    gt_wer = _value(frame, f"{testset}:ground_truth", "wer", "wer_corpus")
    sim, spk = _value(frame, name, "similarity", "sim_o"), _value(frame, name, "similarity", "spk_id_acc")
    checks = [
        (f"corpus WER <= ground truth + 0.10 ({gt_wer:.3f} + 0.10)", wer, wer <= gt_wer + 0.10),
        ("SIM-o >= 0.75", sim, sim >= 0.75),
        ("prompt speaker nearest in >= 80 % of items", spk, spk >= 0.80),
    ]
    return [f"| {what} | {value:.3f} | {'met' if ok else '**missed**'} |" for what, value, ok in checks]


def training_rows(name: str) -> list[str]:
    description = read_description(f"pretrained:{name}")
    rows = []
    for h in description["metadata"].get("training", []):
        enc = h.get("speech_encoder", "-")
        wall = h.get("train_wall_s", h.get("wall_s_this_session", math.nan))
        val = h.get("validation", {}).get("val_mse_sigma80")
        mse = f"{val:.3f}" if val is not None else "-"
        rows.append(
            f"| {h['stage']} | {h['objective']} | {h['steps']} | {wall / 60:.1f} min | {h['machine']} | {enc} | {mse} |"
        )
    return rows


def describe_data(name: str) -> dict[str, Any]:
    history = read_description(f"pretrained:{name}")["metadata"].get("training", [])
    return history[0] if history else {}


CURVES_PNG = "training_curves.png"


def metric_rows(stage_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a stage run's metrics.jsonl (none when it has no such file)."""
    path = Path(stage_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def last_step(stage_dir: str | Path) -> int:
    """The last step a stage run logged (0 when it logged none)."""
    return max((int(r.get("step", 0)) for r in metric_rows(stage_dir)), default=0)


def validation_curves(runs: dict[str, Path | tuple[Path, int]]) -> dict[str, list[tuple[int, float]]]:
    """(step, held-out one-step MSE at sigma 80) per run directory's metrics.jsonl; runs without one are left out.

    A run given as (directory, offset) has its steps shifted by offset: a stage that starts from another
    run's weights is drawn where that run ended.
    """
    curves = {}
    for label, run in runs.items():
        directory, offset = run if isinstance(run, tuple) else (run, 0)
        points = [
            (offset + int(r["step"]), float(r["val_mse_sigma80"]))
            for r in metric_rows(directory)
            if "val_mse_sigma80" in r
        ]
        if points:
            curves[label] = points
    return curves


def plot_validation_curves(curves: dict[str, list[tuple[int, float]]], out: Path) -> Path:
    from matplotlib.figure import Figure

    from reports.plots import figure_png

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    for label, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out one-step MSE, sigma 80")
    ax.set_title("Validation: one-step denoising error (latent variance ~0.18)")
    ax.grid(alpha=0.3)
    ax.legend()
    out.write_bytes(figure_png(fig))
    return out


def render(results_dir: str | Path, testset: str = "espeak", notes: str = "", curves_png: str | None = None) -> str:
    results = Results.load(results_dir)
    table, frame = results_table(results, testset)
    data = describe_data("flashspeech-tiny")
    sizes = {
        name: (resolve_checkpoint(f"pretrained:{name}") / "model.safetensors").stat().st_size / 1e6
        for name in ("flashspeech-tiny", "diffusion-tiny")
    }
    stage_header = (
        "| stage | objective | steps | training wall time | machine | speech encoder | held-out MSE, sigma 80 |\n"
        "|---|---|---|---|---|---|---|"
    )
    parts = [
        "# Shipped checkpoints: model card",
        "",
        "Rendered by `flashspeech-bench model-card --results "
        f"{results_dir}` from the checkpoints' own metadata and the results of "
        "`flashspeech-bench run --config model-card`. Do not edit the numbers by hand.",
        "",
        "| checkpoint | what | file |",
        "|---|---|---|",
        f"| `flashspeech-tiny` | FlashSpeech, `tiny` preset (5.6 M + 2 x 0.34 M refiners), all three stages | "
        f"{sizes['flashspeech-tiny']:.1f} MB float16 |",
        f"| `diffusion-tiny` | NaturalSpeech 2-style EDM latent diffusion, same network (`tiny-diffusion`) | "
        f"{sizes['diffusion-tiny']:.1f} MB float16 |",
        "",
        "## Data",
        "",
        f"{data.get('utterances', '?')} utterances, {data.get('hours', math.nan):.2f} h, "
        f"{len(data.get('speakers', []))} synthetic espeak-ng voices ({', '.join(data.get('speakers', []))}); "
        "test sentences (every 10th) excluded; 64 of the training voices' test sentences are the validation "
        "set (the last column of the training tables: one-step denoising MSE at sigma 80 at the end of the stage; "
        "the normalised latent's variance is about 0.18). The 5 held-out voices (f5, m8, klatt4, annie, "
        "travis) and the test sentences are never trained on. Codec: the built-in MelCodec (100 log-mels, 80 frames/s, "
        "Griffin-Lim). These models only know 12 synthetic voices: on real speech prompts they are out of "
        "domain.",
        "",
        "## Training",
        "",
        "`flashspeech-tiny` (`flashspeech-bench train --config tiny`):",
        "",
        stage_header,
        *training_rows("flashspeech-tiny"),
        "",
        "`diffusion-tiny` (`flashspeech-bench train --config tiny-diffusion`):",
        "",
        stage_header,
        *training_rows("diffusion-tiny"),
        "",
        *([f"![held-out validation curves]({curves_png})", ""] if curves_png else []),
        f"## Measured on the held-out voices (`{testset}` set)",
        "",
        "Offline suites: Whisper tiny.en corpus WER (whisper normaliser), resemblyzer SIM-o and speaker "
        "identification (the prompt's speaker is the nearest of the 5 held-out speakers' prompt centroids), "
        "pitch JSD against ground truth; 95 % bootstrap CIs over items; seeds "
        f"{results.metadata.get('config', {}).get('seeds', '?')}. The diffusion baseline runs without prosody "
        "refinement (alpha 0). RTF is batch-1 on the CPU that ran the benchmark "
        f"({results.metadata.get('environment', {}).get('device', 'cpu')}); when other jobs share that CPU it "
        "is not a speed figure (`flashspeech-bench speed` is).",
        "",
        table,
        "",
        "Targets (FlashSpeech at 2 steps):",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *targets(frame, testset),
        "",
    ]
    if notes:
        parts += ["## Notes", "", notes.strip(), ""]
    return "\n".join(parts)


def write_card(
    results_dir: str | Path,
    out: str | Path,
    notes_file: str | Path | None = None,
    runs: dict[str, Path | tuple[Path, int]] | None = None,
) -> Path:
    """Write the card to `out`; with `runs` (label -> stage run directory) also draw their validation curves
    next to it (a run without validation rows is left out of the figure, and said so)."""
    notes = Path(notes_file).read_text(encoding="utf-8") if notes_file else ""
    out = Path(out)
    curves_png = None
    if runs:
        curves = validation_curves(runs)
        missing = sorted(set(runs) - set(curves))
        if missing:
            print(f"no validation curves for {', '.join(missing)} (no val_* rows in their metrics.jsonl)")
        if curves:
            curves_png = plot_validation_curves(curves, out.parent / CURVES_PNG).name
    out.write_text(render(results_dir, notes=notes, curves_png=curves_png), encoding="utf-8")
    return out
