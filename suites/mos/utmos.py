"""UTMOS22 "strong" learner (Saeki et al. 2022) rebuilt on torchaudio's wav2vec 2.0, loaded strictly from a local file.

The predictor the FlashSpeech paper reports UTMOS with is tarepan/SpeechMOS's `utmos22_strong` (a port of
sarulab-speech/UTMOS22's strong learner without its phoneme encoder). Its checkpoint,
`utmos22_strong_step7459_v1.pt`, is a bare state dict:

* `wav2vec2.*`: a fairseq wav2vec 2.0 Base backbone (7-layer conv front end with group norm in the first layer,
  768-d post-LN transformer of 12 layers, 12 heads, 3072-d feed-forward, 128-tap position conv in 16 groups);
* `domain_emb` (1, 128) and `judge_emb` (1, 128): the data-domain and listener embeddings, already selected;
* `blstm.*`: a bidirectional LSTM over [SSL features; domain; judge] (1024 -> 2 x 512);
* `projection.0` / `projection.2`: Linear(1024, 2048) - ReLU - Linear(2048, 1).

The utterance score is 3 + 2 x the mean over frames of the projection's output. Every checkpoint key is mapped
onto this model (`MAPPING_RULES`, torchaudio names for the backbone) or is the one named unused tensor
(`IGNORED`); an unmapped key, a model key left unfilled or a shape mismatch fails the load with the full list.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchaudio.models import wav2vec2_model

from flashspeech.foundation.assets import AssetError, ModelAsset
from flashspeech.foundation.keymap import (
    MappingReport,
    load_asset_file,
    load_strict,
    mapping_problems,
    wav2vec2_encoder_rules,
)

CHECKPOINT_NAME = "utmos22_strong_step7459_v1.pt"
UTMOS_ASSET = ModelAsset(
    name=f"UTMOS22 strong learner ({CHECKPOINT_NAME})",
    filename=f"utmos/{CHECKPOINT_NAME}",
    sha256=None,  # not pinned: no authoritative digest is published; the file's sha256 is recorded instead
    how_to_get=(
        f"Download `{CHECKPOINT_NAME}` from the tarepan/SpeechMOS v1.0.0 GitHub release (the `utmos22_strong` "
        "torch.hub entry; converted from sarulab-speech/UTMOS22's strong learner, MIT licence)."
    ),
)
BASE_CONV_LAYERS: tuple[tuple[int, int, int], ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2


@dataclass(frozen=True)
class UTMOSConfig:
    """Sizes of the model; the defaults are UTMOS22 strong (wav2vec 2.0 Base backbone)."""

    conv_layers: tuple[tuple[int, int, int], ...] = BASE_CONV_LAYERS
    embed_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    ff_dim: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    domain_dim: int = 128
    judge_dim: int = 128
    lstm_hidden: int = 512
    projection_hidden: int = 2048


class UTMOS22Strong(nn.Module):
    """wave (B, T) at 16 kHz -> predicted naturalness MOS (B,)."""

    def __init__(self, config: UTMOSConfig | None = None):
        super().__init__()
        self.config = cfg = config or UTMOSConfig()
        self.ssl = wav2vec2_model(
            extractor_mode="group_norm",
            extractor_conv_layer_config=[list(c) for c in cfg.conv_layers],
            extractor_conv_bias=False,
            encoder_embed_dim=cfg.embed_dim,
            encoder_projection_dropout=0.0,
            encoder_pos_conv_kernel=cfg.pos_conv_kernel,
            encoder_pos_conv_groups=cfg.pos_conv_groups,
            encoder_num_layers=cfg.num_layers,
            encoder_num_heads=cfg.num_heads,
            encoder_attention_dropout=0.0,
            encoder_ff_interm_features=cfg.ff_dim,
            encoder_ff_interm_dropout=0.0,
            encoder_dropout=0.0,
            encoder_layer_norm_first=False,  # post-LN, as wav2vec 2.0 Base
            encoder_layer_drop=0.0,
            aux_num_out=None,
        )
        self.domain_emb = nn.Parameter(torch.zeros(1, cfg.domain_dim), requires_grad=False)
        self.judge_emb = nn.Parameter(torch.zeros(1, cfg.judge_dim), requires_grad=False)
        width = cfg.embed_dim + cfg.domain_dim + cfg.judge_dim
        self.blstm = nn.LSTM(width, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        self.projection = nn.Sequential(
            nn.Linear(2 * cfg.lstm_hidden, cfg.projection_hidden), nn.ReLU(), nn.Linear(cfg.projection_hidden, 1)
        )

    def frame_scores(self, wave: Tensor) -> Tensor:
        """(B, T) -> (B, frames): the projection's output per 20 ms frame, before averaging and scaling."""
        features, _ = self.ssl(wave)
        batch, frames, _ = features.shape
        domain = self.domain_emb.expand(batch, frames, -1)
        judge = self.judge_emb.expand(batch, frames, -1)
        hidden, _ = self.blstm(torch.cat([features, domain, judge], dim=2))
        return self.projection(hidden).squeeze(-1)

    def forward(self, wave: Tensor) -> Tensor:
        return self.frame_scores(wave).mean(dim=1) * 2 + 3


SRC = r"wav2vec2\."
LAYER = r"wav2vec2\.encoder\.layers\.(\d+)\."
DST_LAYER = "ssl.encoder.transformer.layers.{0}."
P = r"(weight|bias)"
LSTM = r"((?:weight|bias)_(?:ih|hh)_l0(?:_reverse)?)"

# (source regex, target template with `{i}` for the regex groups)
MAPPING_RULES: tuple[tuple[str, str], ...] = (
    (SRC + r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", "ssl.feature_extractor.conv_layers.{0}.conv.weight"),
    (SRC + r"feature_extractor\.conv_layers\.0\.2\." + P, "ssl.feature_extractor.conv_layers.0.layer_norm.{0}"),
    *wav2vec2_encoder_rules(SRC, "ssl."),
    (LAYER + r"self_attn\.([qkv]_proj|out_proj)\." + P, DST_LAYER + "attention.{1}.{2}"),
    (r"(domain_emb|judge_emb)", "{0}"),
    (r"blstm\." + LSTM, "blstm.{0}"),
    (r"projection\.([02])\." + P, "projection.{0}.{1}"),
)
IGNORED: dict[str, str] = {"wav2vec2.mask_emb": "wav2vec 2.0 pre-training mask embedding (unused at inference)"}
_COMPILED = [(re.compile(src + "$"), dst) for src, dst in MAPPING_RULES]


class UTMOSCheckpointError(AssetError):
    """The checkpoint does not map exactly onto the model; the message lists every problem."""


def map_state_dict(
    source: Mapping[str, Tensor], target_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, Tensor], MappingReport]:
    """Rename SpeechMOS keys to this model's keys; raise `UTMOSCheckpointError` listing every mismatch."""
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    unmapped, duplicates, ignored = [], [], {}
    for key, value in source.items():
        if key in IGNORED:
            ignored[key] = IGNORED[key]
            continue
        for pattern, template in _COMPILED:
            match = pattern.match(key)
            if match:
                name = template.format(*match.groups())
                if name in mapped:
                    duplicates.append(f"{key} and {origin[name]} -> {name}")
                mapped[name], origin[name] = value, key
                break
        else:
            unmapped.append(key)
    problems = mapping_problems(mapped, origin, target_shapes, unmapped, duplicates)
    if problems:
        listed = "\n".join(problems)
        raise UTMOSCheckpointError(f"UTMOS22 strong checkpoint does not match the model exactly:\n{listed}")
    return mapped, MappingReport(source_keys=len(source), mapped_targets=len(mapped), ignored=ignored)


def extract_state(checkpoint: object) -> Mapping[str, Tensor]:
    """The state dict in a SpeechMOS checkpoint: a bare {name: tensor} mapping (or one under `state_dict`)."""
    if isinstance(checkpoint, Mapping):
        inner = checkpoint.get("state_dict")
        if isinstance(inner, Mapping):
            checkpoint = inner
        if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
            return checkpoint
        raise UTMOSCheckpointError(
            f"not a UTMOS22 strong state dict: top-level keys {sorted(map(str, checkpoint))[:10]} are not all tensors"
        )
    raise UTMOSCheckpointError(f"not a UTMOS22 strong state dict: a {type(checkpoint).__name__}, not a dict")


def load_into(model: UTMOS22Strong, source: Mapping[str, Tensor]) -> MappingReport:
    """Map `source` onto `model` and load it strictly (a model built on the meta device gets the checkpoint's
    tensors assigned)."""
    mapped, report = map_state_dict(source, {k: v.shape for k, v in model.state_dict().items()})
    load_strict(model, mapped, UTMOSCheckpointError)
    return report


@dataclass(frozen=True)
class LoadedUTMOS:
    model: UTMOS22Strong
    path: str
    sha256: str
    report: MappingReport


def load_utmos(path: str | os.PathLike | None = None, config: UTMOSConfig | None = None) -> LoadedUTMOS:
    """Resolve the checkpoint (explicit path or the model directory), hash it and load it strictly into a model
    built on the meta device (no random init). Missing or unreadable: `AssetError` naming the file."""
    resolved, digest, checkpoint = load_asset_file(UTMOS_ASSET, path)
    with torch.device("meta"):
        model = UTMOS22Strong(config)
    report = load_into(model, extract_state(checkpoint))
    return LoadedUTMOS(model=model.eval(), path=str(resolved), sha256=digest, report=report)
