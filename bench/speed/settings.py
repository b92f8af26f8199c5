"""`SpeedConfig`: what a speed run times, loaded from TOML (`bench/configs/speed/<name>.toml` or a file).

Every key is optional (the defaults are a small CPU run); unknown keys and wrong types are errors that
name the key. `--set key=value` overrides use the benchmark config's syntax (TOML values, dotted keys:
`--set suites.items=4`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.config import ConfigError, load_toml
from flashspeech.foundation.fields import typed_fields

DTYPES = ("float32", "bfloat16", "float16")
PRECISIONS = ("autocast", "cast")
WHISPER_SIZES = ("off", "tiny", "base", "small", "medium", "large-v3", "large-v3-turbo")
WAVLM_SIZES = ("off", "tiny", "large")
# About 10 s of read speech (27 words), so the text frontend and encoders see a paper-sized input.
DEFAULT_TEXT = (
    "The old lighthouse keeper climbed the spiral stairs every evening, lit the great lamp, "
    "and watched the fishing boats find their way home through the narrow channel."
)


SPEED_CODECS = ("conv", "mel")  # the codecs a speed run builds without files (`flashspeech.codecs` types)


@dataclass(frozen=True)
class SuiteSpeedConfig:
    """Scoring throughput: batched Whisper decoding and WavLM-TDNN embedding, random weights."""

    whisper: str = "tiny"  # ModelDimensions by name (see WHISPER_SIZES), "off" to skip
    whisper_batch: int = 16
    tokens_per_second: float = 3.0  # decoded tokens per second of speech (EOT suppressed; see suites.py)
    wavlm: str = "tiny"  # "large" (WavLM-Large + ECAPA head, the papers' model), "tiny", "off"
    wavlm_batch: int = 16
    embeddings_per_item: int = 2  # SIM-o: generated clip + prompt (3 with SIM-r's reconstructed prompt)
    items: int = 8  # synthetic clips measured (each suite)
    min_seconds: float = 4.0  # clip lengths: uniform in [min, max] (LibriSpeech test-clean 4-10 s)
    max_seconds: float = 10.0
    warmup_items: int = 2  # one untimed batch of this many clips first
    extrapolate_items: int = 1200  # report the wall time to score this many items

    def validate(self) -> None:
        _choice("suites.whisper", self.whisper, WHISPER_SIZES)
        _choice("suites.wavlm", self.wavlm, WAVLM_SIZES)
        for name in ("whisper_batch", "wavlm_batch", "embeddings_per_item", "items", "extrapolate_items"):
            _positive(f"suites.{name}", getattr(self, name))
        if self.warmup_items < 0:
            raise ConfigError(f"suites.warmup_items must be >= 0, got {self.warmup_items}")
        if not 0 < self.min_seconds <= self.max_seconds <= 30:
            raise ConfigError(
                f"suites: need 0 < min_seconds <= max_seconds <= 30, got {self.min_seconds}, {self.max_seconds}"
            )
        if self.tokens_per_second <= 0:
            raise ConfigError(f"suites.tokens_per_second must be > 0, got {self.tokens_per_second}")


@dataclass(frozen=True)
class SpeedConfig:
    """One speed run: FlashSpeech at `steps`, the diffusion baseline at `diffusion_steps`, the suites."""

    name: str = "speed"
    preset: str = "tiny"  # a consistency preset (flashspeech.config.PRESETS)
    diffusion_preset: str = "tiny-diffusion"  # its diffusion twin (same backbone); "" to skip the baseline
    codec: str = "mel"  # "conv": random DAC-style codec of the paper's size; "mel": Griffin-Lim MelCodec
    device: str = "cpu"
    dtype: str = "float32"  # compute dtype on CUDA; CPU stays float32 unless asked
    precision: str = "autocast"  # low-precision mode: "autocast" (fp32 weights) or "cast" (weights cast)
    steps: tuple[int, ...] = (1, 2, 4)
    diffusion_steps: tuple[int, ...] = (8, 32, 150)
    sampler: str = "heun"
    reference_steps: int = 2  # speed-ups are diffusion time / FlashSpeech time at this step count
    target_seconds: float = 10.0  # audio per item, forced via total_frames for every system
    batch_sizes: tuple[int, ...] = (1,)
    warmup: int = 1
    repeats: int = 3
    diffusion_repeats: int = 0  # 0: same as repeats
    compile: bool = False  # torch.compile the latent network (model.lcm)
    compile_mode: str = "reduce-overhead"  # CUDA graphs on CUDA; "default" elsewhere is sensible
    text: str = DEFAULT_TEXT
    prompt_seconds: float = 3.0
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 leaves torch's default (OMP_NUM_THREADS)
    output_dir: str = "results/speed"
    suites: SuiteSpeedConfig = field(default_factory=SuiteSpeedConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "diffusion_steps", "batch_sizes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def timed_diffusion_repeats(self) -> int:
        return self.diffusion_repeats or self.repeats

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        from flashspeech.config import PRESETS, preset
        from flashspeech.sampling import ODE_SAMPLERS

        _choice("codec", self.codec, SPEED_CODECS)
        _choice("dtype", self.dtype, DTYPES)
        _choice("precision", self.precision, PRECISIONS)
        if not (self.device == "cpu" or self.cuda):
            raise ConfigError(f"device must be cpu or cuda[:N], got {self.device!r}")
        if not self.steps or not self.batch_sizes:
            raise ConfigError("steps and batch_sizes must not be empty")
        for name in ("steps", "diffusion_steps", "batch_sizes"):
            for value in getattr(self, name):
                _positive(name, value)
        _positive("repeats", self.repeats)
        for name in ("warmup", "diffusion_repeats", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        _choice("preset", self.preset, tuple(PRESETS))
        if preset(self.preset).objective != "consistency":
            raise ConfigError(f"preset {self.preset!r} is a diffusion model; put it in diffusion_preset")
        if self.diffusion_preset:
            _choice("diffusion_preset", self.diffusion_preset, tuple(PRESETS))
            if preset(self.diffusion_preset).objective != "diffusion":
                raise ConfigError(f"diffusion_preset {self.diffusion_preset!r} is not a diffusion model")
            _choice("sampler", self.sampler, ODE_SAMPLERS)
            if not self.diffusion_steps:
                raise ConfigError('diffusion_steps is empty (set diffusion_preset = "" to skip the baseline)')
            if self.reference_steps not in self.steps:
                raise ConfigError(f"reference_steps {self.reference_steps} is not in steps {list(self.steps)}")
        if not self.target_seconds > 0 or not self.prompt_seconds > 0:
            raise ConfigError(
                f"target_seconds and prompt_seconds must be > 0, got {self.target_seconds}, {self.prompt_seconds}"
            )
        if not self.text.strip():
            raise ConfigError("text is empty")
        self.suites.validate()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeedConfig:
        """The config of a TOML table: known keys, typed values (`typed_fields`), then `validate`."""
        config = cls(**typed_fields(cls, data, what="a speed config", error=ConfigError))
        config.validate()
        return config


def _choice(key: str, value: str, known: tuple[str, ...]) -> None:
    if value not in known:
        raise ConfigError(f"{key} = {value!r}: expected one of {', '.join(map(repr, known))}")


def _positive(key: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{key} must be >= 1, got {value}")


def load_speed_config(source: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SpeedConfig:
    """A TOML file, or a shipped config by name (`gpu-rtf`, `cpu-rtf`), with `--set` overrides applied."""
    data, name = load_toml(source, overrides, what="speed config", group="speed")
    data.setdefault("name", name)
    return SpeedConfig.from_dict(data)
