"""ECAPA-TDNN speaker head (UniSpeech's `ECAPA_TDNN_SMALL` structure) that honours padding masks.

Written from the layer structure of UniSpeech's speaker-verification model: a conv stem, three SE-Res2
blocks with dilations 2/3/4, a 1x1 aggregation conv over the concatenated block outputs, attentive
statistics pooling, batch norm and a linear projection. Every time reduction (instance norm, SE squeeze,
pooling) is restricted to the valid frames, and padded frames are zeroed before every conv with a kernel
wider than 1, so a padded batch gives the same embeddings as one utterance at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class HeadConfig:
    """Sizes of the head; the defaults are UniSpeech's `ECAPA_TDNN_SMALL(feat_dim=1024)`."""

    feat_dim: int = 1024
    channels: int = 512
    aggregate_channels: int = 1536
    embedding_dim: int = 256
    res2_scale: int = 8
    se_bottleneck: int = 128
    attention_channels: int = 128
    stem_kernel: int = 5
    dilations: tuple[int, ...] = (2, 3, 4)


def frame_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B, 1, T) float mask: 1 for valid frames, 0 for padding."""
    steps = torch.arange(max_len, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(1).float()


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over time (last dim) of the valid frames: (B, C, T) -> (B, C)."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def masked_instance_norm(x: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """`nn.InstanceNorm1d` (no affine, biased variance) over the valid frames; padding stays 0."""
    mean = masked_mean(x, mask).unsqueeze(-1)
    var = masked_mean((x - mean) ** 2, mask).unsqueeze(-1)
    return (x - mean) / torch.sqrt(var + eps) * mask


class ConvReluNorm(nn.Module):
    """Conv1d -> ReLU -> BatchNorm1d (UniSpeech's order), output masked."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.bn(F.relu(self.conv(x))) * mask


class Res2Conv(nn.Module):
    """Res2Net-style hierarchical convs over `scale` channel groups (the last group passes through)."""

    def __init__(self, channels: int, kernel: int, dilation: int, scale: int):
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels {channels} not divisible by scale {scale}")
        self.width = channels // scale
        pad = dilation * (kernel - 1) // 2
        self.convs = nn.ModuleList(
            nn.Conv1d(self.width, self.width, kernel, padding=pad, dilation=dilation) for _ in range(scale - 1)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(scale - 1))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        groups = torch.split(x, self.width, dim=1)
        out = []
        carry = None
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            carry = groups[i] if carry is None else carry + groups[i]
            carry = norm(F.relu(conv(carry))) * mask
            out.append(carry)
        out.append(groups[-1])
        return torch.cat(out, dim=1)


class SqueezeExcite(nn.Module):
    """Channel gating from the masked time average."""

    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.squeeze = nn.Linear(channels, bottleneck)
        self.excite = nn.Linear(bottleneck, channels)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(masked_mean(x, mask)))))
        return x * gate.unsqueeze(-1)


class SERes2Block(nn.Module):
    """1x1 conv, Res2 dilated convs, 1x1 conv, squeeze-excitation, identity residual."""

    def __init__(self, channels: int, kernel: int, dilation: int, scale: int, se_bottleneck: int):
        super().__init__()
        self.pre = ConvReluNorm(channels, channels)
        self.res2 = Res2Conv(channels, kernel, dilation, scale)
        self.post = ConvReluNorm(channels, channels)
        self.se = SqueezeExcite(channels, se_bottleneck)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        y = self.post(self.res2(self.pre(x, mask), mask), mask)
        return self.se(y, mask) + x


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over the valid frames: (B, C, T) -> (B, 2C)."""

    def __init__(self, channels: int, attention_channels: int):
        super().__init__()
        self.attention_in = nn.Conv1d(channels, attention_channels, 1)
        self.attention_out = nn.Conv1d(attention_channels, channels, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        logits = self.attention_out(torch.tanh(self.attention_in(x)))
        alpha = torch.softmax(logits.masked_fill(mask == 0, float("-inf")), dim=2)
        mean = (alpha * x).sum(dim=2)
        var = (alpha * x * x).sum(dim=2) - mean**2
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-9))], dim=1)


class ECAPAHead(nn.Module):
    """Frame features (B, feat_dim, T) + frame lengths -> speaker embeddings (B, embedding_dim)."""

    def __init__(self, config: HeadConfig = HeadConfig()):
        super().__init__()
        c = config
        self.config = config
        self.stem = ConvReluNorm(c.feat_dim, c.channels, c.stem_kernel)
        self.blocks = nn.ModuleList(SERes2Block(c.channels, 3, d, c.res2_scale, c.se_bottleneck) for d in c.dilations)
        self.aggregate = nn.Conv1d(c.channels * len(c.dilations), c.aggregate_channels, 1)
        self.pool = AttentiveStatsPool(c.aggregate_channels, c.attention_channels)
        self.pool_norm = nn.BatchNorm1d(c.aggregate_channels * 2)
        self.embed = nn.Linear(c.aggregate_channels * 2, c.embedding_dim)

    def forward(self, feats: Tensor, lengths: Tensor) -> Tensor:
        mask = frame_mask(lengths, feats.shape[-1]).to(feats.dtype)
        x = masked_instance_norm(feats, mask)
        x = self.stem(x, mask)
        outs = []
        for block in self.blocks:
            x = block(x, mask)
            outs.append(x)
        x = F.relu(self.aggregate(torch.cat(outs, dim=1))) * mask
        return self.embed(self.pool_norm(self.pool(x, mask)))
