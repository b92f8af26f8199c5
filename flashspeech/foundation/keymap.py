"""Strict loading of foreign checkpoints through an explicit key mapping: what a mapping did, every way it can
fail to fill a model exactly, and the strict load itself (a model built on the meta device gets the checkpoint's
tensors assigned instead of a random init).

A converter (e.g. `flashspeech.foundation.unispeech`) renames the checkpoint's keys to the model's and records,
per mapped key, the source key it came from; `mapping_problems` then lists unmapped, missing, unexpected,
mis-shaped and doubly mapped keys, and the converter raises its own error with that listing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from flashspeech.foundation.assets import AssetError, ModelAsset
from flashspeech.foundation.hashing import cached_sha256


def wav2vec2_encoder_rules(src: str, dst: str) -> tuple[tuple[str, str], ...]:
    r"""Key rules that fairseq-style wav2vec 2.0 and WavLM checkpoints share with torchaudio's `Wav2Vec2Model`:
    feature projection, positional convolution (weight norm g/v), encoder norm, and each layer's norms and
    feed-forward. `src` is the checkpoint's regex prefix of the model (r"wav2vec2\."), `dst` the target
    module's prefix ("ssl."); templates use `{i}` for the regex groups (the layer index is group 0)."""
    p = r"(weight|bias)"
    layer, dst_layer = src + r"encoder\.layers\.(\d+)\.", dst + "encoder.transformer.layers.{0}."
    pos_conv = dst + "encoder.transformer.pos_conv_embed.conv."
    return (
        (src + r"layer_norm\." + p, dst + "encoder.feature_projection.layer_norm.{0}"),
        (src + r"post_extract_proj\." + p, dst + "encoder.feature_projection.projection.{0}"),
        (src + r"encoder\.pos_conv\.0\.bias", pos_conv + "bias"),
        (src + r"encoder\.pos_conv\.0\.weight_g", pos_conv + "parametrizations.weight.original0"),
        (src + r"encoder\.pos_conv\.0\.weight_v", pos_conv + "parametrizations.weight.original1"),
        (src + r"encoder\.layer_norm\." + p, dst + "encoder.transformer.layer_norm.{0}"),
        (layer + r"self_attn_layer_norm\." + p, dst_layer + "layer_norm.{1}"),
        (layer + r"fc1\." + p, dst_layer + "feed_forward.intermediate_dense.{1}"),
        (layer + r"fc2\." + p, dst_layer + "feed_forward.output_dense.{1}"),
        (layer + r"final_layer_norm\." + p, dst_layer + "final_layer_norm.{1}"),
    )


@dataclass
class MappingReport:
    """What a strict mapping did: counts and the ignored keys with why."""

    source_keys: int
    mapped_targets: int
    ignored: dict[str, str] = field(default_factory=dict)


def listing(title: str, keys: Sequence[str], limit: int = 20) -> str:
    """An indented block naming up to `limit` keys under a title with their count."""
    shown = "\n    ".join(keys[:limit])
    more = f"\n    ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"  {title} ({len(keys)}):\n    {shown}{more}"


def mapping_problems(
    mapped: Mapping[str, Tensor],
    origin: Mapping[str, str],
    target_shapes: Mapping[str, torch.Size],
    unmapped: Sequence[str],
    duplicates: Sequence[str],
    extra: Iterable[tuple[str, Sequence[str]]] = (),
) -> list[str]:
    """Every way `mapped` (target key -> tensor, from source key `origin[target]`) fails to fill a model of
    `target_shapes` exactly, as `listing` blocks; empty when it fits. `extra`: a converter's own (title, keys)."""
    missing = sorted(set(target_shapes) - set(mapped))
    unexpected = sorted(f"{origin[k]} -> {k}" for k in set(mapped) - set(target_shapes))
    shapes = sorted(
        f"{origin[k]} -> {k}: checkpoint {tuple(v.shape)}, model {tuple(target_shapes[k])}"
        for k, v in mapped.items()
        if k in target_shapes and tuple(v.shape) != tuple(target_shapes[k])
    )
    groups = (
        ("checkpoint keys no rule maps", sorted(unmapped)),
        ("model keys the checkpoint does not fill", missing),
        ("mapped keys the model does not have", unexpected),
        ("shape mismatches", shapes),
        ("keys mapped twice", duplicates),
        *extra,
    )
    return [listing(title, keys) for title, keys in groups if keys]


def load_strict(model: torch.nn.Module, mapped: Mapping[str, Tensor], error: type[Exception]) -> None:
    """`model.load_state_dict(mapped, strict=True)`; a model on the meta device gets the tensors assigned (no
    second allocation, no random init) and is cast to float32; a tensor left on meta raises `error`."""
    on_meta = any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    model.load_state_dict(mapped, strict=True, assign=on_meta)
    if on_meta:
        left = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
        if left:
            raise error(f"tensors left uninitialised after loading: {left[:10]}")
        model.float()


def load_asset_file(asset: ModelAsset, path: str | os.PathLike | None = None) -> tuple[Path, str, object]:
    """The asset's file (explicit path or the model directory), its sha256 and its `torch.load`ed content
    (tensors only); a missing, non-file or unreadable checkpoint is an `AssetError` naming the file."""
    resolved = asset.resolve(path)
    if not resolved.is_file():
        raise AssetError(f"{asset.name}: {resolved} is not a file")
    digest = cached_sha256(Path(resolved))
    try:
        checkpoint = torch.load(resolved, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or pickled objects beyond tensors
        raise AssetError(f"{asset.name}: cannot read {resolved}: {type(exc).__name__}: {exc}") from exc
    return resolved, digest, checkpoint
