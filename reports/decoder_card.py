"""The neural decoder's model card: its training (data, steps, wall time, held-out curves against Griffin-Lim) and
the measured comparison with Griffin-Lim from one `decoder` run, with the issue's targets met or missed.

`flashspeech-bench decoder-card --decoder pretrained:vocos-tiny --results outputs/decoder` writes
`<decoder dir>/README.md` and `<decoder dir>/training_curves.png`. Nothing in the card is typed by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results import Results
from flashspeech.codecs.mel import resolve_decoder
from flashspeech.codecs.vocos import read_vocoder_description
from reports.model_card import _cell, _check, _value


@dataclass(frozen=True)
class Pair:
    """One system through both decoders: the run's series (config entry names) and the stage holding the decoder."""

    what: str
    griffin_lim: str
    neural: str
    stage: str  # the timing stage that is the decoder's ("codec": encode + decode; "decoder": decode only)


PAIRS = (
    Pair("codec resynthesis", "codec-griffin-lim", "codec-vocos", "codec"),
    Pair("FlashSpeech@2", "flashspeech-griffin-lim", "flashspeech-vocos", "decoder"),
    Pair("diffusion baseline@32 (Heun)", "diffusion-griffin-lim", "diffusion-vocos", "decoder"),
)
NATURAL_SETS = ("smoke", "smoke-seen")  # the natural voices (the MOS target's sets)
COLUMNS = [
    ("mos", "mos", "DistillMOS", "{:.2f}"),
    ("wer", "wer_corpus", "WER", "{:.3f}"),
    ("similarity", "sim_o", "SIM-o", "{:.3f}"),
    ("defects", "defective", "defective", "{:.2f}"),
    ("rtf", "rtf", "RTF (CPU)", "{:.4f}"),
]
MOS_MARGIN = 0.25  # codec resynthesis DistillMOS >= ground truth - this, on the natural voices
WER_MARGIN = 0.02  # codec resynthesis WER <= ground truth + this
SPEED_RATIO = 1 / 3  # the neural decoder's CPU time per audio second <= this x Griffin-Lim's
FS_RTF = 0.02  # FlashSpeech@2 end to end through the neural decoder


class _Run:
    """A decoder run's aggregates, looked up by test set and series."""

    def __init__(self, results: Results) -> None:
        self.results, self.record, self.frame = results, results.record, results.aggregates

    def label(self, testset: str, series: str) -> str | None:
        key = self.record.find(testset, series)
        return None if key is None else key.label

    def value(self, testset: str, series: str, suite: str, metric: str) -> float:
        label = self.label(testset, series)
        return math.nan if label is None else _value(self.frame, label, suite, metric)

    def decoder_seconds(self, testsets: list[str], series: str, stage: str) -> tuple[float, float]:
        """(decoder CPU seconds, audio seconds) of `series` over `testsets`, from the RTF suite's stage shares."""
        spent = audio = 0.0
        for testset in testsets:
            time_s = self.value(testset, series, "rtf", "time_s")
            share = self.value(testset, series, "rtf", f"share_{stage}")
            audio_s = self.value(testset, series, "rtf", "audio_s")
            if not all(math.isfinite(v) for v in (time_s, share, audio_s)):
                return math.nan, math.nan
            spent, audio = spent + time_s * share, audio + audio_s
        return spent, audio


def comparison_table(run: _Run, testset: str) -> str:
    """Ground truth and each pair through both decoders on `testset`, plus each decoder's ms per audio second."""
    head = ["system", "decoder", *(c[2] for c in COLUMNS), "decoder ms / audio s"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    gt = run.label(testset, "ground_truth")
    if gt is not None:
        cells = [_cell(run.frame, gt, suite, metric, fmt) for suite, metric, _, fmt in COLUMNS]
        lines.append("| ground truth | - | " + " | ".join(cells) + " | - |")
    for pair in PAIRS:
        for decoder, series in (("Griffin-Lim", pair.griffin_lim), ("vocos-tiny", pair.neural)):
            label = run.label(testset, series)
            if label is None:
                continue
            cells = [_cell(run.frame, label, suite, metric, fmt) for suite, metric, _, fmt in COLUMNS]
            spent, audio = run.decoder_seconds([testset], series, pair.stage)
            ms = f"{1000 * spent / audio:.1f}" if audio and math.isfinite(audio) else "-"
            lines.append(f"| {pair.what} | {decoder} | " + " | ".join(cells) + f" | {ms} |")
    return "\n".join(lines)


def targets(run: _Run) -> list[str]:
    """The issue's targets as Markdown table rows (what, measured, met / missed)."""
    sets = run.record.testsets
    rows = ["| target | measured | |", "|---|---|---|"]
    codec = PAIRS[0]
    gl_spent, gl_audio = run.decoder_seconds(sets, codec.griffin_lim, codec.stage)
    nn_spent, nn_audio = run.decoder_seconds(sets, codec.neural, codec.stage)
    ratio = (nn_spent / nn_audio) / (gl_spent / gl_audio) if gl_spent and nn_audio else math.nan
    rows.append(_check(f"decoder CPU time <= {SPEED_RATIO:.2f} x Griffin-Lim's (codec resynthesis, all sets)",
                       ratio, ratio <= SPEED_RATIO))  # fmt: skip
    for testset in sets:
        gt_wer = run.value(testset, "ground_truth", "wer", "wer_corpus")
        for series, decoder in ((codec.griffin_lim, "Griffin-Lim"), (codec.neural, "vocos-tiny")):
            wer = run.value(testset, series, "wer", "wer_corpus")
            rows.append(_check(f"{testset}: resynthesis WER ({decoder}) <= ground truth {gt_wer:.3f} + {WER_MARGIN}",
                               wer, wer <= gt_wer + WER_MARGIN))  # fmt: skip
        if testset in NATURAL_SETS:
            gt_mos = run.value(testset, "ground_truth", "mos", "mos")
            mos = run.value(testset, codec.neural, "mos", "mos")
            rows.append(_check(f"{testset}: resynthesis DistillMOS (vocos-tiny) >= ground truth {gt_mos:.2f} - "
                               f"{MOS_MARGIN}", mos, mos >= gt_mos - MOS_MARGIN, "{:.2f}"))  # fmt: skip
        gl_mos, nn_mos = (run.value(testset, s, "mos", "mos") for s in (codec.griffin_lim, codec.neural))
        rows.append(_check(f"{testset}: resynthesis DistillMOS vocos-tiny > Griffin-Lim {gl_mos:.2f}", nn_mos,
                           nn_mos > gl_mos, "{:.2f}"))  # fmt: skip
    fs = PAIRS[1]
    time_s = sum(run.value(t, fs.neural, "rtf", "time_s") for t in sets)
    audio_s = sum(run.value(t, fs.neural, "rtf", "audio_s") for t in sets)
    rtf = time_s / audio_s if audio_s else math.nan
    rows.append(_check(f"FlashSpeech@2 end-to-end RTF through vocos-tiny <= {FS_RTF} (all sets)", rtf,
                       rtf <= FS_RTF, "{:.4f}"))  # fmt: skip
    return rows


def speedups(run: _Run) -> list[str]:
    """FlashSpeech@2 against the diffusion baseline, end to end, through each decoder (all sets pooled)."""
    sets = run.record.testsets
    lines = ["| decoder | FlashSpeech@2 RTF | diffusion@32 RTF | speed-up |", "|---|---|---|---|"]
    for decoder, fs, diffusion in (
        ("Griffin-Lim", PAIRS[1].griffin_lim, PAIRS[2].griffin_lim),
        ("vocos-tiny", PAIRS[1].neural, PAIRS[2].neural),
    ):
        rtf = []
        for series in (fs, diffusion):
            time_s = sum(run.value(t, series, "rtf", "time_s") for t in sets)
            audio_s = sum(run.value(t, series, "rtf", "audio_s") for t in sets)
            rtf.append(time_s / audio_s if audio_s else math.nan)
        lines.append(f"| {decoder} | {rtf[0]:.4f} | {rtf[1]:.4f} | {rtf[1] / rtf[0]:.1f}x |")
    return lines


def plot_training(rows: list[dict[str, Any]], out: Path) -> Path:
    """The held-out log-mel and log-spectral L1 over training, Griffin-Lim's on the same utterances dashed."""
    from matplotlib.figure import Figure

    from reports.plots import figure_png

    fig = Figure(figsize=(10, 3.6))
    for i, (key, title) in enumerate((("mel_l1", "log-mel L1"), ("spec_l1", "log-spectrum L1 (n_fft 1024)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        points = [(r["step"], r[f"val_{key}"]) for r in rows if f"val_{key}" in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label="vocos-tiny")
        reference = [r[f"val_{key}_griffin_lim"] for r in rows if f"val_{key}_griffin_lim" in r]
        if reference:
            ax.axhline(reference[-1], ls="--", color="gray", label="Griffin-Lim (32 iterations)")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_title(f"Held-out {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.write_bytes(figure_png(fig))
    return out


def training_section(description: dict[str, Any], rows: list[dict[str, Any]], curves_png: str) -> list[str]:
    history = description.get("metadata", {}).get("training", {})
    config = history.get("config", {})
    shape = description.get("config", {})
    last = rows[-1] if rows else {}
    keys = ("mel_l1", "mel_l1_griffin_lim", "spec_l1", "spec_l1_griffin_lim")
    end = {k: last.get(f"val_{k}", math.nan) for k in keys}
    hours = float(history.get("train_wall_s", 0.0)) / 3600
    return [
        "## Training",
        "",
        f"- Network: {shape.get('layers')} ConvNeXt blocks of width {shape.get('dim')} (MLP "
        f"{shape.get('intermediate')}, kernel {shape.get('kernel')}), an iSTFT head of {shape.get('n_fft')} points at "
        f"hop {shape.get('hop_length')}: "
        f"{description.get('parameters', 0) / 1e6:.2f} M parameters, weights stored as float16.",
        f"- Data: `{history.get('data')}`, {history.get('utterances')} utterances, {history.get('hours')} h, "
        f"{len(history.get('speakers', []))} training voices (their training sentences; the real clips and the "
        "unseen voices never trained on).",
        f"- Recipe: `{history.get('recipe')}` (bench/configs/train/{history.get('recipe')}.toml), "
        f"{history.get('steps')} steps of batch {config.get('batch_size')} x {config.get('segment_frames')} frames; "
        f"the first {config.get('gan_start')} on the log-mel loss alone, then adversarial (multi-period periods "
        f"{config.get('periods')}, multi-resolution {config.get('resolutions')}, hinge + feature matching, log-mel "
        f"x {config.get('mel_weight')}).",
        f"- Wall time: {hours:.2f} h on {history.get('machine')}.",
        f"- Held-out at the end (16 of the training voices' test sentences): log-mel L1 {end['mel_l1']:.3f} "
        f"(Griffin-Lim {end['mel_l1_griffin_lim']:.3f}), log-spectrum L1 {end['spec_l1']:.3f} (Griffin-Lim "
        f"{end['spec_l1_griffin_lim']:.3f}).",
        "",
        f"![held-out curves]({curves_png})",
        "",
    ]


def render(
    decoder: str, results_dir: str | Path, curves_png: str = "training_curves.png"
) -> tuple[str, list[dict[str, Any]]]:
    directory = resolve_decoder(decoder)
    description = read_vocoder_description(directory)
    curves = directory / "validation.jsonl"
    rows = [json.loads(line) for line in curves.read_text(encoding="utf-8").splitlines()] if curves.is_file() else []
    run = _Run(Results.load(results_dir))
    device = run.record.device
    lines = [
        f"# {description.get('metadata', {}).get('training', {}).get('recipe') or directory.name}: the mel codec's "
        "neural decoder",
        "",
        "Written by `flashspeech-bench decoder-card` from the decoder's training record and a `decoder` run "
        f"(`{results_dir}`); do not edit the numbers by hand. Use it with "
        f'`decoder = "{decoder}"` on a flashspeech, flashspeech_vc or codec_resynthesis system.',
        "",
        f"Decoder `{decoder}`, weights sha256 `{description['weights_sha256']}`.",
        "",
        *training_section(description, rows, curves_png),
        "## Against Griffin-Lim (one run)",
        "",
        f"Device: {device.model or device.name}, torch {device.torch}, {device.threads} threads. Seeds "
        f"{run.results.metadata['config'].get('seeds')}; "
        "WER Whisper base beam 5, SIM-o resemblyzer, DistillMOS; `decoder ms / audio s` is the decoder's timed stage "
        "(for codec resynthesis it includes the STFT encode, under 1 ms per audio second).",
        "",
    ]
    for testset in run.record.testsets:
        lines += [f"### `{testset}`", "", comparison_table(run, testset), ""]
    lines += ["### End to end: FlashSpeech@2 against the diffusion baseline", "", *speedups(run), ""]
    lines += ["### Targets", "", *targets(run), ""]
    return "\n".join(lines), rows


def write_card(decoder: str, results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the card to `out` (default: the decoder directory's README.md) and its curves beside it."""
    directory = resolve_decoder(decoder)
    out = Path(out) if out is not None else directory / "README.md"
    png = out.parent / ("training_curves.png" if out.name == "README.md" else f"{out.stem}.png")
    text, rows = render(decoder, results_dir, png.name)
    if rows:
        plot_training(rows, png)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
