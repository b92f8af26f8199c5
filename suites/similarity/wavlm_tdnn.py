"""WavLM-TDNN: torchaudio's WavLM feeding an ECAPA-TDNN head through softmax weights over all hidden states.

The model of UniSpeech's `ECAPA_TDNN_SMALL(feat_dim=1024, feat_type='wavlm_large')` (the "WavLM-TDNN" of
seed-tts-eval, F5-TTS and the FlashSpeech paper), rebuilt on `torchaudio.models.wavlm_model`:

* waveform layer-normalised per utterance over its own samples (s3prl does this for WavLM-Large);
* the hidden states s3prl hands to the head: the input of each of the 24 transformer layers (the first is
  the projected CNN features plus the convolutional position embedding) and the encoder output after the
  final layer norm -- 25 states, mixed with softmax-normalised learned weights;
* the ECAPA head of `ecapa.py`.

Batches are padded and run with per-item lengths: the conv front end only reads valid samples for valid
frames, padded frames are zeroed before the position conv, padded keys are masked in attention, and the
head masks every time reduction. torchaudio's own `extract_features(lengths=...)` cannot be used for
WavLM (its encoder passes an attention mask that WavLM's attention rejects), so the layers are driven here
with a key padding mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchaudio.models import Wav2Vec2Model, wavlm_model

from suites.similarity.ecapa import ECAPAHead, HeadConfig

LARGE_CONV_LAYERS: tuple[tuple[int, int, int], ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2


@dataclass(frozen=True)
class WavLMConfig:
    """WavLM sizes; the defaults are WavLM-Large (what `torchaudio.models.wavlm_large` builds)."""

    conv_layers: tuple[tuple[int, int, int], ...] = LARGE_CONV_LAYERS
    embed_dim: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    ff_dim: int = 4096
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    num_buckets: int = 320
    max_distance: int = 800
    normalize_waveform: bool = True  # s3prl: F.layer_norm(wav, wav.shape) when the WavLM cfg says `normalize`

    def build(self) -> Wav2Vec2Model:
        """An inference-mode WavLM (all dropouts 0, pre-LN transformer as in WavLM-Large)."""
        return wavlm_model(
            extractor_mode="layer_norm",
            extractor_conv_layer_config=[list(c) for c in self.conv_layers],
            extractor_conv_bias=False,
            encoder_embed_dim=self.embed_dim,
            encoder_projection_dropout=0.0,
            encoder_pos_conv_kernel=self.pos_conv_kernel,
            encoder_pos_conv_groups=self.pos_conv_groups,
            encoder_num_layers=self.num_layers,
            encoder_num_heads=self.num_heads,
            encoder_num_buckets=self.num_buckets,
            encoder_max_distance=self.max_distance,
            encoder_attention_dropout=0.0,
            encoder_ff_interm_features=self.ff_dim,
            encoder_ff_interm_dropout=0.0,
            encoder_dropout=0.0,
            encoder_layer_norm_first=True,
            encoder_layer_drop=0.0,
            aux_num_out=None,
        )


@dataclass(frozen=True)
class WavLMTDNNConfig:
    """Backbone + head sizes; the defaults are UniSpeech's WavLM-Large speaker-verification model."""

    wavlm: WavLMConfig = field(default_factory=WavLMConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        if self.head.feat_dim != self.wavlm.embed_dim:
            raise ValueError(f"head feat_dim {self.head.feat_dim} != WavLM embed_dim {self.wavlm.embed_dim}")

    @property
    def num_states(self) -> int:
        return self.wavlm.num_layers + 1


class WavLMTDNN(nn.Module):
    """16 kHz waveforms (B, N) + sample lengths (B,) -> raw (unnormalised) speaker embeddings (B, D)."""

    def __init__(self, config: WavLMTDNNConfig | None = None):
        super().__init__()
        self.config = config or WavLMTDNNConfig()
        self.wavlm = self.config.wavlm.build()
        if self.wavlm.encoder.transformer.layer_norm_first:  # torchaudio's flag is inverted: False = pre-LN
            raise ValueError("expected a pre-LN (layer_norm_first) WavLM encoder")
        self.layer_weights = nn.Parameter(torch.zeros(self.config.num_states))
        self.head = ECAPAHead(self.config.head)

    def normalize(self, wavs: Tensor, lengths: Tensor) -> Tensor:
        """Zero-mean unit-variance per utterance over its valid samples (F.layer_norm, eps 1e-5)."""
        mask = (torch.arange(wavs.shape[1], device=wavs.device)[None, :] < lengths[:, None]).to(wavs.dtype)
        n = lengths.to(wavs.dtype).clamp(min=1.0)[:, None]
        mean = (wavs * mask).sum(1, keepdim=True) / n
        var = (((wavs - mean) * mask) ** 2).sum(1, keepdim=True) / n
        return (wavs - mean) / torch.sqrt(var + 1e-5) * mask

    def hidden_states(self, wavs: Tensor, lengths: Tensor) -> tuple[list[Tensor], Tensor]:
        """The 25 (for Large) states s3prl exposes as `hidden_states`, each (B, T, C), and frame lengths."""
        if self.config.wavlm.normalize_waveform:
            wavs = self.normalize(wavs, lengths)
        feats, frames = self.wavlm.feature_extractor(wavs, lengths)
        if frames is None or int(frames.min()) < 1:
            raise ValueError("audio too short for WavLM: fewer than one feature frame")
        encoder = self.wavlm.encoder
        transformer = encoder.transformer
        pad = torch.arange(feats.shape[1], device=feats.device)[None, :] >= frames[:, None]
        x = encoder.feature_projection(feats).masked_fill(pad.unsqueeze(-1), 0.0)
        x = transformer.dropout(x + transformer.pos_conv_embed(x))
        states = [x]
        position_bias = None
        key_mask = torch.zeros(pad.shape, dtype=x.dtype, device=x.device).masked_fill(pad, float("-inf"))
        for i, layer in enumerate(transformer.layers):
            x, position_bias = layer(x, None, position_bias=position_bias, key_padding_mask=key_mask)
            states.append(transformer.layer_norm(x) if i == len(transformer.layers) - 1 else x)
        return states, frames

    def forward(self, wavs: Tensor, lengths: Tensor) -> Tensor:
        states, frames = self.hidden_states(wavs, lengths)
        weights = F.softmax(self.layer_weights, dim=-1)
        if len(states) != weights.numel():
            raise ValueError(f"{len(states)} hidden states for {weights.numel()} layer weights")
        mixed = sum(w * s for w, s in zip(weights, states, strict=True))
        feats = mixed.transpose(1, 2) + 1e-6  # (B, C, T); UniSpeech adds 1e-6 before its instance norm
        return self.head(feats, frames)
