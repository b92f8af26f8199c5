"""Checkpoints trained with the official FlashSpeech code, mapped strictly onto our model.

The official code (github.com/zhenye234/FlashSpeech, commit 55bab33; Amphion's NaturalSpeech 2 with a
consistency-trained WaveNet) trains with PyTorch Lightning in two runs:

* s1, `flashspeech_trainer.py`: consistency training + prosody regression. The Lightning module holds the
  generator as `model`, so its `state_dict` keys are `model.<FlashSpeech key>`.
* s2, `flashspeech_trainer_stage2.py`: adversarial fine-tuning from s1. Same `model`, plus `wavlm` (the frozen
  WavLM-large feature extractor) and `discriminator` (the WavLMLosscond head: five weight-normed convs).

Neither keeps an EMA or teacher copy: the consistency teacher is the same network under stop-gradient. The
generator's codec is a submodule (`model.soundstream`, frozen, never trained here), so both trainers save it
too. A Lightning `.ckpt` also holds optimizer and loop states (ignored: only `state_dict` is read) and the
training config pickled as `utils.util.JsonHParams`; it is read with a weights-only load in which that class
alone is stubbed (any other pickled class is refused, with a recipe to extract the state dict). A plain
`.pt`/`.pth` state dict is accepted too, with the Lightning prefixes or with FlashSpeech's own keys.

Key map (official FlashSpeech key, after the `model.` prefix -> ours), every rule in `RULES`:

    prior_encoder.enc_emb_tokens                 token_embedding           rows re-indexed (vocabulary, below)
    prior_encoder.encoder.layers.i.ln_{1,2}.style  phoneme_encoder.layers.i.norm{1,2}.norm.style
    prior_encoder.encoder.layers.i.self_attn     phoneme_encoder.layers.i.attn
    prior_encoder.encoder.layers.i.ffn.ffn_{1,2} phoneme_encoder.layers.i.ffn.{conv,out}
    prior_encoder.encoder.last_ln.style          phoneme_encoder.final_norm.norm.style
    prompt_encoder.* (plain LayerNorms)          prompt_encoder.* (same layout, norm{1,2}.norm / final_norm.norm)
    prompt_lin / query_emb / query_attn          prompt_in / query_tokens / query_attention
    prior_encoder.{duration,pitch}_predictor:    {duration,pitch}_predictor:
      conv.i.0 / conv.i.2 (Conv1d / LayerNorm)     convs.i / norms.i
      cattn.j.0 / cattn.j.1 (MHA / LayerNorm)      attns.j.attn / attns.j.norm
      linear                                       proj
    prior_encoder.pitch_embedding                pitch_embedding
    diffusion.diff_estimator (the WaveNet):      lcm:
      in_proj, mlp.{0,2}, cond_ln, skip_proj, out_proj   in_proj, noise_embed.mlp.{0,2}, cond_norm, skip_proj, out_proj
      layers.i.dilated_conv / cond_proj            layers.i.dilated / cond_proj        halves swapped
      layers.i.diffusion_proj / out_proj           layers.i.noise_proj / out_proj
      layers.i.ln / attn                           layers.i.film.norm / film.attn
      layers.i.film.gain / film.bias               layers.i.film.gain / film.bias      halves swapped; gain bias - 1

Tensor transformations, all exact:
* Gate order: the official gated unit is sigmoid(first half) * tanh(second half), ours tanh(first) *
  sigmoid(second), so the output channels of everything feeding it (dilated conv, condition projection, FiLM gain
  and bias) swap halves.
* FiLM: the official FiLM is y * gain + bias, ours y * (1 + gain) + bias: our gain bias is theirs minus 1.
* Vocabulary: official phone ids index CMU ARPAbet with stress plus sp, spn, sil, <s>, </s>, <br>
  (`OFFICIAL_PHONES`, 90 symbols; id 0 "AA" doubles as the padding index; embedding rows 90-99 are never used).
  Our vocabularies start with our specials, so the converted checkpoint carries `official_vocab()` (our
  specials, then the official phones; <s> and </s> are shared) and the embedding rows are re-indexed to it.
  Our <pad>, <unk> and pause "_" rows have no official counterpart and are zeros (the official phone map never
  produces them); rows 90-99 are dropped.

Ignored, by name, with the reason stated in the report (`IGNORED_KEYS`, `IGNORED_PREFIXES`): the codec
(`model.soundstream.*`), the s2 discriminator (`discriminator.*`) and WavLM (`wavlm.*`), the positional tables
`position_emb.pe` (buffers, not weights), the pitch bin edges `pitch_bins` (a buffer we recompute; checked
equal) and `prior_encoder.encoder.enc_emb_tokens` (the embedding is shared with the encoder, so the state dict
holds it twice; checked identical). Anything else the rules do not map, any of our tensors left unfilled and
any shape mismatch is an error listing every such key (`keymap.mapping_problems`); the load is strict.

No counterpart, theirs -> ours: the codec, the discriminator and WavLM (above). Ours -> theirs: the prosody
refinement models (`duration_refiner`, `pitch_refiner`): the official code never released stage 3. Converting
requires `untrained_refinement=True` (CLI `--untrained-refinement`); they are then initialised as our model
initialises them (seed 0; their output projection is zero, so a refinement residual is c_skip(80) * 80 * noise,
about 0.003 * noise), the converted config sets alpha = 0, and the metadata says so. Keep alpha at 0.

Configuration: `official_target_config` is the `paper` preset with the official vocabulary, alpha 0,
`noise_embed_scale = 1` (the official code feeds ln(sigma)/4 to the sinusoidal embedding unscaled; the
paper's x1000 is not in the code) and the official compatibility settings (below). Every other size of
`paper` equals the released configs' (`exp_config_base_s1.json` / `_s2.json`; they differ only in `is_fixed`,
a training setting). Sizes that shapes cannot reveal (attention heads, dilation cycle, pitch range) are
checked against the checkpoint's pickled config where a `.ckpt` has one, and otherwise assumed to be the
released config's.

Codec: the official codec (x_codec_baseline SoundStream: DAC encoder, residual VQ, DAC decoder; 16 kHz, hop
200, 256-d latent, divided by `latent_norm = 3`) has no implementation here, and its config and packages were
never released. The converter writes no placeholder: the caller passes the codec (a codec directory or
description, see `flashspeech.codecs`) that reproduces that latent, and it must normalise exactly as the
official model was trained: 16 kHz, hop 200, latent mean 0 and scale 3.

Compatibility settings (`OFFICIAL_COMPAT`, documented in `flashspeech.config`): the official modules compute
differently from ours in four places, and the converted config selects the official behaviour in each (the
metadata records them under "compat"):

1. Positional encoding (phoneme and prompt encoders, `positions = "constant"`): the official
   `PositionalEncoding` is written for (time, batch, dim) input but receives (batch, time, dim), so it adds
   table row b, interleaved sin/cos, to every frame of batch item b: a per-item constant, no positional
   information. The official inference runs batch size 1, where every frame gets row 0, [0, 1, 0, 1, ...];
   the converted model adds that row to every frame of every item, so its batched output is the official
   batch-size-1 output (the batch-index dependence of the official batched forward is not reproduced).
2. Prosody predictors (`attn_residual = "before-attention"`): in a block with cross-attention the official
   residual is the block's input before the cross-attention.
3. WaveNet FiLM (`film_query = "noisy-input"`): the official cross-attention query is LN(x + noise
   projection), the input the dilated conv sees.
4. Noise-level embedding (`noise_embed_exponent = "i/(half-1)"`): the official sinusoid frequencies are
   10000^(-i/(d/2 - 1)).

With them, each part of a converted model computes what the official part computes at batch size 1 (checked
with the official modules at small size: differences at float32 rounding). The prosody refinement models keep
our defaults (they have no official counterpart).

Inference behaviours that are not weights (a converted model follows ours): the official pitch embedding at
inference bucketises exp(log(1 + f0)) = f0 + 1 Hz (training used f0); the official sampler defaults to 4
steps (paper: 2); outputs differ at padded positions only where the official code does not mask. The text
frontend: our espeak-ng frontend produces IPA, not ARPAbet, so synthesising from text with the official
vocabulary fails (FrontendError) until an ARPAbet frontend (the official inference uses the LibriSpeech
lexicon with a g2p fallback) exists.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flashspeech.checkpoint import save_checkpoint
from flashspeech.codecs import Codec, load_codec
from flashspeech.config import FlashSpeechConfig, paper, with_overrides
from flashspeech.foundation.hashing import sha256_file
from flashspeech.foundation.keymap import MappingReport, load_strict, mapping_problems
from flashspeech.model import FlashSpeechModel, pitch_bin_edges
from flashspeech.modules.wavenet import WaveNet
from flashspeech.text.phonemes import SPECIALS, PhonemeVocab

OFFICIAL_REPO = "github.com/zhenye234/FlashSpeech"
OFFICIAL_COMMIT = "55bab3320e48bf80f71b91de5d9a1305b5b64aef"
STAGES = ("s1", "s2")
LIGHTNING_PREFIX = "model."  # the Lightning module's attribute holding the generator (both trainers)

_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
_CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH", "T")
_CONSONANTS += ("TH", "V", "W", "Y", "Z", "ZH")
# The official phone ids (ns2_dataset.py's phone map): CMUdict's symbols in sorted order, then these six.
OFFICIAL_PHONES: tuple[str, ...] = (
    *sorted([*_CONSONANTS, *(v + s for v in _VOWELS for s in ("", "0", "1", "2"))]),
    *("sp", "spn", "sil", "<s>", "</s>", "<br>"),
)
OFFICIAL_VOCAB_ROWS = 100  # prior_encoder.vocab_size in the released configs
OFFICIAL_LATENT_NORM = 3.0  # FlashSpeech.latent_norm: the model sees codec latent / 3
OFFICIAL_SAMPLE_RATE, OFFICIAL_HOP = 16_000, 200

# The compatibility settings (`flashspeech.config`) under which our modules compute what the official code
# computes at its inference batch size 1 (module docstring); `official_target_config` sets them.
OFFICIAL_COMPAT: dict[str, dict[str, str]] = {
    "phoneme_encoder": {"positions": "constant"},
    "prompt_encoder": {"positions": "constant"},
    "duration_predictor": {"attn_residual": "before-attention"},
    "pitch_predictor": {"attn_residual": "before-attention"},
    "wavenet": {"film_query": "noisy-input", "noise_embed_exponent": "i/(half-1)"},
}
COMPAT_NOTE = (
    "our modules set to compute what the official modules compute at batch size 1 (the official inference's): "
    "encoder positions are the official table's row 0 on every frame of every item (its batched forward would "
    "add row b to item b); predictor residuals from before the cross-attention; FiLM query LN(x + noise "
    "projection); noise sinusoid frequencies 10000^(-i/(half-1))"
)


class OfficialCheckpointError(ValueError):
    """An official checkpoint that cannot be read or converted as it is; the message says which keys or why."""


# -- the key map -------------------------------------------------------------------------------------------
P = r"(weight|bias)"
ATTN = r"(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)"
_PHONE_ENC, _PROMPT_ENC = r"prior_encoder\.encoder\.", r"prompt_encoder\."
_PRED = r"prior_encoder\.(duration|pitch)_predictor\."
_WAVENET = r"diffusion\.diff_estimator\."
_WN_LAYER = _WAVENET + r"layers\.(\d+)\."

# Transformations applied to a mapped tensor (named in RULES).
GATE = "gate"  # swap the two output halves (the gated unit's order)
FILM_GAIN = "film_gain"  # swap halves; the bias minus 1 (y * gain vs y * (1 + gain))
TOKENS = "tokens"  # re-index embedding rows from the official phone ids to `official_vocab()`

# (official regex after the `model.` prefix, our key template with `{i}` = regex groups, transformation)
RULES: tuple[tuple[str, str, str | None], ...] = (
    (r"prior_encoder\.enc_emb_tokens\.weight", "token_embedding.weight", TOKENS),
    (_PHONE_ENC + r"layers\.(\d+)\.ln_([12])\.style\." + P, "phoneme_encoder.layers.{0}.norm{1}.norm.style.{2}", None),
    (_PHONE_ENC + r"layers\.(\d+)\.self_attn\." + ATTN, "phoneme_encoder.layers.{0}.attn.{1}", None),
    (_PHONE_ENC + r"layers\.(\d+)\.ffn\.ffn_1\." + P, "phoneme_encoder.layers.{0}.ffn.conv.{1}", None),
    (_PHONE_ENC + r"layers\.(\d+)\.ffn\.ffn_2\." + P, "phoneme_encoder.layers.{0}.ffn.out.{1}", None),
    (_PHONE_ENC + r"last_ln\.style\." + P, "phoneme_encoder.final_norm.norm.style.{0}", None),
    (_PROMPT_ENC + r"layers\.(\d+)\.ln_([12])\." + P, "prompt_encoder.layers.{0}.norm{1}.norm.{2}", None),
    (_PROMPT_ENC + r"layers\.(\d+)\.self_attn\." + ATTN, "prompt_encoder.layers.{0}.attn.{1}", None),
    (_PROMPT_ENC + r"layers\.(\d+)\.ffn\.ffn_1\." + P, "prompt_encoder.layers.{0}.ffn.conv.{1}", None),
    (_PROMPT_ENC + r"layers\.(\d+)\.ffn\.ffn_2\." + P, "prompt_encoder.layers.{0}.ffn.out.{1}", None),
    (_PROMPT_ENC + r"last_ln\." + P, "prompt_encoder.final_norm.norm.{0}", None),
    (r"prompt_lin\." + P, "prompt_in.{0}", None),
    (r"query_emb\.weight", "query_tokens.weight", None),
    (r"query_attn\." + ATTN, "query_attention.{0}", None),
    (_PRED + r"conv\.(\d+)\.0\." + P, "{0}_predictor.convs.{1}.{2}", None),
    (_PRED + r"conv\.(\d+)\.2\." + P, "{0}_predictor.norms.{1}.{2}", None),
    (_PRED + r"cattn\.(\d+)\.0\." + ATTN, "{0}_predictor.attns.{1}.attn.{2}", None),
    (_PRED + r"cattn\.(\d+)\.1\." + P, "{0}_predictor.attns.{1}.norm.{2}", None),
    (_PRED + r"linear\." + P, "{0}_predictor.proj.{1}", None),
    (r"prior_encoder\.pitch_embedding\.weight", "pitch_embedding.weight", None),
    (_WAVENET + r"in_proj\." + P, "lcm.in_proj.{0}", None),
    (_WAVENET + r"mlp\.([02])\." + P, "lcm.noise_embed.mlp.{0}.{1}", None),
    (_WAVENET + r"cond_ln\." + P, "lcm.cond_norm.{0}", None),
    (_WAVENET + r"skip_proj\." + P, "lcm.skip_proj.{0}", None),
    (_WAVENET + r"out_proj\." + P, "lcm.out_proj.{0}", None),
    (_WN_LAYER + r"dilated_conv\." + P, "lcm.layers.{0}.dilated.{1}", GATE),
    (_WN_LAYER + r"cond_proj\." + P, "lcm.layers.{0}.cond_proj.{1}", GATE),
    (_WN_LAYER + r"diffusion_proj\." + P, "lcm.layers.{0}.noise_proj.{1}", None),
    (_WN_LAYER + r"out_proj\." + P, "lcm.layers.{0}.out_proj.{1}", None),
    (_WN_LAYER + r"ln\." + P, "lcm.layers.{0}.film.norm.{1}", None),
    (_WN_LAYER + r"attn\." + ATTN, "lcm.layers.{0}.film.attn.{1}", None),
    (_WN_LAYER + r"film\.gain\." + P, "lcm.layers.{0}.film.gain.{1}", FILM_GAIN),
    (_WN_LAYER + r"film\.bias\." + P, "lcm.layers.{0}.film.bias.{1}", GATE),
)
_COMPILED = [(re.compile(src + "$"), dst, transform) for src, dst, transform in RULES]

TOKEN_KEY = "prior_encoder.enc_emb_tokens.weight"
TOKEN_ALIAS = "prior_encoder.encoder.enc_emb_tokens.weight"
PITCH_BINS = "prior_encoder.pitch_bins"
POSITIONS = (
    "fixed sinusoid table (a buffer, not a weight); its row 0, all the official inference adds, is computed by "
    'our encoders (positions = "constant")'
)
IGNORED_KEYS: dict[str, str] = {
    TOKEN_ALIAS: f"the same embedding as {TOKEN_KEY} (the encoder holds it too); checked identical",
    "prior_encoder.encoder.position_emb.pe": POSITIONS,
    "prompt_encoder.position_emb.pe": POSITIONS,
    PITCH_BINS: "pitch bin edges (a buffer); ours are recomputed from the config and checked equal",
}
CODEC_REASON = "the frozen codec (x_codec_baseline SoundStream); no codec type here implements it"
DISCRIMINATOR_REASON = "s2 adversarial discriminator head (training only; no counterpart in a generator)"
WAVLM_REASON = "s2 frozen WavLM-large feature extractor of the discriminator (training only)"
# Prefixes of the Lightning state dict (whole key) and of FlashSpeech's own keys (after `model.`).
IGNORED_PREFIXES: dict[str, str] = {"discriminator.": DISCRIMINATOR_REASON, "wavlm.": WAVLM_REASON}
IGNORED_MODEL_PREFIXES: dict[str, str] = {"soundstream.": CODEC_REASON}
UNUSED_ROWS_REASON = "embedding rows no official phone id uses (the phone map has 90 symbols)"

REFINERS = ("duration_refiner.", "pitch_refiner.")  # ours, no official counterpart
REFINEMENT_NOTE = (
    "untrained: the official code has no prosody refinement (stage 3 was never released); initialised as our "
    "model initialises it (seed 0, zero output projection); alpha is 0 and must stay 0"
)


def official_vocab() -> PhonemeVocab:
    """Our specials, then the official phones (<s> and </s> are the same symbols in both)."""
    return PhonemeVocab(
        name="flashspeech-official-arpabet",
        version=1,
        espeak_version="none (CMU ARPAbet ids of the official FlashSpeech code)",
        symbols=(*SPECIALS, *(p for p in OFFICIAL_PHONES if p not in SPECIALS)),
    )


def official_target_config(cfg: FlashSpeechConfig | None = None) -> FlashSpeechConfig:
    """`cfg` (default: the `paper` preset) with the official vocabulary, the official unscaled noise
    embedding, the official compatibility settings (`OFFICIAL_COMPAT`) and alpha 0 (no refinement weights
    exist); raises if its objective or preconditioning differs."""
    base = paper() if cfg is None else cfg
    c = base.consistency
    wrong = [
        f"{name} {value!r} (official {want!r})"
        for name, value, want in (
            ("objective", base.objective, "consistency"),
            ("consistency.parametrisation", c.parametrisation, "edm"),
            ("consistency.sigma_data", c.sigma_data, 0.5),
            ("consistency.sigma_min", c.sigma_min, 0.002),
            ("consistency.sigma_max", c.sigma_max, 80.0),
        )
        if value != want
    ]
    if wrong:
        raise OfficialCheckpointError(f"config {base.name!r} cannot hold an official model: {'; '.join(wrong)}")
    overrides = {
        "name": f"{base.name}-official",
        "vocab_size": len(official_vocab()),
        "consistency": {"noise_embed_scale": 1.0},
        "prosody": {"alpha": 0.0},
        **OFFICIAL_COMPAT,
    }
    return with_overrides(base, overrides)


def _swap_halves(t: Tensor) -> Tensor:
    half = t.shape[0] // 2
    return torch.cat([t[half:], t[:half]], dim=0)


def _token_rows(t: Tensor, vocab: PhonemeVocab) -> Tensor:
    """Official rows (one per official phone id) -> rows of `vocab`; rows of our symbols they lack are 0."""
    out = t.new_zeros((len(vocab), *t.shape[1:]))
    ours = torch.tensor([vocab.id(p) for p in OFFICIAL_PHONES])
    out[ours] = t[: len(OFFICIAL_PHONES)]
    return out


def _transform(kind: str | None, key: str, t: Tensor, vocab: PhonemeVocab) -> Tensor | str:
    """The tensor our key gets, or a problem description (a shape the transformation cannot take)."""
    if kind is None:
        return t
    if kind == TOKENS:
        if t.dim() != 2 or t.shape[0] != OFFICIAL_VOCAB_ROWS:
            return f"{key}: shape {tuple(t.shape)}, the official vocabulary needs ({OFFICIAL_VOCAB_ROWS}, hidden)"
        return _token_rows(t, vocab)
    if t.dim() == 0 or t.shape[0] % 2:
        return f"{key}: shape {tuple(t.shape)}, the gated unit needs an even number of output channels"
    t = _swap_halves(t)
    if kind == FILM_GAIN and key.endswith(".bias"):
        t = t - 1.0
    return t


def _check_identical(a: Tensor, b: Tensor) -> bool:
    if a.is_meta or b.is_meta:
        return a.shape == b.shape
    return a.shape == b.shape and torch.equal(a, b)


def _check_pitch_bins(bins: Tensor, cfg: FlashSpeechConfig) -> str | None:
    ours = pitch_bin_edges(cfg)
    if bins.shape != ours.shape:
        return f"{PITCH_BINS}: shape {tuple(bins.shape)}, ours {tuple(ours.shape)}"
    if not bins.is_meta and not torch.allclose(bins.float(), ours, rtol=1e-5, atol=0.0):
        p = cfg.prosody
        return f"{PITCH_BINS}: edges differ from ours ({p.f0_min}-{p.f0_max} Hz, {p.pitch_bins} bins)"
    return None


@dataclass(frozen=True)
class Layout:
    """How a state dict names the generator: under the Lightning `model.` prefix or bare FlashSpeech keys."""

    lightning: bool

    def generator_key(self, key: str) -> str | None:
        """The FlashSpeech-relative key, or None for a key outside the generator (s2's wavlm, discriminator)."""
        if not self.lightning:
            return key
        return key[len(LIGHTNING_PREFIX) :] if key.startswith(LIGHTNING_PREFIX) else None


def detect_layout(state: Mapping[str, Tensor]) -> Layout:
    return Layout(lightning=any(k.startswith(LIGHTNING_PREFIX) for k in state))


def detect_stage(state: Mapping[str, Tensor], layout: Layout) -> str | None:
    """s2 if the discriminator (or WavLM) is there; s1 for a Lightning state dict without them; None for a bare
    generator state dict (s1 and s2 generators have the same keys)."""
    if any(k.startswith(tuple(IGNORED_PREFIXES)) for k in state):
        return "s2"
    return "s1" if layout.lightning else None


def _prefix_reason(key: str, prefixes: Mapping[str, str]) -> str | None:
    return next((reason for prefix, reason in prefixes.items() if key.startswith(prefix)), None)


def map_official_state_dict(
    state: Mapping[str, Tensor], cfg: FlashSpeechConfig, target_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, Tensor], MappingReport]:
    """Rename and transform official keys to ours (`RULES`); raise `OfficialCheckpointError` listing every
    unmapped, unfilled, unexpected, mis-shaped or doubly mapped key. `target_shapes`: our keys to fill."""
    vocab = official_vocab()
    layout = detect_layout(state)
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    unmapped, duplicates, bad = [], [], []
    ignored: dict[str, str] = {}
    for key, value in state.items():
        rel = layout.generator_key(key)
        if rel is None:  # outside the generator: s2's discriminator and WavLM
            reason = _prefix_reason(key, IGNORED_PREFIXES)
        else:  # (a bare state dict may hold s2's training modules too, un-prefixed)
            reason = _prefix_reason(rel, IGNORED_MODEL_PREFIXES) or IGNORED_KEYS.get(rel)
            if reason is None and not layout.lightning:
                reason = _prefix_reason(key, IGNORED_PREFIXES)
        if reason is not None:
            ignored[key] = reason
            continue
        if rel is None:
            unmapped.append(key)
            continue
        for pattern, template, kind in _COMPILED:
            match = pattern.match(rel)
            if match:
                name = template.format(*match.groups())
                result = _transform(kind, key, value, vocab)
                if isinstance(result, str):
                    bad.append(result)
                    break
                if name in mapped:
                    duplicates.append(f"{key} and {origin[name]} -> {name}")
                mapped[name], origin[name] = result, key
                if kind == TOKENS and value.shape[0] > len(OFFICIAL_PHONES):
                    ignored[f"{key}[{len(OFFICIAL_PHONES)}:{value.shape[0]}]"] = UNUSED_ROWS_REASON
                break
        else:
            unmapped.append(key)
    prefix = LIGHTNING_PREFIX if layout.lightning else ""
    tokens, alias = state.get(prefix + TOKEN_KEY), state.get(prefix + TOKEN_ALIAS)
    if tokens is not None and alias is not None and not _check_identical(tokens, alias):
        bad.append(f"{prefix}{TOKEN_ALIAS}: not identical to {prefix}{TOKEN_KEY} (one shared embedding officially)")
    if prefix + PITCH_BINS in state:
        problem = _check_pitch_bins(state[prefix + PITCH_BINS], cfg)
        if problem:
            bad.append(prefix + problem)
    problems = mapping_problems(
        mapped, origin, target_shapes, unmapped, duplicates, extra=[("tensors that do not fit the official model", bad)]
    )
    if problems:
        raise OfficialCheckpointError(
            "official FlashSpeech checkpoint does not match the model exactly:\n" + "\n".join(problems)
        )
    return mapped, MappingReport(source_keys=len(state), mapped_targets=len(mapped), ignored=ignored)


# -- reading ------------------------------------------------------------------------------------------------
class _PickledConfig:
    """Stands in for the official `utils.util.JsonHParams` (the pickled training config) in a weights-only load:
    an attribute bag, never executed."""


HPARAMS_GLOBAL = "utils.util.JsonHParams"


@dataclass(frozen=True)
class OfficialCheckpoint:
    path: Path
    sha256: str
    state: dict[str, Tensor]
    stage: str | None  # s1, s2 or None (a bare generator state dict says neither)
    lightning: bool  # a Lightning checkpoint or Lightning-prefixed state dict
    hparams: Any = None  # the pickled training config of a Lightning .ckpt (attribute bag), if any


def _torch_load(path: Path) -> object:
    try:
        with torch.serialization.safe_globals([(_PickledConfig, HPARAMS_GLOBAL)]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"the pickled object {found.group(1)}" if found else "pickled objects beyond tensors"
        raise OfficialCheckpointError(
            f"{path}: holds {what}, which a weights-only load refuses (loading it would run code); extract its "
            'state dict where the official code is installed: python -c "import torch; torch.save(torch.load('
            f"'{path.name}', map_location='cpu', weights_only=False)['state_dict'], 'state_dict.pt')\" and "
            "convert state_dict.pt"
        ) from None
    except Exception as exc:  # corrupt or not a torch file
        raise OfficialCheckpointError(f"{path}: cannot read: {type(exc).__name__}: {exc}") from exc


def read_official(path: str | os.PathLike, stage: str | None = None) -> OfficialCheckpoint:
    """Read a Lightning `.ckpt` (its `state_dict`) or a plain state dict; check `stage` against its keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if stage is not None and stage not in STAGES:
        raise OfficialCheckpointError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    content = _torch_load(path)
    hparams = None
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        hyper = content.get("hyper_parameters")
        hparams = hyper.get("cfg") if isinstance(hyper, Mapping) else None
        state = content["state_dict"]
    elif isinstance(content, Mapping) and content and all(isinstance(v, Tensor) for v in content.values()):
        state = content
    else:
        top = sorted(map(str, content))[:10] if isinstance(content, Mapping) else type(content).__name__
        raise OfficialCheckpointError(f"{path}: neither a Lightning checkpoint nor a state dict ({top})")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise OfficialCheckpointError(f"{path}: state dict entries that are not named tensors: {bad[:10]}")
    state = dict(state)
    layout = detect_layout(state)
    detected = detect_stage(state, layout)
    if stage is not None and detected is not None and stage != detected:
        why = "has" if detected == "s2" else "has no"
        raise OfficialCheckpointError(f"{path}: --stage {stage}, but the file {why} s2 discriminator keys")
    return OfficialCheckpoint(path, sha256_file(path), state, stage or detected, layout.lightning, hparams)


# -- sizes the shapes cannot reveal ----------------------------------------------------------------------------
def _official_setting(hparams: Any, dotted: str) -> Any:
    value = hparams
    for part in dotted.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _unseen_settings(cfg: FlashSpeechConfig) -> list[tuple[str, Any]]:
    """(official config key under `model`, our value) for every setting that shapes do not reveal."""
    return [
        ("prior_encoder.encoder.encoder_head", cfg.phoneme_encoder.heads),
        ("prompt_encoder.encoder_head", cfg.prompt_encoder.heads),
        ("prior_encoder.duration_predictor.attn_head", cfg.duration_predictor.heads),
        ("prior_encoder.pitch_predictor.attn_head", cfg.pitch_predictor.heads),
        ("prior_encoder.duration_predictor.cross_attn_per_layer", cfg.duration_predictor.attn_every),
        ("prior_encoder.pitch_predictor.cross_attn_per_layer", cfg.pitch_predictor.attn_every),
        ("diffusion.wavenet.attn_head", cfg.wavenet.heads),
        ("diffusion.wavenet.dilation_cycle", cfg.wavenet.dilation_cycle),
        ("diffusion.wavenet.cross_attn_per_layer", cfg.wavenet.attn_every),
        ("query_emb.head_num", cfg.wavenet.heads),  # our query attention uses the WaveNet's head count
        ("prior_encoder.pitch_min", cfg.prosody.f0_min),
        ("prior_encoder.pitch_max", cfg.prosody.f0_max),
    ]


def setting_conflicts(cfg: FlashSpeechConfig, hparams: Any) -> list[str]:
    """Settings of the checkpoint's pickled config (`hparams.model`) that differ from `cfg`."""
    model = getattr(hparams, "model", None)
    if model is None:
        return []
    conflicts = []
    for dotted, ours in _unseen_settings(cfg):
        theirs = _official_setting(model, dotted)
        if isinstance(theirs, (int, float)) and not math.isclose(float(theirs), float(ours)):
            conflicts.append(f"model.{dotted} = {theirs} (ours {ours})")
    return conflicts


# -- converting ---------------------------------------------------------------------------------------------
def _refiner_state(cfg: FlashSpeechConfig) -> dict[str, Tensor]:
    """Our refinement models as `FlashSpeechModel` builds them, seeded (no official counterpart)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        nets = {
            name: WaveNet(cfg.prosody.refine, 1, cond_dim=cfg.hidden, noise_scale=cfg.consistency.noise_embed_scale)
            for name in REFINERS
        }
    return {prefix + k: v for prefix, net in nets.items() for k, v in net.state_dict().items()}


def _check_codec(codec: Codec, cfg: FlashSpeechConfig) -> None:
    wrong = [
        f"{name} {value} (official {want})"
        for name, value, want in (
            ("sample_rate", codec.sample_rate, OFFICIAL_SAMPLE_RATE),
            ("hop_length", codec.hop_length, OFFICIAL_HOP),
            ("latent_dim", codec.latent_dim, cfg.latent_dim),
            ("latent_mean", codec.latent_mean, 0.0),
            ("latent_scale", codec.latent_scale, OFFICIAL_LATENT_NORM),
        )
        if value != want
    ]
    if wrong:
        raise OfficialCheckpointError(
            f"codec {codec.describe().get('type')!r} does not give the official model's latent: {'; '.join(wrong)}"
        )


def _reasons(report: MappingReport) -> dict[str, int]:
    return dict(Counter(report.ignored.values()))


def convert_official(
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    stage: str | None = None,
    codec: Codec | Mapping[str, Any] | str | os.PathLike | None = None,
    untrained_refinement: bool = False,
    cfg: FlashSpeechConfig | None = None,
) -> Path:
    """Convert an official s1/s2 checkpoint into our checkpoint directory `out_dir` (`save_checkpoint`), strictly.

    Order: read the file, map every key (errors name the keys), then require `untrained_refinement` and a
    `codec` that gives the official latent, then write. `cfg`: the architecture (default `paper`), adapted by
    `official_target_config` (official compatibility settings included). Metadata: the source's sha256, stage,
    the mapping counts and ignored reasons, the compatibility settings."""
    checkpoint = read_official(src, stage)
    target = official_target_config(cfg)
    conflicts = setting_conflicts(target, checkpoint.hparams)
    if conflicts:
        raise OfficialCheckpointError(f"{checkpoint.path}: trained with other settings: {'; '.join(conflicts)}")
    with torch.device("meta"):
        model = FlashSpeechModel(target)
    shapes = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(REFINERS)}
    mapped, report = map_official_state_dict(checkpoint.state, target, shapes)
    if not untrained_refinement:
        raise OfficialCheckpointError(
            "official checkpoints hold no prosody refinement (stage 3 was never released): pass "
            "untrained_refinement=True (--untrained-refinement) to keep ours as initialised, with alpha 0"
        )
    if codec is None:
        raise OfficialCheckpointError(
            "the official codec has no implementation here: pass the codec directory (--codec) that gives its "
            f"latent ({OFFICIAL_SAMPLE_RATE} Hz, hop {OFFICIAL_HOP}, {target.latent_dim}-d, latent_scale "
            f"{OFFICIAL_LATENT_NORM:g})"
        )
    codec = codec if isinstance(codec, Codec) else load_codec(dict(codec) if isinstance(codec, Mapping) else codec)
    _check_codec(codec, target)
    model.pitch_edges = pitch_bin_edges(target)  # a recomputed, non-persistent buffer
    load_strict(model, {**mapped, **_refiner_state(target)}, OfficialCheckpointError)
    metadata = {
        "converted_from": {
            "code": OFFICIAL_REPO,
            "commit": OFFICIAL_COMMIT,
            "file": checkpoint.path.name,
            "sha256": checkpoint.sha256,
            "stage": checkpoint.stage,
            "lightning": checkpoint.lightning,
            "settings": "checked against the checkpoint's config"
            if checkpoint.hparams is not None
            else "assumed the released config (the file records none)",
        },
        "mapping": {
            "source_keys": report.source_keys,
            "mapped_targets": report.mapped_targets,
            "ignored": _reasons(report),
        },
        "compat": {"settings": target.compat_settings(), "note": COMPAT_NOTE},
        "refinement": REFINEMENT_NOTE,
        "vocabulary": "official CMU ARPAbet phone ids, re-indexed; <pad>, <unk> and _ rows are zeros",
    }
    return save_checkpoint(model, codec, official_vocab(), out_dir, **metadata)
