"""Non-causal WaveNet: the consistency model's network F(c_in x, c_noise, cond).

Per layer: noise-level embedding added to the input, dilated conv (hidden -> 2 hidden), condition added
by a 1x1 conv, on every `attn_every`-th layer a FiLM whose gain and bias come from cross-attention of the
layer input (or, for `film_query = "noisy-input"`, the dilated conv's input: layer input + noise projection)
to the prompt's query tokens, gated tanh * sigmoid, 1x1 conv to residual and skip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flashspeech.config import WaveNetConfig
from flashspeech.modules.common import sinusoidal_embedding


def noise_embed_divisor(dim: int, exponent: str) -> int:
    """The divisor d of the noise sinusoid frequencies 10000^(-i/d) (`WaveNetConfig.noise_embed_exponent`):
    half = dim // 2 for "i/half" (ours), half - 1 for "i/(half-1)" (the official code)."""
    return dim // 2 - 1 if exponent == "i/(half-1)" else dim // 2


class NoiseEmbedding(nn.Module):
    """sinusoidal(scale * c_noise) -> Linear -> Mish -> Linear."""

    def __init__(self, dim: int, mlp_hidden: int, out_dim: int, scale: float, exponent: str = "i/half"):
        super().__init__()
        self.dim, self.scale = dim, scale
        self.divisor = noise_embed_divisor(dim, exponent)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.Mish(), nn.Linear(mlp_hidden, out_dim))

    def forward(self, c_noise: Tensor) -> Tensor:
        emb = sinusoidal_embedding(c_noise * self.scale, self.dim, divisor=self.divisor)
        return self.mlp(emb.to(c_noise.dtype))


class QueryFiLM(nn.Module):
    """LN -> MHA(query = layer input, key/value = prompt query tokens) -> FiLM gain and bias."""

    def __init__(self, hidden: int, heads: int, dropout: float, zero_init: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.gain = nn.Linear(hidden, 2 * hidden)
        self.bias = nn.Linear(hidden, 2 * hidden)
        if zero_init:  # start as the identity (gain 1, bias 0)
            for proj in (self.gain, self.bias):
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)

    def forward(self, x: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        q = self.norm(x.transpose(1, 2))
        a, _ = self.attn(q, tokens, tokens, need_weights=False)
        return self.gain(a).transpose(1, 2), self.bias(a).transpose(1, 2)


class GatedTanh(nn.Module):
    """tanh(first half) * sigmoid(second half) over channels; a module so that hooks can watch its input
    (the validation's gate-saturation statistic)."""

    def forward(self, y: Tensor) -> Tensor:
        gate, filt = y.chunk(2, dim=1)
        return torch.tanh(gate) * torch.sigmoid(filt)


class ResidualLayer(nn.Module):
    def __init__(self, cfg: WaveNetConfig, cond_dim: int, dilation: int, film: bool):
        super().__init__()
        h = cfg.hidden
        self.noise_proj = nn.Linear(h, h)
        self.dilated = nn.Conv1d(h, 2 * h, cfg.kernel, padding=dilation * (cfg.kernel // 2), dilation=dilation)
        self.cond_proj = nn.Conv1d(cond_dim, 2 * h, 1)
        self.film = QueryFiLM(h, cfg.heads, cfg.attn_dropout, cfg.film_init == "zero") if film else None
        self.noisy_film_query = cfg.film_query == "noisy-input"
        self.gated = GatedTanh()
        self.out_proj = nn.Conv1d(h, 2 * h, 1)

    def forward(self, x: Tensor, noise: Tensor, cond: Tensor, mask: Tensor, tokens: Tensor | None):
        noisy = (x + self.noise_proj(noise).unsqueeze(-1)) * mask
        y = self.dilated(noisy) + self.cond_proj(cond)
        if self.film is not None:
            gain, bias = self.film(noisy if self.noisy_film_query else x, tokens)
            y = y * (1.0 + gain) + bias
        y = self.gated(y)
        residual, skip = self.out_proj(y).chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0) * mask, skip * mask


class WaveNet(nn.Module):
    """(B, in_ch, T) noisy input, (B,) c_noise, (B, T, cond_dim) condition -> (B, out_ch, T)."""

    def __init__(self, cfg: WaveNetConfig, in_channels: int, cond_dim: int, noise_scale: float):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.in_proj = nn.Conv1d(in_channels, h, 1)
        self.noise_embed = NoiseEmbedding(
            cfg.noise_embed_dim, cfg.noise_mlp_hidden, h, noise_scale, cfg.noise_embed_exponent
        )
        self.cond_norm = nn.LayerNorm(cond_dim)
        self.layers = nn.ModuleList(
            ResidualLayer(
                cfg,
                cond_dim,
                dilation=2 ** (i % cfg.dilation_cycle),
                film=bool(cfg.attn_every) and i % cfg.attn_every == 0,
            )
            for i in range(cfg.layers)
        )
        self.skip_proj = nn.Conv1d(h, h, 1)
        self.out_proj = nn.Conv1d(h, in_channels, 1)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor, c_noise: Tensor, cond: Tensor, mask: Tensor, tokens: Tensor | None = None) -> Tensor:
        m = mask.unsqueeze(1).to(x.dtype)
        x = F.relu(self.in_proj(x * m)) * m
        noise = self.noise_embed(c_noise)
        cond = self.cond_norm(cond).transpose(1, 2) * m
        skips = torch.zeros_like(x)
        for layer in self.layers:
            x, skip = layer(x, noise, cond, m, tokens)
            skips = skips + skip
        y = F.relu(self.skip_proj(skips / math.sqrt(len(self.layers))))
        return self.out_proj(y) * m
