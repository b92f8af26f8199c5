"""Transformer encoders with a convolutional FFN; the phoneme encoder uses style-adaptive LayerNorm."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flashspeech.config import EncoderConfig
from flashspeech.modules.common import interleaved_sinusoidal_positions, sinusoidal_positions


class StyleAdaptiveLayerNorm(nn.Module):
    """Non-affine LayerNorm whose gain and bias come from a style vector (the prompt's time-mean)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.style = nn.Linear(hidden, 2 * hidden)
        with torch.no_grad():  # gain bias 1, shift bias 0 (official code)
            self.style.bias[:hidden].fill_(1.0)
            self.style.bias[hidden:].zero_()

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        gamma, beta = self.style(style).unsqueeze(1).chunk(2, dim=-1)
        return self.norm(x) * gamma + beta


class _Norm(nn.Module):
    """LayerNorm or style-adaptive LayerNorm behind one call signature."""

    def __init__(self, hidden: int, style_adaptive: bool):
        super().__init__()
        self.norm = StyleAdaptiveLayerNorm(hidden) if style_adaptive else nn.LayerNorm(hidden)
        self.style_adaptive = style_adaptive

    def forward(self, x: Tensor, style: Tensor | None) -> Tensor:
        return self.norm(x, style) if self.style_adaptive else self.norm(x)


class ConvFeedForward(nn.Module):
    """Conv1d(hidden -> ffn, kernel k) -> ReLU -> dropout -> Linear(ffn -> hidden)."""

    def __init__(self, hidden: int, ffn_hidden: int, kernel: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(hidden, ffn_hidden, kernel, padding=kernel // 2)
        self.out = nn.Linear(ffn_hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x * mask.unsqueeze(-1)
        y = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.out(self.dropout(y))


class TransformerLayer(nn.Module):
    """Pre-norm self-attention + conv FFN."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.norm1 = _Norm(cfg.hidden, cfg.style_adaptive)
        self.attn = nn.MultiheadAttention(cfg.hidden, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.norm2 = _Norm(cfg.hidden, cfg.style_adaptive)
        self.ffn = ConvFeedForward(cfg.hidden, cfg.ffn_hidden, cfg.ffn_kernel, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor, style: Tensor | None = None) -> Tensor:
        y = self.norm1(x, style)
        y, _ = self.attn(y, y, y, key_padding_mask=~mask, need_weights=False)
        x = x + self.dropout(y)
        x = x + self.dropout(self.ffn(self.norm2(x, style), mask))
        return x * mask.unsqueeze(-1)


def encoder_positions(kind: str, length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """What an encoder adds to its input (`EncoderConfig.positions`): (length, dim) sinusoidal positions over
    time ("sinusoidal"), or for "constant" the (1, dim) row 0 of the interleaved table, [0, 1, 0, 1, ...],
    for every frame: the official code at batch size 1 (its batched forward would add row b to item b)."""
    if kind == "constant":
        return interleaved_sinusoidal_positions(1, dim, device)
    return sinusoidal_positions(length, dim, device)


class TransformerEncoder(nn.Module):
    """Positions (`encoder_positions`) + N pre-norm layers + a final norm. Input and output (B, T, hidden)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(TransformerLayer(cfg) for _ in range(cfg.layers))
        self.final_norm = _Norm(cfg.hidden, cfg.style_adaptive)

    def forward(self, x: Tensor, mask: Tensor, style: Tensor | None = None) -> Tensor:
        x = x + encoder_positions(self.cfg.positions, x.shape[1], x.shape[2], x.device).to(x.dtype)
        x = x * mask.unsqueeze(-1)
        for layer in self.layers:
            x = layer(x, mask, style)
        return self.final_norm(x, style) * mask.unsqueeze(-1)
