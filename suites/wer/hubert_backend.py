"""HuBERT CTC ASR backend (FlashSpeech's WER model, HuBERT-large-ls960-ft) from a local directory only.

The directory is a transformers `save_pretrained` copy of `facebook/hubert-large-ls960-ft`: config.json,
model.safetensors or pytorch_model.bin, preprocessor_config.json, vocab.json (tokenizer_config.json and
special_tokens_map.json when present). Greedy CTC decoding, batched with attention masks, 16 kHz.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from flashspeech.foundation.assets import ModelAsset
from flashspeech.foundation.hashing import cached_sha256
from suites.base import SuiteError
from suites.wer.backends import ASR_BACKENDS

# each entry: alternatives, one of which must be there (transformers >= 5 writes processor_config.json)
REQUIRED_FILES = (
    ("config.json",),
    ("preprocessor_config.json", "processor_config.json"),
    ("vocab.json",),
    ("model.safetensors", "pytorch_model.bin"),
)
_FILES_TEXT = ", ".join(" or ".join(names) for names in REQUIRED_FILES)
HUBERT_ASSET = ModelAsset(
    name="HuBERT-large-ls960-ft",
    filename="hubert-large-ls960-ft",
    sha256=None,
    how_to_get=(
        "It is a directory holding a transformers save_pretrained copy of facebook/hubert-large-ls960-ft "
        f"({_FILES_TEXT}), copied from a machine with hub access."
    ),
)


def check_hubert_dir(path: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(model directory, weights file), or SuiteError naming the directory and the files it lacks."""
    directory = HUBERT_ASSET.resolve(path)
    if not directory.is_dir():
        raise SuiteError(f"{HUBERT_ASSET.name}: {directory} is not a directory. {HUBERT_ASSET.how_to_get}")
    missing = [" or ".join(names) for names in REQUIRED_FILES if not any((directory / n).is_file() for n in names)]
    if missing:
        raise SuiteError(f"{HUBERT_ASSET.name}: {directory} lacks {', '.join(missing)}. {HUBERT_ASSET.how_to_get}")
    weights = next(directory / n for n in REQUIRED_FILES[-1] if (directory / n).is_file())
    return directory, weights


@dataclass
class HubertOptions:
    """What a config sets of the HuBERT backend: its local directory (None: models_dir()/hubert-large-ls960-ft)."""

    model: str | None = None


@ASR_BACKENDS.register
@dataclass
class HubertBackend(HubertOptions):
    """Greedy CTC transcription of 16 kHz mono float32 arrays with `HubertForCTC`."""

    name: ClassVar[str] = "hubert"
    Options: ClassVar[type] = HubertOptions
    device: str = "cpu"
    sample_rate: ClassVar[int] = 16000
    _model: Any = field(default=None, init=False, repr=False)
    _processor: Any = field(default=None, init=False, repr=False)
    _info: dict[str, Any] = field(default_factory=dict, init=False)

    def load(self) -> None:
        if self._model is not None:
            return
        from transformers import HubertForCTC, Wav2Vec2Processor

        directory, weights = check_hubert_dir(self.model)
        try:
            processor = Wav2Vec2Processor.from_pretrained(str(directory), local_files_only=True)
            model = HubertForCTC.from_pretrained(str(directory), local_files_only=True)
        except Exception as exc:
            raise SuiteError(f"cannot load HuBERT CTC model from {directory}: {type(exc).__name__}: {exc}") from exc
        self._model = model.to(self.device).eval()
        self._processor = processor
        self._info = {
            "model": directory.name,
            "model_path": str(directory),
            "weights": weights.name,
            "sha256": cached_sha256(weights),
            # with group-norm feature extractors (HuBERT-base) transformers advises zero padding, no mask
            "attention_mask": self.uses_attention_mask,
            "vocab_size": int(model.config.vocab_size),
        }

    @property
    def uses_attention_mask(self) -> bool:
        return self._model is not None and self._model.config.feat_extract_norm == "layer"

    @torch.inference_mode()
    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]:
        """One hypothesis per clip; the batch is padded, padded frames are masked and cut before decoding."""
        self.load()
        if not audios:
            return []
        inputs = self._processor.feature_extractor(
            [np.asarray(a, dtype=np.float32) for a in audios],
            sampling_rate=self.sample_rate,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        values = inputs["input_values"].to(self.device)
        mask = inputs["attention_mask"].to(self.device)
        logits = self._model(values, attention_mask=mask if self.uses_attention_mask else None).logits
        ids = logits.argmax(dim=-1).cpu()
        lengths = self._model._get_feat_extract_output_lengths(mask.sum(-1)).cpu()
        return [self._ctc_decode(ids[i, : int(lengths[i])].tolist()) for i in range(len(audios))]

    def _ctc_decode(self, seq: list[int]) -> str:
        """Collapse repeats, then drop the blank (pad) and other special tokens, keeping word delimiters.

        The tokenizer's own `skip_special_tokens=True` drops blanks before collapsing ("HEL<pad>LO" -> "HELO").
        """
        tokenizer = self._processor.tokenizer
        drop = set(tokenizer.all_special_ids) - {tokenizer.word_delimiter_token_id}
        collapsed = [t for j, t in enumerate(seq) if j == 0 or t != seq[j - 1]]
        return tokenizer.decode([t for t in collapsed if t not in drop], group_tokens=False).strip()

    def describe(self) -> dict[str, Any]:
        self.load()
        return {
            "backend": "hubert",
            **self._info,
            "device": self.device,
            "decoding": "greedy CTC (argmax, repeats collapsed, blank and special tokens removed)",
            "transformers_version": metadata.version("transformers"),
            "torch_version": torch.__version__,
        }
