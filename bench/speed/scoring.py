"""Scoring throughput of the WER and similarity suites' models, with random weights of the real sizes.

Whisper: `whisper.model.Whisper(ModelDimensions(...))` at the named size, inside the WER suite's own backend
built by the ASR registry (`ASR_BACKENDS.build("whisper")`) and driven through its `transcribe` (batched
`whisper.decode`, fp16 on CUDA, greedy, English). Random weights emit arbitrary tokens, so the backend decodes a
fixed length (`sample_len`, end-of-text suppressed): every clip decodes exactly
`ceil(tokens_per_second x longest clip of its batch)` tokens: with the default 3 tokens/s of speech (about
2.5 words/s of read English, ~1.3 BPE tokens per word) that is the length real transcripts stop at.

WavLM-TDNN: `WavLMTDNN` (WavLM-Large + ECAPA head by default) with random init, driven through the
similarity suite's `WavLMTDNNBackend.embed` (length-sorted padded batches), autocast to `dtype` on CUDA.

Clips are synthetic, `min_seconds`-`max_seconds` long (LibriSpeech test-clean's 4-10 s). Results are
items/s and the wall time extrapolated to `extrapolate_items` (the ~1,200 test-clean items).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from bench.speed.generation import precision
from bench.speed.settings import SpeedConfig, SuiteSpeedConfig
from suites.similarity.ecapa import HeadConfig
from suites.similarity.wavlm_tdnn import WavLMConfig, WavLMTDNNConfig
from suites.wer import ASR_BACKENDS
from suites.wer.whisper_backend import WhisperBackend

SAMPLE_RATE = 16_000
_N_TEXT_CTX, _N_AUDIO_CTX = 448, 1500
# (n_mels, n_vocab, audio state/heads/layers, text state/heads/layers): the released checkpoints' dims.
# n_vocab 51865 = multilingual with 99 languages; 51866 adds Cantonese (large-v3: 100 = len(LANGUAGES)).
_WHISPER = {
    "tiny": (80, 51865, 384, 6, 4, 384, 6, 4),
    "base": (80, 51865, 512, 8, 6, 512, 8, 6),
    "small": (80, 51865, 768, 12, 12, 768, 12, 12),
    "medium": (80, 51865, 1024, 16, 24, 1024, 16, 24),
    "large-v3": (128, 51866, 1280, 20, 32, 1280, 20, 32),
    "large-v3-turbo": (128, 51866, 1280, 20, 32, 1280, 20, 4),
}
TINY_WAVLM = WavLMTDNNConfig(
    wavlm=WavLMConfig(
        conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2,  # WavLM's 320-sample hop
        embed_dim=64,
        num_layers=2,
        num_heads=4,
        ff_dim=128,
        pos_conv_kernel=16,
        pos_conv_groups=4,
        num_buckets=32,
        max_distance=128,
    ),
    head=HeadConfig(
        feat_dim=64, channels=32, aggregate_channels=48, embedding_dim=16, se_bottleneck=8, attention_channels=8
    ),
)


def whisper_dims(name: str) -> Any:
    """`whisper.model.ModelDimensions` of a released size, checked against openai-whisper's tables."""
    import whisper
    from whisper.model import ModelDimensions
    from whisper.tokenizer import LANGUAGES

    if name not in _WHISPER:
        raise ValueError(f"unknown Whisper size {name!r}; known: {', '.join(_WHISPER)}")
    mels, vocab, a_state, a_head, a_layer, t_state, t_head, t_layer = _WHISPER[name]
    dims = ModelDimensions(mels, _N_AUDIO_CTX, a_state, a_head, a_layer, vocab, _N_TEXT_CTX, t_state, t_head, t_layer)
    if vocab - 51765 - 1 > len(LANGUAGES) or mels not in (80, 128) or _N_AUDIO_CTX * 2 != whisper.audio.N_FRAMES:
        raise ValueError(f"Whisper {name}: dims {dims} do not match this openai-whisper's tokenizer / audio")
    return dims


def synthetic_clips(n: int, min_s: float, max_s: float, seed: int) -> list[np.ndarray]:
    """n deterministic 16 kHz clips with lengths uniform in [min_s, max_s]: harmonic tone + noise."""
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in rng.uniform(min_s, max_s, n):
        t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        wav = np.sin(2 * np.pi * rng.uniform(90, 220) * t) + 0.3 * rng.standard_normal(t.size)
        clips.append((0.1 * wav / np.abs(wav).max()).astype(np.float32))
    return clips


def _batches(items: Sequence[np.ndarray], size: int) -> list[Sequence[np.ndarray]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def sync_device(device: str) -> None:
    """Wait for the work queued on a CUDA device (timings end when it is done); nothing to wait for on CPU."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _throughput(
    run: Callable[[Sequence[np.ndarray]], Any], clips: list[np.ndarray], batch: int, warmup: int, device: str
) -> dict[str, Any]:
    """One untimed warm-up batch, then every clip in batches; wall time per batch and items/s."""
    if warmup:
        run(clips[: min(warmup, batch)])
    times = []
    for chunk in _batches(clips, batch):
        sync_device(device)
        start = time.perf_counter()
        run(chunk)
        sync_device(device)
        times.append(time.perf_counter() - start)
    wall = sum(times)
    audio = sum(len(c) for c in clips) / SAMPLE_RATE
    return {
        "items": len(clips),
        "batch": batch,
        "audio_s": audio,
        "wall_s": wall,
        "batch_times_s": times,
        "items_per_s": len(clips) / wall,
        "audio_s_per_s": audio / wall,
    }


def build_whisper(name: str, device: str, seed: int) -> WhisperBackend:
    """A random-weight Whisper of the named size inside the WER suite's backend, decoding a fixed length
    (`sample_len`, 30 tokens until a caller sets it)."""
    from whisper.model import Conv1d as WConv1d
    from whisper.model import Linear as WLinear
    from whisper.model import Whisper

    dims = whisper_dims(name)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = Whisper(dims).eval()
    backend: WhisperBackend = ASR_BACKENDS.build("whisper", device=device)
    backend.sample_len = 30
    if backend.fp16:  # whisper casts these weights to fp16 on every call; casting once gives the same numbers
        for module in model.modules():
            if isinstance(module, WLinear | WConv1d):
                module.half()
    backend._whisper = model  # already "loaded": no checkpoint, random weights
    backend._info = {"model": f"{name} (random weights)", "dims": asdict(dims), "multilingual": model.is_multilingual}
    return backend


def time_whisper(suites: SuiteSpeedConfig, device: str, seed: int) -> dict[str, Any]:
    backend = build_whisper(suites.whisper, device, seed)
    clips = synthetic_clips(suites.items, suites.min_seconds, suites.max_seconds, seed)
    tokens: list[int] = []

    def run(chunk: Sequence[np.ndarray]) -> list[str]:
        backend.sample_len = math.ceil(suites.tokens_per_second * max(len(c) for c in chunk) / SAMPLE_RATE)
        tokens.append(backend.sample_len)
        return backend.transcribe(chunk)

    result = _throughput(run, clips, suites.whisper_batch, suites.warmup_items, device)
    model = backend._whisper
    result.update(
        model=suites.whisper,
        weights="random",
        parameters=sum(p.numel() for p in model.parameters()),
        dims=asdict(model.dims),
        compute_dtype="float16" if backend.fp16 else "float32",
        decoding="greedy, EOT suppressed, tokens per batch = ceil(tokens_per_second x longest clip)",
        tokens_per_second=suites.tokens_per_second,
        tokens_per_batch=tokens[1:] if suites.warmup_items else tokens,
    )
    return result


def build_wavlm(size: str, device: str, seed: int, batch: int) -> Any:
    """The similarity suite's WavLM-TDNN backend around a random-weight model ("large": WavLM-Large + ECAPA
    head, the papers' model; "tiny": the test size), without checkpoint loading: same batching and masking."""
    from suites.similarity.backends import WavLMTDNNBackend
    from suites.similarity.wavlm_tdnn import WavLMTDNN

    model_config = WavLMTDNNConfig() if size == "large" else TINY_WAVLM
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = WavLMTDNN(model_config).eval()
    backend = WavLMTDNNBackend.__new__(WavLMTDNNBackend)
    backend.device, backend.batch_size, backend.model = device, batch, model
    backend.checkpoint = {"path": None, "random_weights": True}
    return backend


def time_wavlm(suites: SuiteSpeedConfig, config: SpeedConfig) -> dict[str, Any]:
    backend = build_wavlm(suites.wavlm, config.device, config.seed, suites.wavlm_batch)
    model = backend.model
    clips = synthetic_clips(suites.items, suites.min_seconds, suites.max_seconds, config.seed + 1)

    def run(chunk: Sequence[np.ndarray]) -> torch.Tensor:
        with precision(config):
            return backend.embed(chunk)

    result = _throughput(run, clips, suites.wavlm_batch, suites.warmup_items, config.device)
    result.update(
        model="WavLM-Large + ECAPA-TDNN" if suites.wavlm == "large" else "tiny WavLM-TDNN (test size)",
        weights="random",
        parameters=sum(p.numel() for p in model.parameters()),
        compute_dtype=config.dtype if config.precision == "autocast" else "float32",
        embeddings_per_item=suites.embeddings_per_item,
    )
    return result


def measure_suites(config: SpeedConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Whisper and WavLM-TDNN throughput, and the extrapolated wall time to score `extrapolate_items`."""
    suites = config.suites
    out: dict[str, Any] = {"extrapolate_items": suites.extrapolate_items}
    total = 0.0
    if suites.whisper != "off":
        w = time_whisper(suites, config.device, config.seed)
        w["extrapolated_s"] = suites.extrapolate_items / w["items_per_s"]
        total += w["extrapolated_s"]
        out["whisper"] = w
        log(f"  whisper {suites.whisper}: {w['items_per_s']:.2f} items/s (batch {w['batch']})")
    if suites.wavlm != "off":
        s = time_wavlm(suites, config)
        s["extrapolated_s"] = suites.extrapolate_items * suites.embeddings_per_item / s["items_per_s"]
        total += s["extrapolated_s"]
        out["wavlm_tdnn"] = s
        log(f"  wavlm-tdnn {suites.wavlm}: {s['items_per_s']:.2f} clips/s (batch {s['batch']})")
    if config.cuda:
        torch.cuda.empty_cache()
    out["score_items_s"] = total if ("whisper" in out or "wavlm_tdnn" in out) else None
    return out
