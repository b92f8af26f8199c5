"""The training subcommands of `flashspeech-bench`: `train` (recipes, also under torchrun, and `--benchmark`),
`data featurize` (one shard of a recipe's features) and `data mls-mfa` (MLS as an aligner's corpus)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.commands import _print_and_save


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from bench.training.recipes import load_recipe, run_recipe
    from bench.training.vocoder import VocoderRecipe, run_vocoder_recipe

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.benchmark:
        from bench.training.benchmark import markdown, run_benchmark

        report = run_benchmark(
            args.preset, args.precision, args.batch_frames, args.device, args.bench_steps, args.estimate_at
        )
        return _print_and_save(report, markdown(report), args.out)
    recipe = load_recipe(args.config, args.set or [])
    out = Path(args.output_dir or Path("runs") / "train" / recipe.name)
    common = {
        "resume": not args.restart,
        "device": args.device,
        "cache_dir": args.cache_dir,
        "tracking": args.tracking_uri,
        "mlflow_curves": not args.no_mlflow,
    }
    if isinstance(recipe, VocoderRecipe):  # one stage: --steps sets train.steps
        if args.steps is not None:
            recipe = load_recipe(args.config, [*(args.set or []), f"train.steps={args.steps}"])
        checkpoint = run_vocoder_recipe(recipe, out, **common)
    else:
        if args.steps is not None:
            if args.stage is None:
                raise SystemExit("--steps needs --stage (which stage to change)")
            overrides = _stage_override(recipe, args.stage, args.steps)
            recipe = load_recipe(args.config, [*(args.set or []), *overrides])
        checkpoint = run_recipe(recipe, out, only=args.stage, **common)
    print(f"checkpoint: {checkpoint}")
    return 0


def _stage_override(recipe, stage: str, steps: int) -> list[str]:  # type: ignore[no-untyped-def]
    names = [s.name for s in recipe.stages]
    if stage not in names:
        raise SystemExit(f"--stage {stage!r}: the recipe's stages are {names}")
    return [f"stages.{names.index(stage)}.steps={steps}"]


def cmd_featurize(args: argparse.Namespace) -> int:
    from bench.config import ConfigError
    from bench.training.recipes import load_recipe, training_items
    from flashspeech.codecs.mel import MelCodec

    k, _, n = args.shard.partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise ConfigError(f"--shard {args.shard}: expected K/N with 0 <= K < N, e.g. 3/16")
    recipe = load_recipe(args.config, args.set or [])
    features, problems = training_items(recipe.data, MelCodec(), args.cache_dir, shard=(int(k), int(n)))
    print(f"shard {args.shard} of {recipe.data}: {len(features.items)} utterances, {features.hours:.2f} h")
    print(f"  at {features.root}; {len(problems)} problem(s)")
    for problem in problems[:20]:
        print(f"  {problem}")
    return 0


def cmd_mls_mfa(args: argparse.Namespace) -> int:
    from bench.training.mls import write_mfa_corpus

    written = write_mfa_corpus(args.split, args.corpus)
    print(f"{args.corpus}: {written} utterances (audio links and .lab transcripts); next:")
    print(f"  mfa align {args.corpus} english_us_arpa english_us_arpa {args.split / 'textgrids'}")
    return 0 if written else 1
