"""The shipped checkpoints' model card, rendered from their training metadata and a benchmark's results.

`flashspeech-bench model-card --results outputs/model-card` (after `flashspeech-bench run --config
model-card`) rewrites `flashspeech/pretrained/README.md`: what each checkpoint is, how it was trained
(stages, steps, wall time, machine, data, speech encoder, from the checkpoint's own metadata) and the
measured numbers with their 95 % bootstrap CIs, next to ground truth, with the card's targets checked (`targets`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.results import Results
from flashspeech.checkpoint import read_description, resolve_checkpoint

COLUMNS = [
    ("wer", "wer_corpus", "WER", "{:.3f}"),
    ("mos", "mos", "DistillMOS", "{:.2f}"),
    ("similarity", "sim_o", "SIM-o", "{:.3f}"),
    ("similarity", "spk_id_acc", "speaker ID", "{:.2f}"),
    ("prosody", "pitch_jsd", "pitch JSD", "{:.3f}"),
    ("rtf", "rtf", "RTF (CPU)", "{:.3f}"),
]


@dataclass(frozen=True)
class CardSet:
    """A test set of the card and the targets that apply to it."""

    name: str
    what: str
    wer_margin: float  # FlashSpeech@2 corpus WER <= ground truth + this
    speaker_id: float  # FlashSpeech@2 prompt speaker nearest in at least this share of items


CARD_SETS = (
    CardSet("smoke-seen", "training voices reading sentences never trained on", 0.05, 0.90),
    CardSet("smoke", "voices never trained on (zero-shot)", 0.10, 0.80),
)
MOS_MARGIN = 0.3  # FlashSpeech@2 DistillMOS >= codec resynthesis - this
SPEEDUP = 25.0  # FlashSpeech@2 at least this much faster than the quality-matched diffusion baseline


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
    """The card's table of `testset`'s systems (by their names) and the aggregate rows it was made from."""
    record = results.record
    labels = {k.label: k.name for k in record.system_keys(testset)}
    frame = results.aggregates[results.aggregates.system.isin(labels)]
    lines = ["| system | " + " | ".join(c[2] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for system in dict.fromkeys(frame.system):
        cells = [_cell(frame, system, suite, metric, fmt) for suite, metric, _, fmt in COLUMNS]
        lines.append(f"| {labels[system]} | " + " | ".join(cells) + " |")
    return "\n".join(lines), frame


class _Values:
    """A test set's aggregate values looked up by system series and steps (through the run record's keys)."""

    def __init__(self, results: Results, testset: str) -> None:
        self.record, self.testset, self.frame = results.record, testset, results.aggregates

    def steps(self, series: str) -> list[int]:
        return self.record.steps(self.testset, series)

    def name(self, series: str, steps: int | None = None) -> str:
        """The system's name as the run recorded it (for the card's text)."""
        key = self.record.find(self.testset, series, steps)
        return key.name if key is not None else series if steps is None else f"{series}@{steps}"

    def __call__(self, series: str, steps: int | None, suite: str, metric: str) -> float:
        key = self.record.find(self.testset, series, steps)
        return math.nan if key is None else _value(self.frame, key.label, suite, metric)


def _check(what: str, value: float, ok: bool, fmt: str = "{:.3f}") -> str:
    shown = fmt.format(value) if math.isfinite(value) else "not measured"
    return f"| {what} | {shown} | {'met' if ok and math.isfinite(value) else '**missed**'} |"


def targets(results: Results, card: CardSet, fs: str = "flashspeech", diffusion: str = "diffusion-heun") -> list[str]:
    """Issue 16's targets on one test set, each as a Markdown table row (what, measured, met / missed); `fs` and
    `diffusion` are the series (config entries) of FlashSpeech and of its diffusion baseline."""
    v = _Values(results, card.name)
    fs1, fs2 = v.name(fs, 1), v.name(fs, 2)
    wer2, gt_wer = v(fs, 2, "wer", "wer_corpus"), v("ground_truth", None, "wer", "wer_corpus")
    mos2, codec_mos = v(fs, 2, "mos", "mos"), v("codec_resynthesis", None, "mos", "mos")
    spk = v(fs, 2, "similarity", "spk_id_acc")
    rows = [
        _check(
            f"{fs2} corpus WER <= ground truth + {card.wer_margin:.2f} ({gt_wer:.3f})",
            wer2,
            wer2 <= gt_wer + card.wer_margin,
        ),
        _check(
            f"{fs2} DistillMOS >= codec resynthesis - {MOS_MARGIN} ({codec_mos:.2f})",
            mos2,
            mos2 >= codec_mos - MOS_MARGIN,
            "{:.2f}",
        ),
        _check(
            f"{fs2} prompt speaker nearest in >= {card.speaker_id:.0%} of items", spk, spk >= card.speaker_id, "{:.2f}"
        ),
    ]
    wer1, mos1 = v(fs, 1, "wer", "wer_corpus"), v(fs, 1, "mos", "mos")
    for steps in [s for s in v.steps(diffusion) if 16 <= s <= 32]:
        name = v.name(diffusion, steps)
        d_wer, d_mos = v(diffusion, steps, "wer", "wer_corpus"), v(diffusion, steps, "mos", "mos")
        rows.append(_check(f"{name} WER <= {fs1}'s ({wer1:.3f})", d_wer, d_wer <= wer1))
        rows.append(_check(f"{name} DistillMOS >= {fs1}'s ({mos1:.2f})", d_mos, d_mos >= mos1, "{:.2f}"))
    matched = quality_matched_steps(results, card.name, (fs, 2), diffusion)
    if matched is not None:
        steps, how = matched
        ratio = v(diffusion, steps, "rtf", "rtf") / v(fs, 2, "rtf", "rtf")
        rows.append(
            _check(
                f"{fs2} >= {SPEEDUP:g}x faster end to end than {v.name(diffusion, steps)} ({how})",
                ratio,
                ratio >= SPEEDUP,
                "{:.1f}x",
            )
        )

        def sampling(series: str, n: int) -> float:
            return v(series, n, "rtf", "rtf") * v(series, n, "rtf", "share_sampling")

        stage = sampling(diffusion, steps) / sampling(fs, 2)
        shown = f"{stage:.1f}x" if math.isfinite(stage) else "not measured"
        rows.append(f"| the same, latent sampling stage only (context: the rest is shared) | {shown} | - |")
    return rows


def quality_matched_steps(
    results: Results, testset: str, reference: tuple[str, int], series: str
) -> tuple[int, str] | None:
    """The fewest steps of `series` whose WER and DistillMOS are both at least as good as `reference`'s (a series
    and its steps), or, when no step count gets there, the one with the lowest WER (the returned text says which)."""
    v = _Values(results, testset)
    steps = v.steps(series)
    if not steps:
        return None
    ref_wer, ref_mos = v(*reference, "wer", "wer_corpus"), v(*reference, "mos", "mos")
    for n in steps:
        if v(series, n, "wer", "wer_corpus") <= ref_wer and v(series, n, "mos", "mos") >= ref_mos:
            return n, "the fewest steps at least as good on WER and MOS"
    best = min(steps, key=lambda n: v(series, n, "wer", "wer_corpus"))
    return best, "no step count matched its quality: the baseline's best WER"


def training_rows(name: str) -> list[str]:
    description = read_description(f"pretrained:{name}")
    rows = []
    for h in description["metadata"].get("training", []):
        enc = h.get("speech_encoder", "-")
        wall = h.get("train_wall_s", h.get("wall_s_this_session", math.nan))
        val = h.get("validation", {})

        def fmt(key: str, val=val) -> str:
            return f"{val[key]:.3f}" if key in val else "-"

        gain = f"{fmt('val_gain_sigma0.5')} ({fmt('val_wiener_gain_sigma0.5')})"
        rows.append(
            f"| {h['stage']} | {h['objective']} | {h['steps']} | {wall / 60:.1f} min | {h['machine']} | {enc} | "
            f"{fmt('val_mse_sigma80')} | {fmt('val_mse_sigma0.5')} | {gain if 'val_gain_sigma0.5' in val else '-'} |"
        )
    return rows


STAGE_HEADER = (
    "| stage | objective | steps | training wall time | machine | speech encoder | held-out MSE, sigma 80 | "
    "MSE, sigma 0.5 | gain at sigma 0.5 (Wiener) |\n|---|---|---|---|---|---|---|---|---|"
)


def describe_data(name: str) -> dict[str, Any]:
    history = read_description(f"pretrained:{name}")["metadata"].get("training", [])
    return history[0] if history else {}


CURVES_PNG = "training_curves.png"


@dataclass(frozen=True)
class Shipped:
    """A shipped checkpoint as the card lists it: what it is, and the recipe that trained it."""

    name: str
    what: str
    recipe: str
    training_note: str = ""  # appended to the training table's caption


SHIPPED = (
    Shipped("flashspeech-tiny", "FlashSpeech, `tiny` preset, anchored parametrisation, all three stages", "tiny"),
    Shipped(
        "diffusion-tiny",
        "NaturalSpeech 2-style latent diffusion, the same network (`tiny-diffusion`)",
        "tiny-diffusion",
    ),
    Shipped(
        "consistency-only-tiny",
        "the paper's Table 2 ablation: `flashspeech-tiny`'s adversarial stage without the adversarial loss "
        "(`ablation-adversarial.toml`)",
        "tiny-consistency-only",
        "; its first row is `diffusion-tiny`'s own training",
    ),
)
CHECKPOINTS = tuple(s.name for s in SHIPPED)
CURVE_METRICS = (("val_mse_sigma80", "one-step error, sigma 80"), ("val_mse_sigma0.5", "denoising error, sigma 0.5"))


def checkpoint_curves(checkpoints: dict[str, str] | None = None) -> dict[str, list[dict[str, float]]]:
    """Held-out validation rows per "<label>: <stage>" (label -> checkpoint; default: the shipped ones),
    from the `validation-<stage>.jsonl` files a recipe exports next to the weights. Steps count from the
    start of the checkpoint's first stage (a stage that started from another checkpoint's weights is drawn
    where that one ended); refinement stages, which leave the latent network alone, are left out, and so is
    a stage already drawn for an earlier checkpoint."""
    checkpoints = checkpoints or {name: f"pretrained:{name}" for name in CHECKPOINTS}
    curves: dict[str, list[dict[str, float]]] = {}
    drawn: set[tuple[str, int]] = set()
    for name, where in checkpoints.items():
        directory = resolve_checkpoint(where)
        offset = 0
        for entry in read_description(directory)["metadata"].get("training", []):
            stage, steps = entry["stage"], int(entry["steps"])
            path = directory / f"validation-{stage}.jsonl"
            if entry["objective"] != "refinement" and path.is_file() and (stage, offset) not in drawn:
                rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                curves[f"{name}: {stage}"] = [{**r, "step": offset + int(r["step"])} for r in rows]
                drawn.add((stage, offset))
            offset += steps
    return curves


def plot_validation_curves(curves: dict[str, list[dict[str, float]]], out: Path) -> Path:
    from matplotlib.figure import Figure

    from reports.plots import figure_png

    fig = Figure(figsize=(10, 3.6))
    for i, (key, title) in enumerate(CURVE_METRICS):
        ax = fig.add_subplot(1, len(CURVE_METRICS), i + 1)
        for label, rows in curves.items():
            points = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label=label)
        ax.set_xlabel("training step")
        ax.set_ylabel("held-out MSE")
        ax.set_title(f"Validation: {title}")
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    out.write_bytes(figure_png(fig))
    return out


def _baseline_grid(results: Results, series: str = "diffusion-heun") -> str:
    """Where the baseline's Heun grid stops before its final jump to 0, as a clause ("" when not run)."""
    for key in results.record.system_keys():
        if key.curve == series and key.steps is not None:
            described = (results.metadata.get("systems") or {}).get(key.label) or {}
            low = described.get("sampling", {}).get("sigmas", [])[-2:-1]
            if low:
                return f"; its Heun grid stops at sigma {low[0]:g} and jumps from there to D(x, {low[0]:g})"
    return ""


def render(results_dir: str | Path, notes: str = "", curves_png: str | None = None) -> str:
    results = Results.load(results_dir)
    data = describe_data("flashspeech-tiny")
    sizes = {
        name: (resolve_checkpoint(f"pretrained:{name}") / "model.safetensors").stat().st_size / 1e6
        for name in CHECKPOINTS
    }
    speakers = data.get("speakers", [])
    parts = [
        "# Shipped checkpoints: model card",
        "",
        "Rendered by `flashspeech-bench model-card --results "
        f"{results_dir}` from the checkpoints' own metadata and the results of "
        "`flashspeech-bench run --config model-card`. Do not edit the numbers by hand.",
        "",
        "| checkpoint | what | file |",
        "|---|---|---|",
        *(f"| `{s.name}` | {s.what} | {sizes[s.name]:.1f} MB float16 |" for s in SHIPPED),
        "",
        "## Data",
        "",
        f"`{data.get('data', '?')}`: {data.get('utterances', '?')} utterances, {data.get('hours', math.nan):.2f} h, "
        f"{len(speakers)} training voices ({', '.join(speakers)}); test sentences (every 10th) are never trained "
        "on, and 64 of the training voices' test sentences are the validation set of the training tables "
        "(held-out one-step denoising MSE at sigma 80 and 0.5 at the end of each stage, and the input gain dD/dx "
        "at sigma 0.5 against the Wiener gain: docs/training.md). Voices never trained on: the espeak-ng "
        "corpus's 5 held-out voices and the natural tier's flite awb and hibari heart. Codec: the built-in "
        "MelCodec (100 log-mels, 80 frames/s, Griffin-Lim).",
        "",
        "## Training",
        "",
        *(
            line
            for s in SHIPPED
            for line in (
                f"`{s.name}` (`flashspeech-bench train --config {s.recipe}`{s.training_note}):",
                "",
                STAGE_HEADER,
                *training_rows(s.name),
                "",
            )
        ),
        *([f"![held-out validation curves]({curves_png})", ""] if curves_png else []),
        "## Measured",
        "",
        "Offline suites: Whisper base corpus WER (greedy, whisper normaliser), DistillMOS, resemblyzer SIM-o and "
        "speaker identification (the prompt's speaker is the nearest of the set's speakers' prompt centroids), "
        "pitch JSD against ground truth; 95 % bootstrap CIs over items; seeds "
        f"{results.metadata.get('config', {}).get('seeds', '?')}. The diffusion baseline runs without prosody "
        f"refinement (alpha 0){_baseline_grid(results)}. RTF is batch-1, end to end, on the CPU that "
        "ran the benchmark "
        f"({results.record.device.name}); when other jobs share that CPU it "
        "is not a speed figure (`flashspeech-bench speed` is).",
        "",
    ]
    for card in CARD_SETS:
        table, frame = results_table(results, card.name)
        if frame.empty:
            parts += [f"### `{card.name}`: not in these results", ""]
            continue
        parts += [
            f"### `{card.name}`: {card.what}",
            "",
            table,
            "",
            "| target | measured | |",
            "|---|---|---|",
            *targets(results, card),
            "",
        ]
    if notes:
        parts += ["## Notes", "", notes.strip(), ""]
    return "\n".join(parts)


def write_card(results_dir: str | Path, out: str | Path, notes_file: str | Path | None = None) -> Path:
    """Write the card to `out`, with the shipped checkpoints' validation curves drawn next to it."""
    notes = Path(notes_file).read_text(encoding="utf-8") if notes_file else ""
    out = Path(out)
    curves = checkpoint_curves()
    curves_png = plot_validation_curves(curves, out.parent / CURVES_PNG).name if curves else None
    out.write_text(render(results_dir, notes=notes, curves_png=curves_png), encoding="utf-8")
    return out
