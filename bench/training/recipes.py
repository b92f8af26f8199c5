"""`flashspeech-bench train`: a declarative training recipe (TOML) run stage by stage.

A recipe names the model preset, the data source and an ordered list of stages; each stage starts from
the previous stage's exported checkpoint (loaded strictly), trains with its own `TrainConfig`, saves
resumable state every `checkpoint_every` steps and exports a checkpoint directory when done. Layout::

    <out>/<stage>/state.pt         resumable training state (weights, optimizer, step)
    <out>/<stage>/metrics.jsonl    training curves, and validation curves (val_*) (also logged to MLflow)
    <out>/<stage>/checkpoint/      the stage's exported checkpoint (FlashSpeech.save_pretrained)

A finished stage (its checkpoint exists) is skipped; an interrupted one resumes from its state.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.config import ConfigError, load_toml
from bench.training.curves import MlflowCurves, machine, validation_rows
from bench.training.sources import CORPUS_SOURCES, corpus_utterances
from flashspeech.foundation.fields import typed_fields
from flashspeech.training.trainer import TrainConfig, Trainer
from flashspeech.training.validation import validation_batches


@dataclass(frozen=True)
class StageSpec:
    name: str  # unique within the recipe (also the run subdirectory)
    train: TrainConfig
    init: str | None = None  # a previous stage's name, or a checkpoint directory
    # Start from a checkpoint trained with the other objective (e.g. consistency tuning from the diffusion
    # baseline): the weights are loaded strictly into the stage's objective. Off by default: a mismatch is
    # then an error.
    convert_objective: bool = False


@dataclass(frozen=True)
class Recipe:
    name: str
    preset: str = "tiny"
    # Overrides of the preset's model config for stages trained from scratch, nested as in
    # FlashSpeechConfig, e.g. `[model.consistency] parametrisation = "edm"`.
    model: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    # "synthetic" (the espeak-ng corpus's training voices), "natural" (the natural-voice corpus's), both
    # joined with "+" ("synthetic+natural"), "libritts:<dir>" or "mls:<MLS English split dir>" (bench.training.mls)
    data: str = "synthetic"
    stages: tuple[StageSpec, ...] = ()
    export: str | None = None  # copy the last stage's checkpoint here, weights in float16
    # Held-out validation data for stages with `validate_every`: "auto" (for the corpora: the training
    # voices' test sentences, never trained on; other sources: none), "none", or a data source string.
    validation: str = "auto"
    validation_items: int = 64  # at most this many, spread evenly over the source's sorted ids
    validation_batch_frames: int = 4000  # one batching for every stage, so their curves are comparable
    # Read training features from disk as batches need them (corpus scale: MLS), from the shards' indexes
    # (`flashspeech-bench data featurize --shard k/N` builds them beforehand, in parallel)
    stream: bool = False
    experiment: str = "flashspeech-bench-training"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """The recipe of a TOML table: known keys, typed values (`typed_fields`), each stage's TrainConfig."""
        values = typed_fields(cls, data, skip=("stages",), what="a training recipe", error=ConfigError)
        stages = []
        for i, raw in enumerate(data.get("stages", [])):
            raw = dict(raw)
            name = raw.pop("name", None) or raw.get("stage")
            init = raw.pop("init", None)
            convert = bool(raw.pop("convert_objective", False))
            try:
                train = TrainConfig.from_dict({"seed": data.get("seed", 0), **raw})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"stages.{i} ({name}): {exc}") from exc
            stages.append(StageSpec(name=name, train=train, init=init, convert_objective=convert))
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stage names must be unique, got {names}")
        return cls(stages=tuple(stages), **values)


def load_recipe(source: str | Path, overrides: list[str] = ()):  # type: ignore[no-untyped-def]
    """A recipe file or the name of a shipped one (`bench/configs/train/<name>.toml`), with overrides: a `Recipe`,
    or a `VocoderRecipe` for `kind = "vocoder"` (bench.training.vocoder)."""
    data = load_toml(source, overrides, what="training recipe", group="train")[0]
    if data.get("kind") is not None:
        from bench.training.vocoder import KIND, VocoderRecipe

        if data["kind"] != KIND:
            raise ConfigError(f"kind: unknown recipe kind {data['kind']!r} (known: {KIND!r}, or none for FlashSpeech)")
        return VocoderRecipe.from_dict(data)
    return Recipe.from_dict(data)


def training_items(  # type: ignore[no-untyped-def]
    data: str, codec, cache_dir: str | Path | None = None, *, shard: tuple[int, int] = (0, 1), stream: bool = False
):
    """Feature items for a recipe's data source, and the problems met while building them; `shard` builds one
    shard of the features only, `stream` reads the items from disk when used (`bench.training.featurize`)."""
    from bench.training.featurize import build_features

    utterances, problems = [], []
    for part in data.split("+"):
        if part in CORPUS_SOURCES:
            utterances.extend(corpus_utterances(part, "train", cache_dir))
        elif part.startswith("libritts:"):
            from bench.training.libritts import libritts_utterances

            found, found_problems = libritts_utterances(part.split(":", 1)[1])
            utterances.extend(found)
            problems.extend(found_problems)
        elif part.startswith("mls:"):
            from bench.training.mls import mls_utterances

            found, found_problems = mls_utterances(part.split(":", 1)[1])
            utterances.extend(found)
            problems.extend(found_problems)
        else:
            raise ConfigError(
                f"unknown data source {part!r} in {data!r}; use 'synthetic', 'natural', 'libritts:<dir>', "
                "'mls:<split dir>' or several joined with '+'"
            )
    features = build_features(utterances, codec, cache_dir, shard=shard, stream=stream)
    return features, problems + features.problems


def validation_items(recipe: Recipe, codec, cache_dir: str | Path | None = None):  # type: ignore[no-untyped-def]
    """Held-out feature items for validation curves (empty when the recipe has none)."""
    from bench.training.featurize import build_features

    source = recipe.validation
    corpora = [part for part in recipe.data.split("+") if part in CORPUS_SOURCES]
    if source == "none" or (source == "auto" and not corpora):
        return []
    if source == "auto":  # the training voices' test sentences of every corpus the recipe trains on
        utterances = [u for part in corpora for u in corpus_utterances(part, "test", cache_dir)]
        items = build_features(utterances, codec, cache_dir).items
    else:
        items, _ = training_items(source, codec, cache_dir)
        items = items.items
    items = sorted(items, key=lambda item: item.id)
    if len(items) > recipe.validation_items:
        stride = len(items) / recipe.validation_items
        items = [items[int(i * stride)] for i in range(recipe.validation_items)]
    return items


def _silent(*args: object, **kwargs: object) -> None:
    """`print` of the ranks that do not speak."""


def run_recipe(
    recipe: Recipe,
    out: str | Path,
    *,
    only: str | None = None,
    resume: bool = True,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    tracking: str | None = None,
    mlflow_curves: bool = True,
) -> Path:
    """Run the recipe's stages in order (or only `only`); returns the last exported checkpoint.

    Under torchrun (WORLD_SIZE > 1) every rank runs this: rank 0 builds the feature cache first, logs, and writes
    the checkpoints; each stage trains data-parallel (`flashspeech.training.distributed`)."""
    from flashspeech.codecs.mel import MelCodec
    from flashspeech.config import preset, with_overrides
    from flashspeech.synthesis import FlashSpeech
    from flashspeech.training.distributed import Ranks

    ranks = Ranks.from_env(device)
    device = str(ranks.device(device))
    say = print if ranks.writer else _silent  # only rank 0 speaks
    out = Path(out)
    codec = MelCodec()
    if not ranks.writer:
        ranks.barrier()  # rank 0 builds (or finds) the feature cache first
    features, problems = training_items(recipe.data, codec, cache_dir, stream=recipe.stream)
    if ranks.writer:
        ranks.barrier()
    if problems:
        say(f"{len(problems)} training utterance(s) skipped:")
        for p in problems[:20]:
            say(f"  {p}")
    if not features.items:
        raise ConfigError(f"no training utterances from {recipe.data!r}")
    say(f"training data: {len(features.items)} utterances, {len(features.speakers)} speakers, {features.hours:.2f} h")
    last: Path | None = None
    history: list[dict[str, Any]] = []
    held_out = None
    for spec in recipe.stages:
        stage_dir = out / spec.name
        export_dir = stage_dir / "checkpoint"
        if only is not None and spec.name != only:
            if export_dir.is_dir():
                last = export_dir
                history = _history(export_dir)
            continue
        if export_dir.is_dir() and (export_dir / "config.json").is_file():
            say(f"stage {spec.name}: done ({export_dir})")
            last, history = export_dir, _history(export_dir)
            continue
        init = spec.init
        if init is not None and (out / init / "checkpoint").is_dir():
            init = str(out / init / "checkpoint")
        if init is not None:
            tts = _with_objective(FlashSpeech.from_pretrained(init), spec)
            history = _history(Path(init))
        else:
            diffusion = spec.train.stage == "diffusion"
            cfg = preset(f"{recipe.preset}-diffusion" if diffusion else recipe.preset)
            try:
                cfg = with_overrides(cfg, recipe.model)
            except ValueError as exc:
                raise ConfigError(f"recipe {recipe.name!r}: model: {exc}") from exc
            tts = FlashSpeech.from_config(cfg, codec, seed=recipe.seed)
        tts.to(device)
        curves = None
        if mlflow_curves and ranks.writer:
            params = {"recipe": recipe.name, "preset": recipe.preset, "model": recipe.model, "data": recipe.data}
            params.update(spec.train.to_dict())
            curves = MlflowCurves(out, recipe.experiment, f"{recipe.name}/{spec.name}", params, tracking)
        validation = None
        if spec.train.validate_every:
            if held_out is None:
                held_out = validation_items(recipe, codec, cache_dir)
                say(f"validation: {len(held_out)} held-out utterances ({recipe.validation})")
            validation = validation_batches(held_out, recipe.validation_batch_frames, recipe.seed) if held_out else None
        trainer = Trainer(
            tts.model,
            features.items,
            spec.train,
            stage_dir,
            codec=tts.codec,
            on_log=curves,
            validation=validation,
            ranks=ranks,
        )
        trainer.on_snapshot = _snapshot_writer(tts, trainer, recipe, spec, history)
        if resume and (stage_dir / "state.pt").is_file():
            trainer.load_state()
            say(f"stage {spec.name}: resuming at step {trainer.step}")
        try:
            final = trainer.run()
        except BaseException:
            if curves:
                curves.close("KILLED")
            raise
        if curves:
            curves.close()
        entry = {
            **_stage_entry(recipe, spec, spec.train.steps),
            "train_wall_s": round(trainer.elapsed_s, 1),
            "machine": machine(),
            "final_metrics": final,
            "utterances": len(features.items),
            "speakers": features.speakers,
            "hours": round(features.hours, 3),
        }
        if trainer.last_validation is not None:
            entry["validation"] = trainer.last_validation
        if trainer.speech_encoder is not None:
            entry["speech_encoder"] = trainer.speech_encoder.name
        if ranks.distributed:
            entry["ranks"] = ranks.world
        history = [*history, entry]
        tts.model.eval()
        if ranks.writer:
            tts.save_pretrained(export_dir, recipe=recipe.name, training=history)
        ranks.barrier()  # the next stage's init is this export
        last = export_dir
    if last is not None and recipe.export and only is None and ranks.writer:
        from flashspeech.checkpoint import export_checkpoint

        dest = Path(recipe.export)
        if dest.exists():
            shutil.rmtree(dest)
        export_checkpoint(last, dest, torch.float16)
        export_validation_curves(recipe, out, dest)
        say(f"exported {last} -> {dest} (float16 weights, validation curves)")
    if last is None:
        raise ConfigError("no stage ran or finished")
    return last


VALIDATION_PREFIX = "validation-"  # <export>/validation-<stage>.jsonl: a stage's val_* rows


def export_validation_curves(recipe: Recipe, out: Path, dest: Path) -> list[Path]:
    """Write each stage's held-out validation rows (`val_*`) from its run under `out` next to the exported
    weights in `dest`, as `validation-<stage>.jsonl`: the model card draws them from there."""
    written = []
    for spec in recipe.stages:
        rows = validation_rows(out / spec.name)
        if rows:
            path = dest / f"{VALIDATION_PREFIX}{spec.name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            written.append(path)
    return written


def _stage_entry(recipe: Recipe, spec: StageSpec, steps: int) -> dict[str, Any]:
    """What every training-history entry of a stage says (`steps`: how far it trained)."""
    return {
        "stage": spec.name,
        "objective": spec.train.stage,
        "steps": steps,
        "config": spec.train.to_dict(),
        "data": recipe.data,
    }


def _snapshot_writer(tts, trainer, recipe: Recipe, spec: StageSpec, history: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    """`Trainer.on_snapshot` for a recipe stage: a strict-loading checkpoint of the weights at that step,
    whose training history ends with the stage so far (`snapshot: true`), for evaluating midway points."""

    def write(step: int, directory: Path) -> None:
        entry = {**_stage_entry(recipe, spec, step), "snapshot": True}
        if trainer.last_validation is not None and trainer.step == step:
            entry["validation"] = trainer.last_validation
        tts.save_pretrained(directory, recipe=recipe.name, training=[*history, entry])

    return write


def _with_objective(tts, spec: StageSpec):  # type: ignore[no-untyped-def]
    """`tts` with the objective `spec`'s stage trains: unchanged, or (convert_objective) the same weights,
    loaded strictly into a model of the other objective (the network is identical)."""
    from dataclasses import replace

    from flashspeech.synthesis import FlashSpeech

    wanted = "diffusion" if spec.train.stage == "diffusion" else "consistency"
    have = tts.model.cfg.objective
    if have == wanted:
        return tts
    if not spec.convert_objective:
        raise ConfigError(
            f"stage {spec.name}: its init checkpoint was trained with objective {have!r} but the stage trains "
            f"{wanted!r}; set convert_objective = true to start from its weights anyway"
        )
    name = (
        tts.model.cfg.name.removesuffix("-diffusion") if wanted == "consistency" else f"{tts.model.cfg.name}-diffusion"
    )
    converted = FlashSpeech.from_config(replace(tts.model.cfg, objective=wanted, name=name), tts.codec)
    converted.model.load_state_dict(tts.model.state_dict(), strict=True)
    return converted


def _history(checkpoint: Path) -> list[dict[str, Any]]:
    from flashspeech.checkpoint import read_description

    return list(read_description(checkpoint).get("metadata", {}).get("training", []))
