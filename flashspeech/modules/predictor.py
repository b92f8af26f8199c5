"""Duration and pitch predictors ("prosody regression"): conv blocks with cross-attention to the prompt."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flashspeech.config import PredictorConfig


class CrossAttentionBlock(nn.Module):
    """LN -> MHA over the prompt encoding -> dropout -> (y + x) / sqrt(2)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, prompt: Tensor, prompt_mask: Tensor) -> Tensor:
        y, _ = self.attn(self.norm(x), prompt, prompt, key_padding_mask=~prompt_mask, need_weights=False)
        return (self.dropout(y) + x) / math.sqrt(2.0)


class ProsodyPredictor(nn.Module):
    """Predicts log(1 + value) per position (phone durations, or frame F0 in Hz).

    Block i: [cross-attention to the prompt, when i % attn_every == 0] -> conv -> ReLU -> LN -> dropout, plus
    (for i > 0) a residual: the block's input after its cross-attention, or before it for
    `attn_residual = "before-attention"` (the official code).

    Returns the prediction (B, T) and the feature before the final projection (B, T, hidden), which
    conditions the prosody refinement model.
    """

    def __init__(self, cfg: PredictorConfig):
        super().__init__()
        self.cfg = cfg
        self.convs = nn.ModuleList(
            nn.Conv1d(cfg.hidden, cfg.hidden, cfg.kernel, padding=cfg.kernel // 2) for _ in range(cfg.layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.hidden) for _ in range(cfg.layers))
        n_attn = len([i for i in range(cfg.layers) if cfg.attn_every and i % cfg.attn_every == 0])
        self.attns = nn.ModuleList(CrossAttentionBlock(cfg.hidden, cfg.heads, cfg.attn_dropout) for _ in range(n_attn))
        self.dropout = nn.Dropout(cfg.dropout)
        self.proj = nn.Linear(cfg.hidden, 1)

    def forward(self, x: Tensor, mask: Tensor, prompt: Tensor, prompt_mask: Tensor) -> tuple[Tensor, Tensor]:
        m = mask.unsqueeze(-1).to(x.dtype)
        attn = iter(self.attns)
        before_attention = self.cfg.attn_residual == "before-attention"
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            block_input = x
            if self.cfg.attn_every and i % self.cfg.attn_every == 0:
                x = next(attn)(x, prompt, prompt_mask) * m
            residual = block_input if before_attention else x
            y = torch.relu(conv((x * m).transpose(1, 2))).transpose(1, 2)
            y = self.dropout(norm(y))
            x = (y + residual if i > 0 else y) * m
        return self.proj(x).squeeze(-1) * mask, x
