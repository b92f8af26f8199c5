"""Load UniSpeech's `wavlm_large_finetune.pth` strictly, through an explicit key mapping.

The checkpoint (UniSpeech speaker_verification, "WavLM large, fine-tuned") is a dict whose `model` entry
is the state dict of UniSpeech's `ECAPA_TDNN_SMALL(feat_dim=1024, feat_type='wavlm_large')`:

* `feature_extract.model.*`: the s3prl/unilm WavLM-Large backbone (488 tensors, original unilm names);
* `feature_weight`: the 25 hidden-state mixing weights;
* `layer1`..`layer4`, `conv`, `pooling`, `bn`, `linear`: the ECAPA-TDNN head;
* `loss_calculator.projection.weight`: the training-time speaker classifier, unused for embeddings.

Every source key is mapped onto torchaudio's WavLM + our head (`MAPPING_RULES`) or is one of the two
named training-only tensors (`IGNORED`); anything else, any target left unfilled, and any shape mismatch
fails the load with the full list. UniSpeech's own scripts load with `strict=False`, so a wrong or
partial file silently gives a random head; here it cannot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from flashspeech.foundation.assets import AssetError, ModelAsset
from flashspeech.foundation.keymap import (
    MappingReport,
    load_asset_file,
    load_strict,
    mapping_problems,
    wav2vec2_encoder_rules,
)

WAVLM_TDNN_ASSET = ModelAsset(
    name="UniSpeech WavLM-TDNN (wavlm_large_finetune.pth)",
    filename="unispeech/wavlm_large_finetune.pth",
    sha256=None,  # not pinned: no authoritative digest is published; the file's sha256 is recorded instead
    how_to_get=(
        "Download `wavlm_large_finetune.pth` from the microsoft/UniSpeech speaker_verification model zoo "
        "('WavLM large, Fix pre-train: No', Google Drive id 1-aE1NfzpRCLxA4GUxX9ITI3F9LlbtEGP; also mirrored "
        "as speaker_similarity/wavlm_large_finetune.pth in k2-fsa/TTS_eval_models). It contains the "
        "fine-tuned WavLM-Large backbone, so no separate WavLM file is needed."
    ),
)

BACKBONE = r"feature_extract\.model\."
LAYER = r"feature_extract\.model\.encoder\.layers\.(\d+)\."
TARGET_LAYER = "wavlm.encoder.transformer.layers.{0}."
P = r"(weight|bias)"
BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
HEAD_BLOCK = r"layer([234])\."

# (source regex, target template): `{i}` are the regex groups; block indices are shifted by `_shift_block`.
MAPPING_RULES: tuple[tuple[str, str], ...] = (
    # WavLM front end and encoder (s3prl / unilm WavLM names -> torchaudio Wav2Vec2Model names)
    (
        BACKBONE + r"feature_extractor\.conv_layers\.(\d+)\.0\.weight",
        "wavlm.feature_extractor.conv_layers.{0}.conv.weight",
    ),
    (
        BACKBONE + r"feature_extractor\.conv_layers\.(\d+)\.2\.1\." + P,
        "wavlm.feature_extractor.conv_layers.{0}.layer_norm.{1}",
    ),
    *wav2vec2_encoder_rules(BACKBONE, "wavlm."),
    (LAYER + r"self_attn\.out_proj\." + P, TARGET_LAYER + "attention.attention.out_proj.{1}"),
    (LAYER + r"self_attn\.relative_attention_bias\.weight", TARGET_LAYER + "attention.rel_attn_embed.weight"),
    (LAYER + r"self_attn\.grep_linear\." + P, TARGET_LAYER + "attention.gru_rel_pos_linear.{1}"),
    (LAYER + r"self_attn\.grep_a", TARGET_LAYER + "attention.gru_rel_pos_const"),
    # ECAPA-TDNN head (UniSpeech names -> ecapa.py names); UniSpeech's layer2..4 are our blocks 0..2
    (r"feature_weight", "layer_weights"),
    (r"layer1\.conv\." + P, "head.stem.conv.{0}"),
    (r"layer1\.bn\." + BN, "head.stem.bn.{0}"),
    (HEAD_BLOCK + r"Conv1dReluBn1\.conv\." + P, "head.blocks.{0}.pre.conv.{1}"),
    (HEAD_BLOCK + r"Conv1dReluBn1\.bn\." + BN, "head.blocks.{0}.pre.bn.{1}"),
    (HEAD_BLOCK + r"Res2Conv1dReluBn\.convs\.(\d+)\." + P, "head.blocks.{0}.res2.convs.{1}.{2}"),
    (HEAD_BLOCK + r"Res2Conv1dReluBn\.bns\.(\d+)\." + BN, "head.blocks.{0}.res2.norms.{1}.{2}"),
    (HEAD_BLOCK + r"Conv1dReluBn2\.conv\." + P, "head.blocks.{0}.post.conv.{1}"),
    (HEAD_BLOCK + r"Conv1dReluBn2\.bn\." + BN, "head.blocks.{0}.post.bn.{1}"),
    (HEAD_BLOCK + r"SE_Connect\.linear1\." + P, "head.blocks.{0}.se.squeeze.{1}"),
    (HEAD_BLOCK + r"SE_Connect\.linear2\." + P, "head.blocks.{0}.se.excite.{1}"),
    (r"conv\." + P, "head.aggregate.{0}"),
    (r"pooling\.linear1\." + P, "head.pool.attention_in.{0}"),
    (r"pooling\.linear2\." + P, "head.pool.attention_out.{0}"),
    (r"bn\." + BN, "head.pool_norm.{0}"),
    (r"linear\." + P, "head.embed.{0}"),
)

# q/k/v projections are merged into torchaudio's packed `in_proj_{weight,bias}` (order q, k, v).
QKV_RULE = (LAYER + r"self_attn\.([qkv])_proj\." + P, TARGET_LAYER + "attention.attention.in_proj_{2}")

IGNORED: dict[str, str] = {
    "feature_extract.model.mask_emb": "WavLM pre-training mask embedding (unused: no masking at inference)",
    "loss_calculator.projection.weight": "training-time speaker classifier (unused for embeddings)",
}

_COMPILED = [(re.compile(src + "$"), dst) for src, dst in MAPPING_RULES]
_QKV = re.compile(QKV_RULE[0] + "$")


class CheckpointMappingError(AssetError):
    """The checkpoint does not map exactly onto the model; the message lists every problem."""


def _target(template: str, groups: tuple[str, ...]) -> str:
    if template.startswith("head.blocks."):  # UniSpeech layer2..4 -> blocks 0..2
        groups = (str(int(groups[0]) - 2), *groups[1:])
    return template.format(*groups)


def map_state_dict(
    source: Mapping[str, Tensor], target_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, Tensor], MappingReport]:
    """Rename UniSpeech keys to our model's keys, merging q/k/v; raise listing every mismatch."""
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    qkv: dict[str, dict[str, Tensor]] = {}
    unmapped, duplicates, ignored = [], [], {}
    for key, value in source.items():
        if key in IGNORED:
            ignored[key] = IGNORED[key]
            continue
        match = _QKV.match(key)
        if match:
            layer, part, kind = match.groups()
            qkv.setdefault(QKV_RULE[1].format(layer, part, kind), {})[part] = value
            continue
        for pattern, template in _COMPILED:
            match = pattern.match(key)
            if match:
                name = _target(template, match.groups())
                if name in mapped:
                    duplicates.append(f"{key} and {origin[name]} -> {name}")
                mapped[name], origin[name] = value, key
                break
        else:
            unmapped.append(key)
    incomplete = []
    for name, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            incomplete.append(f"{name} (has {''.join(sorted(parts))}, needs q, k and v)")
            continue
        mapped[name] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        origin[name] = name
    problems = mapping_problems(
        mapped, origin, target_shapes, unmapped, duplicates, extra=[("incomplete q/k/v projections", incomplete)]
    )
    if problems:
        raise CheckpointMappingError(
            "UniSpeech WavLM-TDNN checkpoint does not match the model exactly:\n" + "\n".join(problems)
        )
    return mapped, MappingReport(source_keys=len(source), mapped_targets=len(mapped), ignored=ignored)


def extract_model_state(checkpoint: object) -> Mapping[str, Tensor]:
    """The model state dict inside a UniSpeech checkpoint (its `model` entry, or a bare state dict)."""
    if isinstance(checkpoint, Mapping):
        if "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
            return checkpoint["model"]
        if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
            return checkpoint
        raise CheckpointMappingError(
            f"not a UniSpeech checkpoint: top-level keys {sorted(map(str, checkpoint))[:10]}, no 'model' entry"
        )
    raise CheckpointMappingError(f"not a UniSpeech checkpoint: a {type(checkpoint).__name__}, not a dict")


def load_into(model: torch.nn.Module, source: Mapping[str, Tensor]) -> MappingReport:
    """Map `source` onto `model` and load it strictly (`keymap.load_strict`: a model built on the meta device
    gets the checkpoint's tensors assigned, skipping a second 1.2 GB allocation and its random init)."""
    mapped, report = map_state_dict(source, {k: v.shape for k, v in model.state_dict().items()})
    load_strict(model, mapped, CheckpointMappingError)
    return report


@dataclass(frozen=True)
class LoadedCheckpoint:
    path: str
    sha256: str
    report: MappingReport


def load_checkpoint(model: torch.nn.Module, path: str | os.PathLike | None = None) -> LoadedCheckpoint:
    """Resolve the asset (explicit path or the model directory), hash it, load it strictly into `model`."""
    resolved, digest, checkpoint = load_asset_file(WAVLM_TDNN_ASSET, path)
    report = load_into(model, extract_model_state(checkpoint))
    return LoadedCheckpoint(path=str(resolved), sha256=digest, report=report)
