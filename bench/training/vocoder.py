"""The vocoder recipe (`kind = "vocoder"`): the mel codec's neural decoder trained on the corpora's waveforms.

A recipe TOML with `kind = "vocoder"` names the data (the corpora's training voices, their training sentences; the
real clips are never used), the decoder's shape (`[model]`, `flashspeech.codecs.vocos.VocosConfig`) and the
training settings (`[train]`, `flashspeech.training.vocoder.VocoderTrainConfig`). Layout::

    <out>/vocoder/state.pt        resumable state (decoder, discriminators, both optimizers, step)
    <out>/vocoder/metrics.jsonl   training curves and the held-out validation rows (val_*), also in MLflow
    <out>/vocoder/checkpoint/     the exported decoder directory (`flashspeech.codecs.vocos.save_vocoder`)

A finished run (its checkpoint exists) is skipped; an interrupted one resumes. `export` copies the decoder with
float16 weights and its validation curves (`decoder = "<export dir>"`; to flashspeech/pretrained/<name> it is
`decoder = "pretrained:<name>"`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.config import ConfigError
from bench.training.sources import corpus_utterances
from flashspeech.codecs.vocos import VocosConfig
from flashspeech.foundation.fields import typed_fields
from flashspeech.foundation.files import write_text_atomic
from flashspeech.training.vocoder import VocoderTrainConfig

KIND = "vocoder"
STAGE = "vocoder"  # the run's one stage directory
AUDIO_FORMAT = 1


@dataclass(frozen=True)
class VocoderRecipe:
    name: str
    kind: str = KIND
    data: str = "synthetic+natural"  # corpora joined with "+": "synthetic" (espeak-ng), "natural"
    # "auto": the training voices' test sentences of the corpora trained on (never trained on), or "none"
    validation: str = "auto"
    validation_items: int = 16  # at most this many held-out utterances, spread evenly over their sorted ids
    model: VocosConfig = field(default_factory=VocosConfig)
    train: VocoderTrainConfig = field(default_factory=VocoderTrainConfig)
    export: str | None = None
    experiment: str = "flashspeech-bench-training"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VocoderRecipe:
        values = typed_fields(cls, data, what="a vocoder recipe", error=ConfigError, skip=("seed",))
        if "seed" in data:  # a recipe-level seed, as the other recipes have, is the training seed
            train = values.get("train", VocoderTrainConfig())
            values["train"] = VocoderTrainConfig(**{**asdict(train), "seed": data["seed"]})
        recipe = cls(**values)
        if recipe.kind != KIND:
            raise ConfigError(f"kind: expected {KIND!r}, got {recipe.kind!r}")
        for part in recipe.data.split("+"):
            if part not in ("synthetic", "natural"):
                raise ConfigError(
                    f"data: unknown source {part!r} in {recipe.data!r}; use 'synthetic', 'natural' or both"
                )
        if recipe.validation not in ("auto", "none"):
            raise ConfigError(f"validation: expected 'auto' or 'none', got {recipe.validation!r}")
        return recipe


def utterance_audio(utterances, sample_rate: int, cache_dir: str | Path | None) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    """The utterances' audio at `sample_rate` (float32), read once into one cache file keyed by the files'
    paths, sizes and modification times (a changed corpus is read again)."""
    from bench.testsets.corpus import default_cache_dir
    from flashspeech.foundation.audio import read_audio
    from flashspeech.foundation.files import atomic_path
    from flashspeech.foundation.hashing import fingerprint

    paths = [Path(u.audio) for u in utterances]
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    key = fingerprint({"format": AUDIO_FORMAT, "rate": sample_rate, "files": stats}, 16)
    path = Path(cache_dir or default_cache_dir()) / "vocoder-audio" / f"{key}.pt"
    if path.is_file():
        return [w.float() / 32767 for w in torch.load(path, weights_only=True)]
    from tqdm.auto import tqdm

    waves = [
        torch.from_numpy(read_audio(p, sample_rate).samples).float().clamp(-1, 1)
        for p in tqdm(paths, desc="read training audio")
    ]
    tmp, path = atomic_path(path)
    torch.save([(w * 32767).round().short() for w in waves], tmp)
    os.replace(tmp, path)
    return waves


def _utterances(recipe: VocoderRecipe, sentences: str, cache_dir: str | Path | None) -> list:
    return [u for part in recipe.data.split("+") for u in corpus_utterances(part, sentences, cache_dir)]


def run_vocoder_recipe(
    recipe: VocoderRecipe,
    out: str | Path,
    *,
    resume: bool = True,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    tracking: str | None = None,
    mlflow_curves: bool = True,
    progress: bool = True,
) -> Path:
    """Train (or resume) the recipe's decoder; returns its exported checkpoint directory."""
    from bench.training.curves import MlflowCurves, machine, validation_rows
    from flashspeech.codecs.mel import MelCodec
    from flashspeech.codecs.vocos import Vocos, save_vocoder
    from flashspeech.training.vocoder import VocoderTrainer, WaveformBank

    out = Path(out)
    stage_dir, export_dir = out / STAGE, out / STAGE / "checkpoint"
    if (export_dir / "config.json").is_file():
        print(f"vocoder: done ({export_dir})")
    else:
        codec = MelCodec().to(device)
        if (recipe.model.n_mels, recipe.model.hop_length) != (codec.n_mels, codec.hop_length):
            raise ConfigError(f"model: n_mels / hop_length must be the codec's {codec.n_mels} / {codec.hop_length}")
        utterances = _utterances(recipe, "train", cache_dir)
        waves = utterance_audio(utterances, codec.sample_rate, cache_dir)
        hours = sum(w.numel() for w in waves) / codec.sample_rate / 3600
        speakers = sorted({u.speaker for u in utterances})
        print(f"training audio: {len(waves)} utterances, {len(speakers)} speakers, {hours:.2f} h")
        held_out: list[torch.Tensor] = []
        if recipe.validation == "auto":
            test = sorted(_utterances(recipe, "test", cache_dir), key=lambda u: u.id)
            if len(test) > recipe.validation_items:
                stride = len(test) / recipe.validation_items
                test = [test[int(i * stride)] for i in range(recipe.validation_items)]
            held_out = utterance_audio(test, codec.sample_rate, cache_dir)
            print(f"validation: {len(held_out)} held-out utterances (the training voices' test sentences)")
        torch.manual_seed(recipe.train.seed)
        model = Vocos(recipe.model).to(device)
        params = {"recipe": recipe.name, "data": recipe.data, **asdict(recipe.model), **recipe.train.to_dict()}
        curves = (
            MlflowCurves(out, recipe.experiment, f"{recipe.name}/{STAGE}", params, tracking) if mlflow_curves else None
        )
        trainer = VocoderTrainer(model, codec, WaveformBank(waves), recipe.train, stage_dir, held_out, on_log=curves)
        if resume and (stage_dir / "state.pt").is_file():
            trainer.load_state()
            print(f"vocoder: resuming at step {trainer.step}")
        try:
            final = trainer.run(progress=progress)
        except BaseException:
            if curves:
                curves.close("KILLED")
            raise
        if curves:
            curves.close()
        history = {
            "recipe": recipe.name,
            "steps": recipe.train.steps,
            "config": recipe.train.to_dict(),
            "data": recipe.data,
            "utterances": len(waves),
            "speakers": speakers,
            "hours": round(hours, 3),
            "train_wall_s": round(trainer.elapsed_s, 1),
            "machine": machine(),
            "final_metrics": final,
            "validation": trainer.last_validation,
        }
        save_vocoder(model.eval().cpu(), codec.describe(), export_dir, training=history)
    if recipe.export:
        from flashspeech.codecs.vocos import export_vocoder

        dest = Path(recipe.export)
        if dest.exists():
            shutil.rmtree(dest)
        export_vocoder(export_dir, dest)
        rows = validation_rows(stage_dir)
        write_text_atomic(dest / "validation.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        print(f"exported {export_dir} -> {recipe.export} (float16 weights, validation curves)")
    return export_dir
