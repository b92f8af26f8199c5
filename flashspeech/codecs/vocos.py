"""A Vocos-style neural decoder for the mel codec: ConvNeXt blocks over the log-mel frames, an iSTFT head.

The network predicts, per mel frame, a log-magnitude and a phase for every bin of an `n_fft`-point spectrum and
inverts it with one inverse STFT (hop = the codec's hop): no upsampling layers, so its cost per audio second is
that of a small 1-D convnet at the frame rate plus one iSTFT (Siuzdenko et al. 2023, "Vocos"). Unlike
Griffin-Lim it predicts phase directly, so it costs one pass instead of `n_iter` STFT/iSTFT round trips and its
frames are phase-coherent.

Framing matches `MelCodec`: frame t is centred on sample t * hop, T frames decode to T * hop samples. The input
gets one copy of its last frame appended, so the centred iSTFT of T + 1 frames yields exactly T * hop samples.

A vocoder directory (the checkpoint format of `save_vocoder` / `load_vocoder`)::

    <dir>/model.safetensors   the network's weights
    <dir>/config.json         {"format", "type": "vocos", "config": VocosConfig, "mel": the mel settings it was
                               trained on, "weights_sha256", "metadata": {training history, ...}}

Loading checks the sha256 of the weights against config.json and loads the state dict strictly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flashspeech.foundation.fields import from_table
from flashspeech.foundation.registry import Registry
from flashspeech.foundation.weights import (
    CheckpointError,
    as_dtype,
    check_state_dict,
    verify_weights,
    write_description,
    write_weights,
)

VOCODER_FORMAT = "flashspeech-bench/vocoder-v1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
# The mel settings a vocoder is bound to: every MelCodec argument that shapes the log-mel it decodes.
MEL_KEYS = ("sample_rate", "hop_length", "n_fft", "win_length", "n_mels", "f_min", "f_max", "power", "log_floor")

VOCODERS = Registry("vocoder type", "type_name")  # vocoder classes by the "type" of their config.json


class VocoderError(RuntimeError):
    """A vocoder directory that cannot be loaded as it is, or one that does not fit the codec; says which."""


@dataclass(frozen=True)
class VocosConfig:
    """The decoder's shape (defaults: a small one; the vocos-tiny recipe sets its own in `[model]`)."""

    n_mels: int = 100
    hop_length: int = 200
    n_fft: int = 800  # the iSTFT head's frame (4x overlap at hop 200): n_fft // 2 + 1 bins of magnitude and phase
    dim: int = 192
    intermediate: int = 576
    layers: int = 6
    kernel: int = 7
    # the input log-mel is standardised with these before the first layer (the codec's latent statistics)
    mel_mean: float = -5.1256
    mel_scale: float = 4.6505
    max_magnitude: float = 100.0  # the predicted linear magnitude is clipped here (exp of the log-magnitude)

    def __post_init__(self) -> None:
        if self.n_fft < self.hop_length or self.n_fft % 2:
            raise ValueError(f"need an even n_fft >= hop_length, got {self.n_fft} and {self.hop_length}")
        if min(self.dim, self.intermediate, self.layers, self.kernel) < 1 or self.kernel % 2 == 0:
            raise ValueError(f"bad decoder shape: {self}")


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> pointwise MLP (GELU) -> layer scale, with a residual connection."""

    def __init__(self, dim: int, intermediate: int, kernel: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.pw2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:  # [B, dim, T]
        y = self.dwconv(x).transpose(1, 2)
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


@VOCODERS.register
class Vocos(nn.Module):
    """Log-mel [B, n_mels, T] (the MelCodec's raw latent) -> waveform [B, T * hop_length]."""

    type_name: ClassVar[str] = "vocos"

    def __init__(self, config: VocosConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or VocosConfig()
        self.embed = nn.Conv1d(cfg.n_mels, cfg.dim, cfg.kernel, padding=cfg.kernel // 2)
        self.norm_in = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.intermediate, cfg.kernel, 1.0 / cfg.layers) for _ in range(cfg.layers)
        )
        self.norm_out = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.n_fft + 2)  # log-magnitude and phase of n_fft // 2 + 1 bins
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.apply(_init_weights)

    def spectrum(self, log_mel: Tensor) -> Tensor:
        """The complex spectrum [B, n_fft // 2 + 1, T + 1] the head predicts (last input frame repeated once)."""
        cfg = self.config
        if log_mel.dim() != 3 or log_mel.shape[1] != cfg.n_mels or log_mel.shape[-1] == 0:
            raise ValueError(f"expected a log-mel [B, {cfg.n_mels}, T] with T > 0, got shape {tuple(log_mel.shape)}")
        x = (log_mel - cfg.mel_mean) / cfg.mel_scale
        x = torch.cat([x, x[..., -1:]], dim=-1)
        x = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        log_mag, phase = self.head(self.norm_out(x.transpose(1, 2))).transpose(1, 2).float().chunk(2, dim=1)
        magnitude = log_mag.exp().clamp(max=cfg.max_magnitude)
        return torch.polar(magnitude, phase)

    def forward(self, log_mel: Tensor) -> Tensor:
        cfg = self.config
        frames = log_mel.shape[-1]
        spec = self.spectrum(log_mel.float())
        with torch.autocast(spec.device.type, enabled=False):
            return torch.istft(
                spec, cfg.n_fft, cfg.hop_length, cfg.n_fft, self.window, center=True, length=frames * cfg.hop_length
            )

    def describe(self) -> dict[str, Any]:
        return {"type": self.type_name, "config": asdict(self.config)}


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def save_vocoder(model: Vocos, mel: dict[str, Any], path: str | os.PathLike, **metadata: object) -> Path:
    """Write weights then config.json (last: a directory with config.json is complete); `mel` is the codec's
    settings the vocoder was trained on (`MEL_KEYS` of its description)."""
    out = Path(path)
    sha = write_weights(model.state_dict(), out / WEIGHTS, VOCODER_FORMAT)
    description = {
        "format": VOCODER_FORMAT,
        **model.describe(),
        "mel": {k: mel[k] for k in MEL_KEYS},
        "parameters": count_parameters(model),
        "weights_sha256": sha,
        "metadata": metadata,
    }
    write_description(out / CONFIG, description)
    return out


def export_vocoder(source: str | os.PathLike, dest: str | os.PathLike, dtype: torch.dtype = torch.float16) -> Path:
    """Copy a decoder directory with its weights stored as `dtype` (loading casts them back to float32)."""
    from safetensors.torch import load_file

    source, out = Path(source), Path(dest)
    description = read_vocoder_description(source)
    state = as_dtype(load_file(str(source / WEIGHTS)), dtype)
    description["weights_sha256"] = write_weights(state, out / WEIGHTS, VOCODER_FORMAT)
    description["metadata"] = {**description.get("metadata", {}), "weights_dtype": str(dtype)}
    write_description(out / CONFIG, description)
    return out


def read_vocoder_description(path: str | os.PathLike) -> dict[str, Any]:
    config_path = Path(path) / CONFIG
    if not config_path.is_file():
        raise VocoderError(f"{config_path}: not found (a vocoder directory needs {CONFIG} and {WEIGHTS})")
    description = json.loads(config_path.read_text(encoding="utf-8"))
    if not isinstance(description, dict) or description.get("format") != VOCODER_FORMAT:
        got = description.get("format") if isinstance(description, dict) else type(description).__name__
        raise VocoderError(f"{config_path}: format {got!r}, expected {VOCODER_FORMAT!r}")
    return description


def load_vocoder(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Vocos, dict[str, Any]]:
    """Strict load of a vocoder directory: sha256 of the weights checked against config.json, then every key of
    the state dict must match the network its config builds. Returns the network (eval mode) and config.json."""
    from safetensors.torch import load_file

    path = Path(path)
    description = read_vocoder_description(path)
    weights = path / WEIGHTS
    verify_weights(weights, description.get("weights_sha256"), VocoderError)
    kind = description.get("type")
    if kind not in VOCODERS:
        raise VocoderError(f"{path / CONFIG}: {VOCODERS.unknown(kind)}")
    try:
        model = VOCODERS[kind](from_table(VocosConfig, description.get("config", {}), "config"))
    except (TypeError, ValueError) as exc:
        raise VocoderError(f"{path / CONFIG}: bad config: {exc}") from exc
    state = load_file(str(weights))
    try:
        check_state_dict(model, state, str(weights))
    except CheckpointError as exc:
        raise VocoderError(str(exc)) from exc
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.to(device).eval(), description
