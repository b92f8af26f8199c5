"""Convert a CTranslate2 Whisper `model.bin` into an openai-whisper checkpoint (`whisper.load_model(path)`).

CTranslate2 binary format (version 6), little-endian:
  u32 version, str spec name ("WhisperSpec"), u32 spec revision, u32 variable count, then per variable:
  str name, u8 ndim, ndim x u32 shape, u8 dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), u32 nbytes, data;
  then u32 alias count and per alias: str alias, str target. A str is u16 length (NUL included) + bytes.
Whisper layout: self-attention fuses q|k|v into `linear_0` (zero key bias) with `linear_1` the output;
cross-attention has q in `linear_0`, fused k|v in `linear_1` (zero key bias), output in `linear_2`;
the output projection is an alias of the token embedding; positional encodings are stored explicitly.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

CONVERTER = "flashspeech.foundation.ct2_convert/1"
_DTYPES: dict[int, Any] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
_LAYER = re.compile(r"^(encoder|decoder)/layer_(\d+)/")
_GELU = 3  # CTranslate2 ActivationType.GELU


class Ct2FormatError(ValueError):
    """The file is not a CTranslate2 Whisper model this converter understands."""


@dataclass
class Ct2Model:
    """The variables of a CTranslate2 model file (aliases resolved by `get`)."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        name = self.aliases.get(name, name)
        if name not in self.variables:
            raise Ct2FormatError(f"CTranslate2 model has no variable {name!r}")
        return self.variables[name]

    def scalar(self, name: str, default: int | None = None) -> int | None:
        if name not in self.variables and name not in self.aliases:
            return default
        return int(np.asarray(self.get(name)).reshape(-1)[0])


class _Reader:
    def __init__(self, data: bytes, source: str):
        self.data, self.off, self.source = memoryview(data), 0, source

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize("<" + fmt)
        if self.off + size > len(self.data):
            raise Ct2FormatError(f"{self.source}: truncated at byte {self.off}")
        out = struct.unpack_from("<" + fmt, self.data, self.off)
        self.off += size
        return out

    def take(self, n: int) -> memoryview:
        if self.off + n > len(self.data):
            raise Ct2FormatError(f"{self.source}: truncated at byte {self.off} (wanted {n} bytes)")
        out = self.data[self.off : self.off + n]
        self.off += n
        return out

    def string(self) -> str:
        (n,) = self.unpack("H")
        return bytes(self.take(n)).rstrip(b"\0").decode("utf-8")


def _array(buf: memoryview, dtype_id: int, shape: tuple[int, ...], name: str) -> np.ndarray:
    if dtype_id not in _DTYPES:
        raise Ct2FormatError(f"variable {name!r}: unknown dtype id {dtype_id}")
    if _DTYPES[dtype_id] == "bfloat16":
        arr = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        arr = np.frombuffer(buf, _DTYPES[dtype_id])
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise Ct2FormatError(f"variable {name!r}: {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def read_ct2(path: str | os.PathLike) -> Ct2Model:
    """Parse a CTranslate2 `model.bin` (binary version 6 or later with the same layout)."""
    reader = _Reader(Path(path).read_bytes(), str(path))
    (version,) = reader.unpack("I")
    if version < 5:
        raise Ct2FormatError(f"{path}: CTranslate2 binary version {version} is not supported (need >= 5)")
    spec = reader.string()
    (revision,) = reader.unpack("I")
    (count,) = reader.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = reader.string()
        (ndim,) = reader.unpack("B")
        shape = reader.unpack(f"{ndim}I") if ndim else ()
        dtype_id, nbytes = reader.unpack("BI")
        variables[name] = _array(reader.take(nbytes), dtype_id, tuple(shape), name)
    aliases: dict[str, str] = {}
    if reader.off < len(reader.data):
        (n_alias,) = reader.unpack("I")
        for _ in range(n_alias):
            alias = reader.string()
            aliases[alias] = reader.string()
    return Ct2Model(spec, revision, variables, aliases)


def _layers(model: Ct2Model, side: str) -> int:
    found = {int(m.group(2)) for k in model.variables if (m := _LAYER.match(k)) and m.group(1) == side}
    if found != set(range(len(found))):
        raise Ct2FormatError(f"{side} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def _check_spec(model: Ct2Model) -> None:
    if model.spec != "WhisperSpec":
        raise Ct2FormatError(f"expected a WhisperSpec model, got {model.spec!r}")
    quantised = [k for k, v in model.variables.items() if k.endswith("weight") and v.dtype == np.int8]
    if quantised or any(k.endswith("weight_scale") for k in model.variables):
        raise Ct2FormatError("int8-quantised CTranslate2 models are not supported (convert a float16/float32 one)")
    flags = {"decoder/scale_embeddings": 0, "decoder/alibi": 0, "decoder/activation": _GELU, "decoder/pre_norm": 1}
    for name, want in flags.items():
        got = model.scalar(name)
        if got is not None and got != want:
            raise Ct2FormatError(f"{name} = {got}, expected {want} for an OpenAI Whisper architecture")


def whisper_state_dict(model: Ct2Model) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """(openai-whisper `ModelDimensions` fields, state dict) in the source float dtype (bf16 -> f32)."""
    _check_spec(model)
    sd: dict[str, torch.Tensor] = {}

    def t(name: str) -> torch.Tensor:
        arr = model.get(name)
        return torch.from_numpy(np.array(arr, dtype=arr.dtype if arr.dtype == np.float16 else np.float32))

    def zero_bias(bias: torch.Tensor, what: str) -> None:
        if bias.abs().max().item() != 0.0:
            raise Ct2FormatError(f"{what}: non-zero key bias cannot be expressed in openai-whisper")

    state = t("encoder/conv1/weight").shape[0]

    def linear(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = t(f"{src}/weight"), t(f"{src}/bias")

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = t(f"{src}/gamma"), t(f"{src}/beta")

    def attention(dst: str, src: str, cross: bool) -> None:
        if cross:
            linear(f"{dst}.query", f"{src}/linear_0")
            w, b, out = t(f"{src}/linear_1/weight"), t(f"{src}/linear_1/bias"), f"{src}/linear_2"
            parts = {"key": slice(0, state), "value": slice(state, 2 * state)}
        else:
            w, b, out = t(f"{src}/linear_0/weight"), t(f"{src}/linear_0/bias"), f"{src}/linear_1"
            parts = {"query": slice(0, state), "key": slice(state, 2 * state), "value": slice(2 * state, 3 * state)}
        if w.shape[0] != len(parts) * state:
            raise Ct2FormatError(f"{src}: fused projection has {w.shape[0]} rows, expected {len(parts) * state}")
        for part, rows in parts.items():
            sd[f"{dst}.{part}.weight"] = w[rows].clone()
            if part == "key":
                zero_bias(b[rows], src)
            else:
                sd[f"{dst}.{part}.bias"] = b[rows].clone()
        linear(f"{dst}.out", out)
        norm(f"{dst}_ln", f"{src}/layer_norm")

    def mlp(dst: str, src: str) -> None:
        linear(f"{dst}.0", f"{src}/linear_0")
        linear(f"{dst}.2", f"{src}/linear_1")
        norm(f"{dst}_ln", f"{src}/layer_norm")

    n_enc, n_dec = _layers(model, "encoder"), _layers(model, "decoder")
    for conv in ("conv1", "conv2"):
        linear(f"encoder.{conv}", f"encoder/{conv}")
    sd["encoder.positional_embedding"] = t("encoder/position_encodings/encodings")
    for i in range(n_enc):
        attention(f"encoder.blocks.{i}.attn", f"encoder/layer_{i}/self_attention", cross=False)
        mlp(f"encoder.blocks.{i}.mlp", f"encoder/layer_{i}/ffn")
    norm("encoder.ln_post", "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = t("decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = t("decoder/position_encodings/encodings")
    for i in range(n_dec):
        attention(f"decoder.blocks.{i}.attn", f"decoder/layer_{i}/self_attention", cross=False)
        attention(f"decoder.blocks.{i}.cross_attn", f"decoder/layer_{i}/attention", cross=True)
        mlp(f"decoder.blocks.{i}.mlp", f"decoder/layer_{i}/ffn")
    norm("decoder.ln", "decoder/layer_norm")
    projection = "decoder/projection/weight"
    has_projection = projection in model.variables or projection in model.aliases
    if has_projection and not np.array_equal(model.get(projection), model.get("decoder/embeddings/weight")):
        raise Ct2FormatError("decoder output projection differs from the token embedding (Whisper ties them)")
    dims = {
        "n_mels": int(sd["encoder.conv1.weight"].shape[1]),
        "n_audio_ctx": int(sd["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(state),
        "n_audio_head": int(model.scalar("encoder/num_heads") or 0),
        "n_audio_layer": n_enc,
        "n_vocab": int(sd["decoder.token_embedding.weight"].shape[0]),
        "n_text_ctx": int(sd["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(sd["decoder.token_embedding.weight"].shape[1]),
        "n_text_head": int(model.scalar("decoder/num_heads") or 0),
        "n_text_layer": n_dec,
    }
    if not dims["n_audio_head"] or not dims["n_text_head"]:
        raise Ct2FormatError("encoder/num_heads or decoder/num_heads is missing")
    return dims, sd


def alignment_heads_dump(heads: list[list[int]] | list[tuple[int, int]], n_layer: int, n_head: int) -> bytes:
    """(layer, head) pairs in the base85+gzip form `Whisper.set_alignment_heads` takes."""
    mask = np.zeros((n_layer, n_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes(), mtime=0))


def convert_ct2_whisper(
    model_bin: str | os.PathLike, out: str | os.PathLike, *, source_sha256: str | None = None
) -> Path:
    """Write the openai-whisper checkpoint for `model_bin` atomically; records the source sha256 and the
    alignment heads of a `config.json` next to it."""
    from flashspeech.foundation.files import atomic_path

    dims, state = whisper_state_dict(read_ct2(model_bin))
    config = Path(model_bin).with_name("config.json")
    heads = json.loads(config.read_text(encoding="utf-8")).get("alignment_heads") if config.is_file() else None
    checkpoint = {
        "dims": dims,
        "model_state_dict": state,
        "source_sha256": source_sha256,
        "alignment_heads": [[int(a), int(b)] for a, b in heads] if heads else None,
        "converter": CONVERTER,
    }
    tmp, final = atomic_path(out)
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def checkpoint_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The converter's metadata of a converted checkpoint (None: unreadable or not ours)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    if not isinstance(ckpt, dict) or ckpt.get("converter") != CONVERTER:
        return None
    return {k: ckpt.get(k) for k in ("source_sha256", "alignment_heads", "converter", "dims")}
