"""EncodecCodec: EnCodec's continuous (pre-quantiser) latent, through transformers, from a local directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from flashspeech.codecs.base import CODEC_FILE, CODECS, Codec

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _check_model_dir(path: Path) -> None:
    how = (
        "save a transformers EncodecModel there with model.save_pretrained(path) "
        "(config.json + model.safetensors, e.g. a local copy of facebook/encodec_24khz); nothing is downloaded"
    )
    if not path.is_dir():
        raise FileNotFoundError(f"EnCodec model directory {path} not found: {how}")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path / 'config.json'} not found: {how}")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(f"no EnCodec weights ({', '.join(WEIGHT_FILES)}) in {path}: {how}")


@CODECS.register
class EncodecCodec(Codec):
    """EnCodec (transformers `EncodecModel`) loaded from a local directory only.

    Latent: `model.encoder` output before the residual quantiser, [B, hidden_size, ceil(S / hop)].
    Decode: `model.decoder`, T frames -> T * hop samples. sample_rate and hop (prod(upsampling_ratios)) come
    from the model config; audio must already be at `sample_rate` (no resampling here). Mono models without
    input normalisation only (the 24 kHz model; not the 48 kHz stereo one).
    """

    type_name = "encodec"

    def __init__(self, path: str | Path, latent_mean: float = 0.0, latent_scale: float = 1.0) -> None:
        path = Path(path).expanduser().resolve()
        _check_model_dir(path)
        from transformers import EncodecModel

        model = EncodecModel.from_pretrained(str(path), local_files_only=True)
        cfg = model.config
        if cfg.audio_channels != 1 or cfg.normalize:
            raise ValueError(
                f"{path}: only mono EnCodec models without input normalisation are supported "
                f"(audio_channels={cfg.audio_channels}, normalize={cfg.normalize})"
            )
        super().__init__(cfg.sampling_rate, cfg.hop_length, cfg.hidden_size, latent_mean, latent_scale)
        self.path = path
        self.model = model.eval().requires_grad_(False)  # a frozen codec: no autograd graph on its weights

    def encode(self, wav: Tensor) -> Tensor:
        return self.model.encoder(self._as_batch(wav)[:, None, :])

    def decode(self, latent: Tensor) -> Tensor:
        latent = latent.to(self.device, next(self.model.parameters()).dtype)
        if latent.dim() != 3 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"expected a latent [B, {self.latent_dim}, T], got shape {tuple(latent.shape)}")
        return self.model.decoder(latent)[:, 0, :]

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "path": str(self.path),
            "latent_mean": self.latent_mean,
            "latent_scale": self.latent_scale,
        }

    @classmethod
    def from_description(cls, description: dict[str, Any], root: Path | None = None) -> EncodecCodec:
        """A relative (or missing) "path" is taken relative to (or as) the directory codec.json came from."""
        args = {k: v for k, v in description.items() if k != "type"}
        path = Path(args.pop("path", "."))
        if not path.is_absolute():
            if root is None:
                raise ValueError('an "encodec" description needs an absolute "path" when not loaded from a directory')
            path = root / path
        return cls(path, **args)

    def save(self, directory: str | Path) -> Path:
        """Copy the model into `directory` (save_pretrained) and write codec.json with a relative path."""
        directory = Path(directory)
        self.model.save_pretrained(str(directory))
        path = directory / CODEC_FILE
        path.write_text(json.dumps({**self.describe(), "path": "."}, indent=2) + "\n", encoding="utf-8")
        return path
