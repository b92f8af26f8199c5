"""The FlashSpeech generator network: encoders, prosody generator, latent consistency model.

Tensors: phone-level (B, P, H), frame-level (B, T, H), latents (B, D, T) in the codec's normalised space,
bool masks True on valid positions. Everything is masked so that padding an item in a batch never
changes another item's output.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from flashspeech import consistency as cm
from flashspeech.config import FlashSpeechConfig
from flashspeech.modules.anchor import AnchorHead
from flashspeech.modules.common import length_regulate, masked_mean
from flashspeech.modules.encoder import TransformerEncoder
from flashspeech.modules.predictor import ProsodyPredictor
from flashspeech.modules.wavenet import WaveNet

Anchor = tuple[Tensor, Tensor]  # (mu, s) of the "anchored" parametrisation, each (B, D, T)


def pitch_bin_edges(cfg: FlashSpeechConfig) -> Tensor:
    """The 511 log-spaced edges between f0_min and f0_max that split F0 into 512 bins (bin 0: below / unvoiced)."""
    p = cfg.prosody
    return torch.exp(torch.linspace(math.log(p.f0_min), math.log(p.f0_max), p.pitch_bins - 1))


class FlashSpeechModel(nn.Module):
    """All trainable parts of the generator (no codec)."""

    def __init__(self, cfg: FlashSpeechConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        noise_scale = cfg.consistency.noise_embed_scale
        self.token_embedding = nn.Embedding(cfg.vocab_size, h, padding_idx=0)
        nn.init.normal_(self.token_embedding.weight, std=cfg.token_init_std)
        with torch.no_grad():
            self.token_embedding.weight[0].zero_()
        self.phoneme_encoder = TransformerEncoder(cfg.phoneme_encoder)
        self.prompt_in = nn.Linear(cfg.latent_dim, h)
        self.prompt_encoder = TransformerEncoder(cfg.prompt_encoder)
        self.query_tokens = nn.Embedding(cfg.query_tokens, h)
        self.query_attention = nn.MultiheadAttention(h, cfg.wavenet.heads, batch_first=True)
        self.duration_predictor = ProsodyPredictor(cfg.duration_predictor)
        self.pitch_predictor = ProsodyPredictor(cfg.pitch_predictor)
        self.pitch_embedding = nn.Embedding(cfg.prosody.pitch_bins, h)
        self.lcm = WaveNet(cfg.wavenet, cfg.latent_dim, cond_dim=h, noise_scale=noise_scale)
        c = cfg.consistency
        self.anchor = (
            AnchorHead(h, cfg.latent_dim, c.anchor_layers, c.anchor_kernel, c.sigma_data, c.anchor_min_scale)
            if c.parametrisation == "anchored"
            else None
        )
        self.duration_refiner = WaveNet(cfg.prosody.refine, 1, cond_dim=h, noise_scale=noise_scale)
        self.pitch_refiner = WaveNet(cfg.prosody.refine, 1, cond_dim=h, noise_scale=noise_scale)
        self.register_buffer("pitch_edges", pitch_bin_edges(cfg), persistent=False)

    # -- conditioning -------------------------------------------------------------------------------
    def encode_prompt(self, prompt: Tensor, prompt_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Prompt latent (B, D, Tp) -> encoding (B, Tp, H), style = its masked time-mean (B, H), query tokens."""
        spk = self.prompt_encoder(self.prompt_in(prompt.transpose(1, 2)), prompt_mask)
        style = masked_mean(spk, prompt_mask)
        queries = self.query_tokens.weight.unsqueeze(0).expand(prompt.shape[0], -1, -1)
        tokens, _ = self.query_attention(queries, spk, spk, key_padding_mask=~prompt_mask, need_weights=False)
        return spk, style, tokens

    def encode_phonemes(self, phonemes: Tensor, phone_mask: Tensor, style: Tensor) -> Tensor:
        return self.phoneme_encoder(self.token_embedding(phonemes), phone_mask, style)

    def frame_condition(self, frames: Tensor, f0: Tensor) -> Tensor:
        """The LCM condition c: length-regulated phoneme encoding + pitch embedding of F0 in Hz."""
        return frames + self.pitch_embedding(torch.bucketize(f0, self.pitch_edges))

    # -- consistency functions ----------------------------------------------------------------------
    def latent_anchor(self, cond: Tensor, mask: Tensor) -> Anchor | None:
        """(mu, s) of the "anchored" parametrisation for a frame condition, or None for "edm"."""
        return None if self.anchor is None else self.anchor(cond, mask)

    def _consistency(
        self,
        net: WaveNet,
        x: Tensor,
        sigma: Tensor,
        cond: Tensor,
        mask: Tensor,
        tokens: Tensor | None = None,
        sigma_min: float | None = None,
        anchor: Anchor | None = None,
    ) -> Tensor:
        c = self.cfg.consistency
        sigma_min = c.sigma_min if sigma_min is None else sigma_min
        s = sigma.view(-1, *([1] * (x.dim() - 1)))
        if anchor is None:
            mean, scale = 0.0, c.sigma_data
        else:  # detached: the anchor learns from its own loss only, so the preconditioning holds still for F
            mean, scale = anchor[0].detach(), anchor[1].detach()
        y = x - mean
        F = net(cm.c_in(s, scale) * y, cm.c_noise(sigma), cond, mask, tokens)
        return mean + cm.c_skip(s, scale, sigma_min) * y + cm.c_out(s, scale, sigma_min) * F

    @property
    def denoiser_sigma_min(self) -> float:
        """The sigma_min of `denoise`'s preconditioning: the config's for a consistency model, 0 for diffusion."""
        return 0.0 if self.cfg.objective == "diffusion" else self.cfg.consistency.sigma_min

    def denoise(
        self,
        x: Tensor,
        sigma: Tensor,
        cond: Tensor,
        mask: Tensor,
        tokens: Tensor,
        anchor: Anchor | None = None,
    ) -> Tensor:
        """f_theta(x, sigma): the latent consistency model, or for objective "diffusion" the EDM denoiser
        D(x, sigma) (the same preconditioning with sigma_min = 0). x (B, D, T), sigma (B,). `anchor` is
        `latent_anchor(cond, mask)` computed once by a caller that denoises the same condition repeatedly."""
        if anchor is None and self.anchor is not None:
            anchor = self.latent_anchor(cond, mask)
        return self._consistency(self.lcm, x, sigma, cond, mask, tokens, self.denoiser_sigma_min, anchor)

    def refine(self, which: str, x: Tensor, sigma: Tensor, cond: Tensor, mask: Tensor) -> Tensor:
        """The prosody refinement consistency model on the residual (B, 1, L); `which` is duration or pitch."""
        net = self.duration_refiner if which == "duration" else self.pitch_refiner
        return self._consistency(net, x, sigma, cond, mask)

    # -- prosody --------------------------------------------------------------------------------------
    def prosody(
        self,
        which: str,
        x: Tensor,
        mask: Tensor,
        spk: Tensor,
        prompt_mask: Tensor,
        alpha: float,
        noise: Callable[[], Tensor] | None,
    ) -> tuple[Tensor, Tensor]:
        """Regression prediction of log(1 + value), plus alpha times a one-step refinement residual.

        Returns (final log prediction (B, L), regression-only log prediction (B, L)).
        """
        predictor = self.duration_predictor if which == "duration" else self.pitch_predictor
        init, feature = predictor(x, mask, spk, prompt_mask)
        if alpha == 0.0 or noise is None:
            return init, init
        sigma_max = self.cfg.prosody.refine_sigma_max
        sigma = torch.full((x.shape[0],), sigma_max, device=x.device, dtype=x.dtype)
        residual = self.refine(which, noise() * sigma_max, sigma, feature, mask).squeeze(1)
        return (alpha * residual + init) * mask, init


def durations_from_log(log_durations: Tensor, mask: Tensor) -> Tensor:
    """Frames per phone: clamp(round(exp(x) - 1), 0), zero on padding."""
    return torch.clamp(torch.round(torch.exp(log_durations) - 1.0), min=0).long() * mask.long()


def f0_from_log(log_f0: Tensor, mask: Tensor) -> Tensor:
    return torch.clamp(torch.exp(log_f0) - 1.0, min=0.0) * mask


__all__ = ["FlashSpeechModel", "durations_from_log", "f0_from_log", "length_regulate", "pitch_bin_edges"]
