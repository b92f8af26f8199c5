"""Model configuration: dataclasses with the `paper` and `tiny` presets.

`paper` reproduces the published sizes (the paper and the official code's configs): about 378.4 M generator
parameters without the codec and the prosody refinement models. `tiny` is the same architecture scaled
down to train on two CPU cores.

Compatibility settings (fields with `COMPAT` metadata): four places where the official FlashSpeech code
(github.com/zhenye234/FlashSpeech at 55bab33) computes differently from our modules. Each defaults to our
behaviour; `flashspeech.official.official_target_config` selects the official one for a converted
checkpoint. They change no shapes, only what the modules compute:

* `EncoderConfig.positions` (phoneme and prompt encoders): "sinusoidal" (ours) adds sinusoidal positions over
  time, [sin, cos] halves; "constant" (official inference) adds one constant vector to every frame, row 0 of
  the official interleaved table (even channels sin, odd cos), i.e. [0, 1, 0, 1, ...]. The official
  `PositionalEncoding` is written for (time, batch, dim) input but receives (batch, time, dim), so its
  batched forward adds row b to every frame of item b (no positional information); its inference script
  runs batch size 1, where every frame gets row 0. "constant" reproduces that setting for every item of a
  batch, not the batch-index dependence.
* `PredictorConfig.attn_residual` (duration and pitch predictors): the residual of a conv block that starts
  with cross-attention to the prompt is the block's input "after-attention" (ours) or "before-attention"
  (official).
* `WaveNetConfig.film_query`: the FiLM cross-attention's query is LN of the layer "input" x (ours) or of the
  "noisy-input" x + noise projection that the dilated conv sees (official).
* `WaveNetConfig.noise_embed_exponent`: the noise-level sinusoid frequencies are 10000^(-i/half) ("i/half",
  ours) or 10000^(-i/(half - 1)) ("i/(half-1)", official), i = 0 .. half - 1, half = noise_embed_dim // 2.

A compatibility setting at its default is left out of `to_dict`, so configs written before these settings
existed read back unchanged and their JSON (checkpoint config.json, fingerprints of random-weight systems)
stays byte-identical; `from_dict` fills a missing one with its default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from types import MappingProxyType
from typing import Any, Literal, get_args

# Field metadata marking a compatibility setting (module docstring): a string field left out of `to_dict` at
# its default.
COMPAT = MappingProxyType({"compat": True})


def _check_choice(owner: object, name: str, choices: Any) -> None:
    value, allowed = getattr(owner, name), get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


Positions = Literal["sinusoidal", "constant"]
AttnResidual = Literal["after-attention", "before-attention"]
FilmQuery = Literal["input", "noisy-input"]
NoiseEmbedExponent = Literal["i/half", "i/(half-1)"]


@dataclass(frozen=True)
class EncoderConfig:
    """A pre-norm Transformer stack with a convolutional FFN (phoneme and prompt encoders)."""

    layers: int = 6
    hidden: int = 512
    heads: int = 8
    ffn_hidden: int = 2048
    ffn_kernel: int = 9
    dropout: float = 0.2
    style_adaptive: bool = False  # style-adaptive LayerNorm driven by the prompt (phoneme encoder only)
    # Compatibility (module docstring): "sinusoidal" positions over time (ours) or "constant", the official
    # code's batch-size-1 behaviour (row 0 of its interleaved table, [0, 1, 0, 1, ...], on every frame).
    positions: Positions = field(default="sinusoidal", metadata=COMPAT)

    def __post_init__(self) -> None:
        _check_choice(self, "positions", Positions)


@dataclass(frozen=True)
class PredictorConfig:
    """Duration or pitch predictor: conv blocks with cross-attention to the prompt every few blocks."""

    layers: int = 30
    hidden: int = 512
    kernel: int = 3
    heads: int = 8
    attn_every: int = 3  # cross-attention before blocks with index % attn_every == 0
    dropout: float = 0.5
    attn_dropout: float = 0.2
    # Compatibility (module docstring): a block with cross-attention adds, as its residual, its input
    # "after-attention" (ours) or "before-attention" (official).
    attn_residual: AttnResidual = field(default="after-attention", metadata=COMPAT)

    def __post_init__(self) -> None:
        _check_choice(self, "attn_residual", AttnResidual)


@dataclass(frozen=True)
class WaveNetConfig:
    """Non-causal WaveNet: the consistency model's network (also used, smaller, for prosody refinement)."""

    layers: int = 40
    hidden: int = 512
    kernel: int = 3
    dilation_cycle: int = 2
    heads: int = 8
    attn_every: int = 3  # FiLM from cross-attention to the query tokens on layers with index % attn_every == 0
    attn_dropout: float = 0.1
    noise_embed_dim: int = 512
    noise_mlp_hidden: int = 2048
    # Initialisation of the FiLM gain and bias projections: "default" (PyTorch's) or "zero" (each FiLM
    # starts as the identity, so the prompt cannot saturate the gated units before training has shaped it).
    film_init: str = "default"
    # Compatibility (module docstring): the FiLM query is LN("input") (ours) or LN("noisy-input"), the input
    # plus the noise projection (official); the noise sinusoid frequencies are 10000^(-i/half) ("i/half", ours)
    # or 10000^(-i/(half-1)) (official).
    film_query: FilmQuery = field(default="input", metadata=COMPAT)
    noise_embed_exponent: NoiseEmbedExponent = field(default="i/half", metadata=COMPAT)

    def __post_init__(self) -> None:
        if self.film_init not in ("default", "zero"):
            raise ValueError(f"film_init must be 'default' or 'zero', got {self.film_init!r}")
        _check_choice(self, "film_query", FilmQuery)
        _check_choice(self, "noise_embed_exponent", NoiseEmbedExponent)


PARAMETRISATIONS = ("edm", "anchored")


@dataclass(frozen=True)
class ConsistencyConfig:
    """EDM / consistency-model constants and the denoiser's preconditioning.

    `parametrisation` picks what c_skip / c_out / c_in are centred and scaled on:
    - "edm" (the paper): zero and the constant `sigma_data`, the right gain only when the noisy input is the
      sole information about the latent;
    - "anchored": a conditional Gaussian estimate of the latent, mean mu(c) and per-element std s(c) from a
      small head on the frame condition (`flashspeech.modules.anchor`), trained by its own likelihood loss.
      c_skip = s^2 / ((sigma - sigma_min)^2 + s^2) is then the Wiener gain of the part of the latent the
      conditioning does not explain, whatever its strength; the network F learns the rest.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    # The paper rescales the sinusoidal noise embedding by 1000 (consistency-model convention);
    # the official code feeds ln(sigma)/4 unscaled (scale 1).
    noise_embed_scale: float = 1000.0
    parametrisation: str = "edm"
    anchor_layers: int = 3  # "anchored": residual conv layers of the anchor head
    anchor_kernel: int = 5
    anchor_min_scale: float = 0.02  # floor of s(c), in normalised latent units

    def __post_init__(self) -> None:
        if self.parametrisation not in PARAMETRISATIONS:
            raise ValueError(
                f"parametrisation must be one of {', '.join(map(repr, PARAMETRISATIONS))}, got {self.parametrisation!r}"
            )


@dataclass(frozen=True)
class ProsodyConfig:
    """Pitch bins and the refinement consistency models' networks."""

    pitch_bins: int = 512
    f0_min: float = 50.0
    f0_max: float = 1100.0
    alpha: float = 0.2  # p = alpha * refinement residual + regression prediction
    refine: WaveNetConfig = field(
        default_factory=lambda: WaveNetConfig(
            layers=30, hidden=256, attn_every=0, noise_embed_dim=256, noise_mlp_hidden=1024
        )
    )
    # The refinement model is sampled in one step from sigma_max (paper §3.4.1).
    refine_sigma_max: float = 80.0


OBJECTIVES = ("consistency", "diffusion")


@dataclass(frozen=True)
class FlashSpeechConfig:
    """Everything that shapes the network. The latent size comes from the codec."""

    name: str = "paper"
    vocab_size: int = 133
    latent_dim: int = 256
    query_tokens: int = 32
    # Initial std of the phoneme embedding. The official code uses N(0, 1e-5): next to the sinusoidal
    # positions (amplitude ~0.7 per channel) the phoneme identity is then invisible until the optimiser has
    # grown the embedding, which takes most of a short run (after 3,000 tiny steps its std was 0.05).
    # `tiny` starts at 1.0 instead (docs/training.md has the ablation); init only, weights are unaffected.
    token_init_std: float = 1e-5
    phoneme_encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(style_adaptive=True))
    prompt_encoder: EncoderConfig = field(default_factory=EncoderConfig)
    duration_predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(kernel=3))
    pitch_predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(kernel=5))
    wavenet: WaveNetConfig = field(default_factory=WaveNetConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    prosody: ProsodyConfig = field(default_factory=ProsodyConfig)
    # How the latent network is trained and sampled: "consistency" (FlashSpeech) or "diffusion" (the
    # NaturalSpeech 2-style EDM baseline: same network, denoising objective, many-step ODE sampling).
    objective: str = "consistency"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(map(repr, OBJECTIVES))}, got {self.objective!r}")
        h = self.phoneme_encoder.hidden
        for name in ("prompt_encoder", "duration_predictor", "pitch_predictor", "wavenet"):
            if getattr(self, name).hidden != h:
                raise ValueError(f"{name}.hidden must equal phoneme_encoder.hidden ({h})")

    @property
    def hidden(self) -> int:
        return self.phoneme_encoder.hidden

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict; compatibility settings at their default are left out (module docstring)."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlashSpeechConfig:
        return _build(cls, data)

    def compat_settings(self) -> dict[str, str]:
        """The compatibility settings not at their default, by dotted name (e.g. "wavenet.film_query")."""
        return dict(_compat_items(self, ""))


def _is_compat(f: Any) -> bool:
    return bool(f.metadata.get("compat"))


def _is_default_compat(f: Any, value: Any) -> bool:
    return _is_compat(f) and value == f.default


def _plain(cfg: Any) -> dict[str, Any]:
    """`asdict(cfg)` without the compatibility settings at their default (the fields are scalars)."""
    out = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            out[f.name] = _plain(value)
        elif not _is_default_compat(f, value):
            out[f.name] = value
    return out


def _compat_items(cfg: Any, where: str) -> list[tuple[str, str]]:
    items = []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            items += _compat_items(value, f"{where}{f.name}.")
        elif _is_compat(f) and value != f.default:
            items.append((where + f.name, value))
    return items


def with_overrides(cfg: FlashSpeechConfig, overrides: dict[str, Any]) -> FlashSpeechConfig:
    """`cfg` with nested values replaced, e.g. {"consistency": {"parametrisation": "edm"}}; unknown keys are
    an error."""

    def merge(base: dict[str, Any], new: dict[str, Any], where: str) -> dict[str, Any]:
        out = dict(base)
        for key, value in new.items():
            if key not in base:
                raise ValueError(f"unknown config key {where}{key!r}")
            out[key] = merge(base[key], value, f"{where}{key}.") if isinstance(base[key], dict) else value
        return out

    return FlashSpeechConfig.from_dict(merge(asdict(cfg), overrides, ""))


def _build(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild nested frozen dataclasses from a dict; unknown keys are an error."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs = {}
    defaults = cls()
    for name, value in data.items():
        current = getattr(defaults, name)
        kwargs[name] = _build(type(current), value) if is_dataclass(current) else value
    return cls(**kwargs)


def paper() -> FlashSpeechConfig:
    """The published architecture (latent 256-d at 80 frames/s)."""
    return FlashSpeechConfig()


def tiny(latent_dim: int = 100, vocab_size: int = 133) -> FlashSpeechConfig:
    """The same architecture at a size that trains on 2 CPU cores (about 4 M parameters)."""
    h = 128
    return FlashSpeechConfig(
        name="tiny",
        vocab_size=vocab_size,
        latent_dim=latent_dim,
        query_tokens=8,
        token_init_std=1.0,
        phoneme_encoder=EncoderConfig(
            layers=3, hidden=h, heads=2, ffn_hidden=256, ffn_kernel=5, dropout=0.1, style_adaptive=True
        ),
        prompt_encoder=EncoderConfig(layers=2, hidden=h, heads=2, ffn_hidden=256, ffn_kernel=5, dropout=0.1),
        duration_predictor=PredictorConfig(layers=6, hidden=h, kernel=3, heads=2, dropout=0.2, attn_dropout=0.1),
        pitch_predictor=PredictorConfig(layers=6, hidden=h, kernel=5, heads=2, dropout=0.2, attn_dropout=0.1),
        wavenet=WaveNetConfig(layers=12, hidden=h, heads=2, noise_embed_dim=h, noise_mlp_hidden=256, film_init="zero"),
        consistency=ConsistencyConfig(parametrisation="anchored"),
        prosody=ProsodyConfig(
            refine=WaveNetConfig(layers=6, hidden=64, attn_every=0, noise_embed_dim=64, noise_mlp_hidden=128)
        ),
    )


def paper_diffusion() -> FlashSpeechConfig:
    """`paper` trained as an EDM latent diffusion model (the NaturalSpeech 2-style baseline)."""
    return replace(paper(), name="paper-diffusion", objective="diffusion")


def tiny_diffusion(latent_dim: int = 100, vocab_size: int = 133) -> FlashSpeechConfig:
    """`tiny` trained as an EDM latent diffusion model (the NaturalSpeech 2-style baseline)."""
    return replace(tiny(latent_dim, vocab_size), name="tiny-diffusion", objective="diffusion")


PRESETS = {"paper": paper, "tiny": tiny, "paper-diffusion": paper_diffusion, "tiny-diffusion": tiny_diffusion}


def preset(name: str, **kwargs: Any) -> FlashSpeechConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name](**kwargs)
