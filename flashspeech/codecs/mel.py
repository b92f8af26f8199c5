"""MelCodec: a log-mel "latent" decoded by Griffin-Lim (no weights, works anywhere) or a trained neural decoder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from flashspeech.codecs.base import CODECS, Codec
from flashspeech.codecs.vocos import MEL_KEYS, VocoderError, load_vocoder
from flashspeech.foundation.compat import import_torchaudio

AF = import_torchaudio().functional

# Measured 2026-11-24 with measure_latent_stats(MelCodec(<these defaults>), ...) on the synthetic corpus's 12
# training voices (CorpusConfig() defaults, fingerprint 5ad79305dee309bb, all 400 sentences each: 4,800
# utterances, 5.37 h, 1,549,013 frames of which 102,221 (6.6%) digital silence): mean -5.1256, std 2.3253,
# scale = std / 0.5. Without the silent frames: mean -4.906, std 2.129. The 12 real clips
# (bench/testsets/assets/real): mean -5.350, std 2.220, i.e. normalised mean -0.05, std 0.48.
MEL_LATENT_MEAN = -5.1256
MEL_LATENT_SCALE = 4.6505
GRIFFIN_LIM = "griffin-lim"  # the decoder needing no weights (the default)


def resolve_decoder(decoder: str | os.PathLike) -> Path:
    """A neural decoder's directory: `pretrained:<name>` (shipped in flashspeech/pretrained/) or a path."""
    from flashspeech.foundation.weights import CheckpointError, resolve_checkpoint

    try:
        return resolve_checkpoint(decoder)
    except CheckpointError as exc:
        raise VocoderError(f"decoder {exc}") from exc


@CODECS.register
class MelCodec(Codec):
    """Natural-log mel spectrogram, clamped at `log_floor`; decoded by pseudo-inverse + Griffin-Lim.

    Encoding: zero-pad the waveform on the right to a multiple of hop, take a centred STFT with zero padding
    (`pad_mode="constant"`: any length works and a zero-padded batch item gets exactly its lone frames), keep
    the first S'/hop frames (frame t centred on sample t*hop), magnitude ** `power`, Slaney-scale
    Slaney-normalised mel filterbank, log(clamp(mel, log_floor)). Frames: ceil(S / hop).

    Decoding: exp, a precomputed pseudo-inverse of the filterbank (clamped >= 0) back to a linear spectrogram,
    then `torchaudio.functional.griffinlim` with zero initial phase (`rand_init=False`), so it is deterministic.
    The latent gets copies of its last frame appended (at least one) because Griffin-Lim's own centred STFT of
    T*hop samples has T+1 frames (and needs more than n_fft/2 samples); the output is trimmed to T*hop.
    `power=1` (magnitude) is the default because it inverts better: on bench/testsets/assets/real/librivox_0880.wav
    at n_iter 32, re-encoded log-mel distance 1.22 dB vs 2.34 dB for power 2, linear log-spectral distance
    6.2 dB vs 15.0 dB, spectral convergence 0.30 vs 0.32.

    `decoder`: "griffin-lim" (the above; `n_iter` and `momentum` are its settings) or a neural decoder's directory
    (`pretrained:<name>` or a path; `flashspeech.codecs.vocos`), loaded strictly with its sha256 checked, refused
    when it was trained on other mel settings. `describe()` names it and its weights' sha256 (`decoder_sha256`),
    so caches keyed by the codec follow the decoder; with Griffin-Lim the description is as it always was.
    `with_decoder` gives the same codec with another decoder (a system's `decoder` option).
    """

    type_name = "mel"

    def __init__(
        self,
        sample_rate: int = 16_000,
        hop_length: int = 200,
        n_fft: int = 1024,
        win_length: int = 800,
        n_mels: int = 100,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        power: float = 1.0,
        log_floor: float = 1e-5,
        n_iter: int = 32,
        momentum: float = 0.99,
        latent_mean: float = MEL_LATENT_MEAN,
        latent_scale: float = MEL_LATENT_SCALE,
        decoder: str = GRIFFIN_LIM,
    ) -> None:
        super().__init__(sample_rate, hop_length, n_mels, latent_mean, latent_scale)
        if not (0 < hop_length <= win_length <= n_fft):
            raise ValueError(f"need 0 < hop_length <= win_length <= n_fft, got {hop_length}, {win_length}, {n_fft}")
        self.n_fft, self.win_length, self.n_mels = int(n_fft), int(win_length), int(n_mels)
        self.f_min, self.f_max, self.power, self.log_floor = float(f_min), float(f_max), float(power), float(log_floor)
        self.n_iter, self.momentum = int(n_iter), float(momentum)
        fbank = AF.melscale_fbanks(
            n_fft // 2 + 1, self.f_min, self.f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney"
        )  # [n_freq, n_mels]
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.register_buffer("fbank", fbank.float(), persistent=False)
        self.register_buffer("fbank_pinv", torch.linalg.pinv(fbank.double().T).float(), persistent=False)
        self.decoder, self.decoder_sha256, self.vocoder = str(decoder), None, None
        if self.decoder != GRIFFIN_LIM:
            self.vocoder, description = load_vocoder(resolve_decoder(self.decoder))
            self.decoder_sha256 = description["weights_sha256"]
            mine = self.describe()
            wrong = [
                f"{k} {description['mel'].get(k)!r} (codec: {mine[k]!r})"
                for k in MEL_KEYS
                if description["mel"].get(k) != mine[k]
            ]
            if wrong:
                raise VocoderError(f"decoder {self.decoder}: trained on other mel settings: {', '.join(wrong)}")

    def encode(self, wav: Tensor) -> Tensor:
        with torch.autocast(self.device.type, enabled=False):  # STFT and the filterbank need float32
            return self._encode(wav)

    def decode(self, latent: Tensor) -> Tensor:
        if self.vocoder is not None:
            latent = self._check_latent(latent)
            return self.vocoder(latent)
        return self.griffin_lim(latent)

    def griffin_lim(self, latent: Tensor) -> Tensor:
        """Decode with Griffin-Lim whatever the codec's decoder (the reference a neural decoder is measured by)."""
        with torch.autocast(self.device.type, enabled=False):  # Griffin-Lim needs float32
            return self._griffin_lim(self._check_latent(latent))

    def with_decoder(self, decoder: str) -> MelCodec:
        """This codec (same mel settings and latent statistics) with another decoder, on the same device."""
        description = {k: v for k, v in self.describe().items() if k not in ("type", "decoder", "decoder_sha256")}
        return MelCodec(**description, decoder=decoder).to(self.device)

    @classmethod
    def from_description(cls, description: dict[str, Any], root: Path | None = None) -> MelCodec:
        """Rebuild from `describe()`; a named decoder's weights must still have the recorded sha256."""
        args = {k: v for k, v in description.items() if k not in ("type", "decoder_sha256")}
        codec = cls(**args)
        recorded = description.get("decoder_sha256")
        if recorded is not None and recorded != codec.decoder_sha256:
            raise VocoderError(
                f"decoder {codec.decoder}: weights sha256 {codec.decoder_sha256} but the description records {recorded}"
            )
        return codec

    def _encode(self, wav: Tensor) -> Tensor:
        wav = self._as_batch(wav)
        frames = self.num_frames(wav.shape[-1])
        wav = F.pad(wav, (0, frames * self.hop_length - wav.shape[-1]))
        spec = torch.stft(
            wav,
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )[..., :frames].abs()
        if self.power != 1.0:
            spec = spec.pow(self.power)
        mel = torch.matmul(self.fbank.T, spec)  # [B, n_mels, T]
        return mel.clamp_min(self.log_floor).log()

    def _check_latent(self, latent: Tensor) -> Tensor:
        latent = torch.as_tensor(latent).to(self.device, torch.float32)
        if latent.dim() != 3 or latent.shape[1] != self.n_mels or latent.shape[-1] == 0:
            raise ValueError(f"expected a latent [B, {self.n_mels}, T] with T > 0, got shape {tuple(latent.shape)}")
        return latent

    def _griffin_lim(self, latent: Tensor) -> Tensor:
        frames = latent.shape[-1]
        min_frames = self.n_fft // (2 * self.hop_length) + 1  # Griffin-Lim's reflect padding needs > n_fft/2 samples
        padded = max(frames, min_frames)
        latent = torch.cat([latent, latent[..., -1:].expand(-1, -1, padded + 1 - frames)], dim=-1)
        spec = torch.matmul(self.fbank_pinv, latent.exp()).clamp_min(0.0)  # [B, n_freq, padded + 1]
        wav = AF.griffinlim(
            spec,
            self.window,
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.power,
            self.n_iter,
            self.momentum,
            length=padded * self.hop_length,
            rand_init=False,
        )
        return wav[..., : self.num_samples(frames)]

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "n_mels": self.n_mels,
            "f_min": self.f_min,
            "f_max": self.f_max,
            "power": self.power,
            "log_floor": self.log_floor,
            "n_iter": self.n_iter,
            "momentum": self.momentum,
            "latent_mean": self.latent_mean,
            "latent_scale": self.latent_scale,
            **({"decoder": self.decoder, "decoder_sha256": self.decoder_sha256} if self.vocoder is not None else {}),
        }
