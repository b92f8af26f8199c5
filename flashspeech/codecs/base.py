"""The codec interface: waveform <-> continuous latent, plus the latent normalisation the model works in."""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from flashspeech.foundation.registry import Registry

SIGMA_DATA = 0.5  # the EDM/consistency preconditioning's data std; normalised latents should have this std
CODEC_FILE = "codec.json"


CODECS = Registry("codec type", "type_name")  # every codec class, by its type_name (decorate with CODECS.register)


class Codec(nn.Module, ABC):
    """Waveform <-> latent codec (an nn.Module, so `.to(device)` moves its buffers and weights).

    `encode` returns the raw latent; the model works in normalised space, `normalize(z)`, whose std should be
    about SIGMA_DATA. Default framing (both built-in codecs): `num_frames(S) = ceil(S / hop_length)` and
    `num_samples(T) = T * hop_length`, so frame t stands for samples [t*hop, (t+1)*hop) and decoding T frames
    gives exactly T / frame_rate seconds. encode/decode leave autograd on (wrap data preparation in no_grad).
    """

    type_name: ClassVar[str]  # the key of this class in flashspeech.codecs.CODECS and "type" in describe()

    def __init__(
        self, sample_rate: int, hop_length: int, latent_dim: int, latent_mean: float = 0.0, latent_scale: float = 1.0
    ) -> None:
        super().__init__()
        if latent_scale <= 0:
            raise ValueError(f"latent_scale must be > 0, got {latent_scale}")
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.latent_dim = int(latent_dim)
        self.latent_mean = float(latent_mean)
        self.latent_scale = float(latent_scale)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def device(self) -> torch.device:
        for t in (*self.parameters(), *self.buffers()):
            return t.device
        return torch.device("cpu")

    def normalize(self, z: Tensor) -> Tensor:
        """Raw latent -> model space."""
        return (z - self.latent_mean) / self.latent_scale

    def denormalize(self, x: Tensor) -> Tensor:
        """Model space -> raw latent."""
        return x * self.latent_scale + self.latent_mean

    def num_frames(self, num_samples: int) -> int:
        """Latent frames for `num_samples` samples: ceil(num_samples / hop_length)."""
        return -(-int(num_samples) // self.hop_length)

    def num_samples(self, num_frames: int) -> int:
        """Samples `decode` returns for `num_frames` frames: num_frames * hop_length."""
        return int(num_frames) * self.hop_length

    def _as_batch(self, wav: Tensor) -> Tensor:
        wav = torch.as_tensor(wav)
        if wav.dim() == 1:
            wav = wav[None]
        if wav.dim() != 2 or wav.shape[-1] == 0:
            raise ValueError(f"expected a waveform batch [B, S] with S > 0, got shape {tuple(wav.shape)}")
        return wav.to(self.device, torch.float32)

    @abstractmethod
    def encode(self, wav: Tensor) -> Tensor:
        """[B, S] waveform at `sample_rate` -> raw latent [B, latent_dim, num_frames(S)]."""

    @abstractmethod
    def decode(self, latent: Tensor) -> Tensor:
        """Raw latent [B, latent_dim, T] -> waveform [B, num_samples(T)] at `sample_rate`."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-able dict that rebuilds this codec: {"type": type_name, constructor args, latent_mean, latent_scale}."""

    def with_decoder(self, decoder: str) -> Codec:
        """This codec with another decoder (`MelCodec`: "griffin-lim" or a neural decoder's directory)."""
        raise ValueError(f"the {self.type_name!r} codec has no selectable decoder (got decoder {decoder!r})")

    @classmethod
    def from_description(cls, description: dict[str, Any], root: Path | None = None) -> Codec:
        """Rebuild from `describe()` output; `root` is the directory codec.json came from (None for a dict)."""
        return cls(**{k: v for k, v in description.items() if k != "type"})

    def save(self, directory: str | Path) -> Path:
        """Write `codec.json` (plus any weights the codec needs) so `load_codec(directory)` rebuilds it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CODEC_FILE
        path.write_text(json.dumps(self.describe(), indent=2) + "\n", encoding="utf-8")
        return path


@dataclass(frozen=True)
class LatentStats:
    """Global statistics of raw latent values; `scale = std / SIGMA_DATA` is the matching `latent_scale`."""

    mean: float
    std: float
    scale: float
    frames: int  # latent frames measured (all of them)
    silent_frames: int  # of which their hop of audio was digital silence (all samples exactly 0)
    items: int


@torch.no_grad()
def measure_latent_stats(codec: Codec, waveforms: Iterable[Tensor]) -> LatentStats:
    """Mean and std of every latent value of every frame of `waveforms` (1-D, at the codec's rate).

    One scalar mean/std over all dimensions and all frames, accumulated in float64. Frames of digital silence
    are included (a model has to generate them too) but counted, so a caller can see they do not dominate.
    """
    total = total_sq = 0.0
    values = frames = silent = items = 0
    for wav in waveforms:
        wav = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
        z = codec.encode(wav[None])[0].double()
        total += z.sum().item()
        total_sq += z.square().sum().item()
        values += z.numel()
        n = z.shape[-1]
        frames += n
        hops = torch.nn.functional.pad(wav, (0, max(0, n * codec.hop_length - wav.numel())))
        hops = hops[: n * codec.hop_length].reshape(n, codec.hop_length)
        silent += int((hops.abs().amax(dim=1) == 0).sum())
        items += 1
    if values == 0:
        raise ValueError("no audio to measure")
    mean = total / values
    std = math.sqrt(max(total_sq / values - mean * mean, 0.0))
    return LatentStats(mean=mean, std=std, scale=std / SIGMA_DATA, frames=frames, silent_frames=silent, items=items)
