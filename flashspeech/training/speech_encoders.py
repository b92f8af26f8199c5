"""Frozen speech encoders for the adversarial stage: all hidden states stacked, from our codec latents.

Encoders (`SpeechEncoder`) take the generator's normalised codec latents (B, D, T), not waveforms, so the
adversarial loss reaches the generator through them; their weights are frozen but gradients flow to the input.

* `WhisperEncoderFeatures` (offline default, spec "whisper"): the encoder of the Whisper tiny.en checkpoint
  the WER suite ships, fed straight from our log-mel latents (no waveform, no Griffin-Lim).
* `WavLMFeatures` (spec "wavlm:<path>"): torchaudio's WavLM-large with weights from a local file, fed the
  codec's decoded waveform, as in the paper.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from torchaudio.models import Wav2Vec2Model
    from whisper.model import AudioEncoder

    from flashspeech.codecs.base import Codec


WHISPER_SAMPLE_RATE = 16_000
WHISPER_N_FFT = 400
WHISPER_HOP = 160
WHISPER_WINDOW_ENERGY = WHISPER_N_FFT * 3 / 8  # sum of a periodic Hann(400) window squared: 150
WAVLM_FILENAMES = ("WavLM-Large.pt", "wavlm_large.pt", "wavlm-large.pt", "wavlm_large.pth")


class SpeechEncoder(nn.Module, ABC):
    """A frozen speech model: normalised codec latents (B, D, T) -> stacked hidden states (B, channels, T').

    Its weights have requires_grad False and it stays in eval mode (`train()` is a no-op), but `features` is
    differentiable w.r.t. the latent, so the adversarial loss reaches the generator.
    """

    name: str  # recorded in checkpoints, e.g. "whisper-tiny.en-encoder" or "wavlm-large"

    @property
    @abstractmethod
    def channels(self) -> int:
        """Width of the stacked hidden states (states x state width)."""

    @abstractmethod
    def features(self, latent: Tensor, codec: Codec) -> Tensor:
        """Normalised latents (B, D, T) of `codec` -> stacked hidden states (B, channels, T')."""

    def forward(self, latent: Tensor, codec: Codec) -> Tensor:
        return self.features(latent, codec)

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> SpeechEncoder:
        """Always eval: the encoder is frozen (the official code leaves WavLM's dropout on; we do not)."""
        return super().train(False)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "channels": self.channels}


# --------------------------------------------------------------------------------------------- Whisper


def _interp_matrix(src: Tensor, dst: Tensor) -> Tensor:
    """(len(dst), len(src)) linear interpolation from points `src` (ascending) onto `dst`; 0 outside."""
    idx = torch.searchsorted(src, dst, right=True).clamp(1, len(src) - 1)
    lo, hi = src[idx - 1], src[idx]
    w = ((dst - lo) / (hi - lo)).clamp(0.0, 1.0)
    inside = (dst >= src[0]) & (dst <= src[-1])
    m = torch.zeros(len(dst), len(src), dtype=src.dtype)
    rows = torch.arange(len(dst))
    m[rows, idx - 1] = (1.0 - w) * inside
    m[rows, idx] += w * inside
    return m


def whisper_projection(codec: Codec, n_mels: int = 80) -> Tensor:
    """(n_mels, n_fft//2+1) matrix: our linear power spectrum -> Whisper's mel power spectrum.

    Whisper's STFT is n_fft 400 at 16 kHz (201 bins, 40 Hz apart); ours is the codec's n_fft (1024: 513 bins,
    15.625 Hz apart). Our power spectrum is linearly interpolated along frequency onto Whisper's bin
    frequencies (the pseudo-inverted mel spectrum is smooth, so interpolation, not summation, is right) and
    scaled by Whisper's window energy over ours (sum w^2: 150 vs 300 for Hann(800)), so that a broadband or
    band-smoothed spectrum has the power density Whisper's own STFT would give; then Whisper's filterbank.
    """
    import whisper

    n_freq = codec.n_fft // 2 + 1
    ours = torch.arange(n_freq, dtype=torch.float64) * codec.sample_rate / codec.n_fft
    theirs = torch.arange(WHISPER_N_FFT // 2 + 1, dtype=torch.float64) * WHISPER_SAMPLE_RATE / WHISPER_N_FFT
    gain = WHISPER_WINDOW_ENERGY / float(codec.window.double().square().sum())
    fbank = whisper.audio.mel_filters("cpu", n_mels).double()  # (n_mels, 201)
    return (fbank @ _interp_matrix(ours, theirs) * gain).float()


def _resample_frames(x: Tensor, out_frames: int, step: float) -> Tensor:
    """Linear interpolation along time: output frame j reads input position j * step (clamped to the end)."""
    pos = torch.arange(out_frames, device=x.device, dtype=torch.float64) * step
    pos = pos.clamp(max=x.shape[-1] - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=x.shape[-1] - 1)
    w = (pos - lo).to(x.dtype)
    return x[..., lo] * (1.0 - w) + x[..., hi] * w


def latent_to_whisper_mel(latent: Tensor, codec: Codec, n_mels: int = 80) -> Tensor:
    """Normalised mel-codec latents (B, D, T) -> Whisper's log-mel input (B, n_mels, T_w), differentiably.

    denormalize -> exp -> the codec's filterbank pseudo-inverse (clamped >= 0, as its decoder does) -> linear
    spectrum ** (2 / codec.power) (power) -> `whisper_projection` -> Whisper's normalisation
    (log10(clamp 1e-10), floor at each item's max - 8, (x + 4) / 4) -> time 80 Hz -> 100 Hz by linear
    interpolation (Whisper frame j, centred on sample 160 j, reads our frame 160 j / hop; T_w =
    floor(T * hop / 160), the frame count Whisper gives for T * hop samples).
    """
    if not hasattr(codec, "fbank_pinv") or not hasattr(codec, "n_fft"):
        raise TypeError(
            f"WhisperEncoderFeatures needs a mel codec (with fbank_pinv, n_fft), got {type(codec).__name__}; "
            "use WavLMFeatures (spec 'wavlm:<path>') for waveform codecs"
        )
    if codec.sample_rate != WHISPER_SAMPLE_RATE:
        raise ValueError(f"Whisper works at {WHISPER_SAMPLE_RATE} Hz, the codec at {codec.sample_rate} Hz")
    mel = codec.denormalize(latent).exp()
    spec = torch.matmul(codec.fbank_pinv, mel).clamp_min(0.0)  # (B, n_freq, T)
    power = spec.pow(2.0 / codec.power) if codec.power != 2.0 else spec
    proj = whisper_projection(codec, n_mels).to(latent.device, latent.dtype)
    wmel = torch.matmul(proj, power)
    log = wmel.clamp_min(1e-10).log10()
    log = torch.maximum(log, log.amax(dim=(1, 2), keepdim=True) - 8.0)
    log = (log + 4.0) / 4.0
    frames = latent.shape[-1] * codec.hop_length // WHISPER_HOP
    if frames < 1:
        raise ValueError(f"{latent.shape[-1]} latent frames give no Whisper frame")
    return _resample_frames(log, frames, WHISPER_HOP / codec.hop_length)


class WhisperEncoderFeatures(SpeechEncoder):
    """The Whisper audio encoder on our latents: the conv-stem output and every block output, stacked.

    `encoder`: an already-built `whisper.model.AudioEncoder` (e.g. random weights in tests); otherwise the
    encoder of `checkpoint` (an openai-whisper checkpoint file), by default the offline tiny.en checkpoint
    the WER suite decodes with (`flashspeech.foundation.whisper.tiny_en_checkpoint`): 4 blocks x 384 -> 5 x 384 = 1920
    channels at 50 Hz.

    openai-whisper's `AudioEncoder.forward` asserts a 30 s input; here the stem runs on the real length, the
    positional embedding is sliced to it and the blocks run one by one (no 30 s padding: Whisper was trained
    on padded windows, so short inputs give somewhat different activations, which is fine for a learned
    discriminator). `ln_post` is applied to the last state only (it is Whisper's final output), as the last
    of HF-style `hidden_states` carries the final layer norm.
    """

    def __init__(
        self, encoder: AudioEncoder | None = None, checkpoint: str | os.PathLike | None = None, name: str | None = None
    ) -> None:
        super().__init__()
        self.source: dict[str, Any] = {}
        if encoder is None:
            encoder, default_name = self._load(checkpoint)
            name = name or default_name
        self.encoder = encoder
        self.name = name or "whisper-encoder"
        self.n_mels = int(encoder.conv1.in_channels)
        self.n_state = int(encoder.conv2.out_channels)
        self.freeze()

    def _load(self, checkpoint: str | os.PathLike | None) -> tuple[AudioEncoder, str]:
        import whisper

        if checkpoint is None:
            from flashspeech.foundation.whisper import tiny_en_checkpoint

            path, _ = tiny_en_checkpoint()
            name = "whisper-tiny.en-encoder"
        else:
            path = Path(checkpoint)
            if not path.is_file():
                raise FileNotFoundError(f"Whisper checkpoint {path} not found")
            name = f"whisper-{path.stem}-encoder"
        self.source = {"checkpoint": str(path)}
        model = whisper.load_model(str(path), device="cpu")
        return model.encoder, name

    @property
    def channels(self) -> int:
        return (len(self.encoder.blocks) + 1) * self.n_state

    def hidden_states(self, mel: Tensor) -> list[Tensor]:
        """Whisper log-mels (B, n_mels, T_w) -> stem output + each block output, each (B, ceil(T_w/2), n_state)."""
        enc = self.encoder
        x = F.gelu(enc.conv1(mel))
        x = F.gelu(enc.conv2(x)).transpose(1, 2)
        n_ctx = enc.positional_embedding.shape[0]
        if x.shape[1] > n_ctx:
            raise ValueError(f"{x.shape[1]} Whisper encoder frames exceed its {n_ctx} positions (30 s)")
        x = x + enc.positional_embedding[: x.shape[1]].to(x.dtype)
        states = [x]
        for i, block in enumerate(enc.blocks):
            x = block(x)
            states.append(enc.ln_post(x) if i == len(enc.blocks) - 1 else x)
        return states

    def features(self, latent: Tensor, codec: Codec) -> Tensor:
        mel = latent_to_whisper_mel(latent, codec, self.n_mels)
        return torch.cat(self.hidden_states(mel), dim=-1).transpose(1, 2)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.source}


# --------------------------------------------------------------------------------------------- WavLM


def _unilm_to_torchaudio(state: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Map an official unilm WavLM state dict onto torchaudio names with the UniSpeech suite's strict rules."""
    from flashspeech.foundation.unispeech import map_state_dict

    prefix = "feature_extract.model."
    shapes = {"wavlm." + k: v.shape for k, v in model.state_dict().items()}
    mapped, _ = map_state_dict({prefix + k: v for k, v in state.items()}, shapes)
    return {k.removeprefix("wavlm."): v for k, v in mapped.items()}


def resolve_wavlm_file(path: str | os.PathLike) -> Path:
    """A weights file, or a directory holding one of `WAVLM_FILENAMES`."""
    path = Path(path)
    if path.is_dir():
        for name in WAVLM_FILENAMES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"no WavLM weights in {path}: expected one of {', '.join(WAVLM_FILENAMES)}")
    if not path.is_file():
        raise FileNotFoundError(f"WavLM weights file {path} not found")
    return path


def load_wavlm_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Load WavLM weights strictly (`weights_only` torch.load) into a torchaudio WavLM; returns the file read.

    Accepted: (a) a torchaudio state dict (`wavlm_large().state_dict()` keys), bare or under "state_dict" or
    "model"; (b) the official microsoft/unilm `WavLM-Large.pt` ({"cfg", "model"} with unilm key names), mapped
    through the UniSpeech suite's rules (q/k/v merged, `mask_emb` dropped). Any missing, unexpected or
    mis-shaped key fails the load.
    """
    file = resolve_wavlm_file(path)
    checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    state = checkpoint
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{file}: not a WavLM state dict")
    if any(k.startswith("encoder.layers.") and ".self_attn." in k for k in state):
        state = _unilm_to_torchaudio(state, model)
    model.load_state_dict(state, strict=True)
    return file


class WavLMFeatures(SpeechEncoder):
    """torchaudio WavLM on the codec's decoded waveform: the 25 (large) hidden states stacked (25 600 ch, 50 Hz).

    The waveform is `codec.decode(codec.denormalize(latent))`; with our mel codec that is Griffin-Lim in torch
    ops, so gradients reach the latent but are approximate (through n_iter phase iterations) and expensive.
    States, as HF `output_hidden_states` (what the official code stacks): the transformer input (projected CNN
    features + conv position embedding) and each layer's output, the last after the encoder's final layer
    norm (pre-LN WavLM-large). The middle ones equal torchaudio's `extract_features` outputs.
    `normalize_waveform` layer-normalises each waveform first (WavLM-large's pre-training did; the official
    code's StyleTTS2-style loss feeds raw waveforms, hence off by default).
    """

    def __init__(
        self,
        model: Wav2Vec2Model | None = None,
        weights: str | os.PathLike | None = None,
        name: str = "wavlm-large",
        normalize_waveform: bool = False,
    ) -> None:
        super().__init__()
        self.source: dict[str, Any] = {}
        if model is None:
            from torchaudio.models import wavlm_large

            if weights is None:
                raise ValueError("WavLMFeatures needs `model` or a local `weights` file (this harness never downloads)")
            file = resolve_wavlm_file(weights)  # fail on a missing file before building 316 M parameters
            model = wavlm_large(
                encoder_projection_dropout=0.0,
                encoder_attention_dropout=0.0,
                encoder_dropout=0.0,
                encoder_layer_drop=0.0,
            )
            self.source = {"weights": str(load_wavlm_weights(model, file))}
        elif weights is not None:
            self.source = {"weights": str(load_wavlm_weights(model, weights))}
        self.model = model
        self.name = name
        self.normalize_waveform = normalize_waveform
        self.embed_dim = int(model.encoder.feature_projection.projection.out_features)
        self.freeze()

    @property
    def channels(self) -> int:
        return (len(self.model.encoder.transformer.layers) + 1) * self.embed_dim

    def hidden_states(self, wav: Tensor) -> list[Tensor]:
        """Waveforms (B, S) -> the len(layers) + 1 states, each (B, T', embed_dim)."""
        if self.normalize_waveform:
            wav = F.layer_norm(wav, wav.shape[-1:])
        feats, _ = self.model.feature_extractor(wav, None)
        transformer = self.model.encoder.transformer
        x = transformer._preprocess(self.model.encoder.feature_projection(feats))
        states = [x]
        position_bias = None
        for i, layer in enumerate(transformer.layers):
            x, position_bias = layer(x, None, position_bias=position_bias)
            last = i == len(transformer.layers) - 1
            states.append(transformer.layer_norm(x) if last and not transformer.layer_norm_first else x)
        return states

    def features(self, latent: Tensor, codec: Codec) -> Tensor:
        wav = codec.decode(codec.denormalize(latent))
        return torch.cat(self.hidden_states(wav), dim=-1).transpose(1, 2)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "normalize_waveform": self.normalize_waveform, **self.source}


def build_speech_encoder(spec: str = "whisper", **kwargs: Any) -> SpeechEncoder:
    """The encoder for `spec`: "whisper" (offline default, tiny.en), "whisper:<checkpoint>" or "wavlm:<file|dir>".

    Extra keyword arguments go to the encoder's constructor.
    """
    kind, _, arg = spec.partition(":")
    if kind == "whisper":
        return WhisperEncoderFeatures(checkpoint=arg or None, **kwargs)
    if kind == "wavlm":
        if not arg:
            raise ValueError("spec 'wavlm:<path>' needs the path of local WavLM-large weights")
        return WavLMFeatures(weights=arg, **kwargs)
    raise ValueError(f"unknown speech encoder spec {spec!r}: expected 'whisper', 'whisper:<path>' or 'wavlm:<path>'")
