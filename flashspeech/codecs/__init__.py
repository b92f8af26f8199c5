"""Audio codecs: waveform <-> continuous latent, the space FlashSpeech's latent consistency model works in.

Built in: `MelCodec` ("mel": 16 kHz, hop 200 = 80 frames/s, 100-d log-mel; decoded by Griffin-Lim, no weights, or
by a trained neural decoder, `MelCodec(decoder="<its directory>")` / `codec.with_decoder(...)`: `vocos`)
`EncodecCodec` ("encodec": EnCodec's pre-quantiser latent through transformers, from a local directory) and
`ConvCodec` ("conv": the paper codec's convolutional architecture with random weights, for timing).
The model sees `codec.normalize(latent)`, scaled so its std is about sigma_data = 0.5; `measure_latent_stats`
measures `latent_mean` / `latent_scale` for a codec on your data.

Custom codecs. Subclass `Codec` and implement
  * `__init__(...)` calling `super().__init__(sample_rate, hop_length, latent_dim, latent_mean, latent_scale)`;
  * `encode(wav [B, S]) -> latent [B, latent_dim, num_frames(S)]` (raw, un-normalised);
  * `decode(latent [B, latent_dim, T]) -> wav [B, num_samples(T)]` at `sample_rate`;
  * `describe() -> dict`: JSON-able, `{"type": <registry key>, <every constructor arg>, "latent_mean", "latent_scale"}`;
  * optionally `num_frames` / `num_samples` (default: ceil(S / hop) and T * hop), `from_description(desc, root)`
    (default: `cls(**desc minus "type")`; override to resolve files relative to `root`) and `save(directory)`.
Then register it: decorate it with `@CODECS.register` (with `type_name = "mine"`), as the built-in codecs are.

A codec directory holds `codec.json` (the `describe()` dict) plus whatever the type needs, e.g. for "encodec"
the transformers `save_pretrained` files (config.json, model.safetensors) with `"path": "."`. `load_codec`
takes such a directory or the dict itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flashspeech.codecs.base import CODEC_FILE, CODECS, SIGMA_DATA, Codec, LatentStats, measure_latent_stats
from flashspeech.codecs.conv import ConvCodec
from flashspeech.codecs.encodec import EncodecCodec
from flashspeech.codecs.mel import MelCodec

__all__ = [
    "CODECS",
    "CODEC_FILE",
    "SIGMA_DATA",
    "Codec",
    "ConvCodec",
    "EncodecCodec",
    "LatentStats",
    "MelCodec",
    "load_codec",
    "measure_latent_stats",
]


def load_codec(source: dict[str, Any] | str | os.PathLike) -> Codec:
    """Rebuild a codec from a `describe()` dict or from a directory holding `codec.json` (and its weights)."""
    root: Path | None = None
    if isinstance(source, dict):
        description = source
    else:
        root = Path(source)
        path = root / CODEC_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: a codec directory needs {CODEC_FILE} (see Codec.save)")
        description = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(description, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(description).__name__}")
    kind = description.get("type")
    if kind not in CODECS:
        raise ValueError(f"unknown codec type {kind!r}; known types: {', '.join(sorted(CODECS))}")
    try:
        return CODECS[kind].from_description(description, root)
    except TypeError as exc:  # unexpected or missing constructor arguments
        raise ValueError(f"bad {kind!r} codec description {description}: {exc}") from exc
