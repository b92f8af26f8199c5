"""`flashspeech-bench` (also `python -m bench`): the command-line entry point.

Subcommands:
  run             run a benchmark config (generation cache, suites, results, reports, MLflow, gate)
  model-card      render flashspeech/pretrained/README.md from a model-card benchmark run
  train           train FlashSpeech / the diffusion baseline from a recipe (resumable, MLflow curves)
  compare         regression gate between two runs (results directories or MLflow run ids)
  speed           GPU-speed benchmark: paper-scale RTF, speed-up over diffusion, scoring throughput
  data synth      build the synthetic corpus (cached; resumes; deterministic)
  data list       the embedded test sets with item counts and durations
  data import     turn a local copy of a standard protocol into a manifest
  data validate   check a manifest and list every problem by line and field
  data phonemize  show the frontend's phonemes and ids for a text
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flashspeech import __version__


def _cmd_synth(args: argparse.Namespace) -> int:
    from bench.data.embedded import EMBEDDED
    from bench.data.synth import HELDOUT, CorpusConfig, build_corpus

    config = CorpusConfig(seed=args.seed, max_sentences=args.max_sentences)
    voices = args.voices
    if args.heldout_only:
        voices = [v.name for v in config.voices if config.split_of(v.name) == HELDOUT]
    corpus = build_corpus(config, args.cache_dir, voices=voices, force=args.force, progress=not args.quiet)
    seconds = sum(u.n_samples for u in corpus.utterances) / corpus.sample_rate
    n_voices = len({u.voice for u in corpus.utterances})
    print(f"corpus: {len(corpus.utterances)} utterances, {n_voices} voices, {seconds / 3600:.2f} h at {corpus.root}")
    if args.max_sentences is None and args.seed == 0:
        smoke = EMBEDDED["smoke"].build(args.cache_dir, not args.quiet)
        print(f"smoke manifest: {smoke}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from bench.data.embedded import list_embedded

    rows = list_embedded(args.cache_dir)
    print(f"{'name':8} {'items':>6} {'speakers':>8} {'targets':>9} {'prompts':>9}  description")
    for r in rows:
        if not r.built:
            print(f"{r.name:8} {'-':>6} {'-':>8} {'-':>9} {'-':>9}  {r.description}")
            print(f"{'':8} not built yet: run `flashspeech-bench data synth` ({r.path})")
            continue
        counts = f"{r.items:>6} {r.speakers:>8} {r.target_seconds:>8.1f}s {r.prompt_seconds:>8.1f}s"
        print(f"{r.name:8} {counts}  {r.description}")
        if r.problems:
            print(f"{'':8} {r.problems} problem(s): run `flashspeech-bench data validate {r.path}`")
    return 0


def _report_problems(manifest, limit: int) -> None:  # type: ignore[no-untyped-def]
    for problem in manifest.problems[:limit]:
        print(f"  {problem}", file=sys.stderr)
    if len(manifest.problems) > limit:
        print(f"  ... and {len(manifest.problems) - limit} more", file=sys.stderr)


def _cmd_import(args: argparse.Namespace) -> int:
    from bench.data.protocols import LibriSpeechOptions, load_f5_librispeech_pc, load_librispeech, load_seedtts

    if args.protocol == "librispeech":
        options = LibriSpeechOptions(
            min_s=args.min_s,
            max_s=args.max_s,
            prompt_s=args.prompt_s,
            seed=args.seed,
            every_nth=args.every_nth,
            max_items=args.max_items,
        )
        manifest = load_librispeech(args.root, options)
    elif args.protocol == "f5-librispeech-pc":
        manifest = load_f5_librispeech_pc(args.list, args.root)
    else:
        manifest = load_seedtts(args.meta)
    manifest.write(args.output)
    print(f"{args.output}: {len(manifest)} items, {len(manifest.problems)} problem(s)")
    _report_problems(manifest, args.show)
    return 1 if manifest.problems and args.strict else 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from bench.data.manifest import load_manifest

    manifest = load_manifest(args.manifest, check_audio=not args.no_audio)
    print(f"{args.manifest}: {len(manifest)} valid items, {len(manifest.problems)} problem(s)")
    _report_problems(manifest, args.show)
    return 1 if manifest.problems else 0


def _cmd_phonemize(args: argparse.Namespace) -> int:
    from flashspeech.text.phonemes import Frontend

    frontend = Frontend()
    for text in args.text:
        phonemes = frontend.phonemize(text)
        print(" ".join(phonemes))
        print(" ".join(map(str, frontend.encode(text))))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.config import load_config
    from bench.runner import run_benchmark

    overrides = list(args.set or [])
    for flag, key in (("device", "device"), ("output_dir", "output_dir"), ("tracking_uri", "tracking_uri")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={json.dumps(str(value))}")
    if args.seeds is not None:
        overrides.append(f"seeds={json.dumps(args.seeds)}")
    if args.no_mlflow:
        overrides.append("mlflow=false")
    if args.retime:
        overrides.append("retime=true")
    config = load_config(args.config, overrides)
    outcome = run_benchmark(config, progress=not args.quiet)
    results = outcome.results
    print(f"\n{config.name}: {outcome.generated} generated, {outcome.cached} from the cache")
    print(_headline(results))
    _print_problems(results)
    print(f"\nresults: {outcome.output_dir}")
    for name, path in outcome.reports.items():
        if name in ("markdown", "html"):
            print(f"report ({name}): {path}")
    if outcome.tracking is not None:
        print(f"mlflow: {outcome.tracking}")
    if args.gate:
        from bench.compare import compare, load_results

        gate = _gate_config(args)
        report = compare(load_results(args.gate, uri=config.tracking_uri), results, gate, args.gate, "this run")
        _emit_gate(report, args.gate_report)
        return 0 if report.passed else 3
    return 0


def _gate_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The gate config of `--gate-config`, `--allow-evaluator-change` and `--rtf-noise` (run --gate, compare)."""
    from bench.gate_config import GateConfig

    config = GateConfig.from_toml(args.gate_config) if args.gate_config else GateConfig()
    config.allow_evaluator_change |= args.allow_evaluator_change
    if args.rtf_noise:
        config.apply_rtf_noise(args.rtf_noise)
    return config


def _emit_gate(report, markdown_path) -> None:  # type: ignore[no-untyped-def]
    text = report.to_markdown()
    print("\n" + text)
    for target in filter(None, (markdown_path, os.environ.get("GITHUB_STEP_SUMMARY"))):
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")


def _print_problems(results, limit: int = 10) -> None:  # type: ignore[no-untyped-def]
    """Every kind of failure of a run, counted and named: test-set items, generations, scores."""
    for name, info in (results.metadata.get("testsets") or {}).items():
        problems = info.get("problems") or []
        if problems:
            print(f"\n{len(problems)} test-set problem(s) in {name!r} (items left out of the run):")
            for problem in problems[:limit]:
                print(f"  {problem}")
            if len(problems) > limit:
                print(f"  ... and {len(problems) - limit} more (results.json: testsets)")
    items = results.items
    failed = items[items["status"] == "failed"]
    if len(failed):
        print(f"\n{len(failed)} failed generation(s) (see items.csv):")
        for _, row in failed.head(limit).iterrows():
            print(f"  {row['system']} {row['item_id']} seed {row['seed']}: {row['error']}")
    for column in sorted(c for c in items.columns if c.endswith(".error")):
        errors = items[items[column].notna()]
        if len(errors):
            suite = column[: -len(".error")]
            print(f"\n{len(errors)} failed {suite} score(s) (see items.csv, {column}):")
            for _, row in errors.head(limit).iterrows():
                print(f"  {row['system']} {row['item_id']} seed {row['seed']}: {row[column]}")


def _headline(results) -> str:  # type: ignore[no-untyped-def]
    keys = ["generation.failed", "wer.wer_corpus", "similarity.sim_o", "similarity.sim_r", "rtf.rtf"]
    table = results.summary()
    cols = [k for k in keys if k in table.columns]
    return table[cols].to_string(float_format=lambda v: f"{v:.4f}") if cols else "(no aggregates)"


def _cmd_compare(args: argparse.Namespace) -> int:
    from bench.compare import compare, load_results

    baseline = load_results(args.baseline, uri=args.tracking_uri)
    candidate = load_results(args.candidate, uri=args.tracking_uri)
    report = compare(baseline, candidate, _gate_config(args), args.baseline, args.candidate)
    _emit_gate(report, args.gate_report)
    return 0 if report.passed else 3


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from bench.training.run import load_recipe, run_recipe

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.config, args.set or [])
    out = Path(args.output_dir or Path("runs") / "train" / recipe.name)
    if args.steps is not None:
        if args.stage is None:
            raise SystemExit("--steps needs --stage (which stage to change)")
        recipe = load_recipe(args.config, [*(args.set or []), *_stage_override(recipe, args.stage, args.steps)])
    checkpoint = run_recipe(
        recipe,
        out,
        only=args.stage,
        resume=not args.restart,
        device=args.device,
        cache_dir=args.cache_dir,
        tracking=args.tracking_uri,
        mlflow_curves=not args.no_mlflow,
    )
    print(f"checkpoint: {checkpoint}")
    return 0


def _cmd_calibrate_rtf(args: argparse.Namespace) -> int:
    from bench.calibration import calibrate_rtf
    from bench.config import load_config

    overrides = list(args.set or [])
    if args.output_dir is not None:
        overrides.append(f"output_dir={json.dumps(str(args.output_dir))}")
    config = load_config(args.config, overrides)
    out = calibrate_rtf(config, runs=args.runs, progress=not args.quiet)
    print(f"RTF over {out['runs']} re-timed runs of {out['config']} on {out['machine'].get('cpu')}:")
    for row in out["systems"]:
        runs = ", ".join(f"{v:.4g}" for v in row["rtf_per_run"])
        print(f"  {row['system']}: {runs} (CV {100 * row['cv']:.1f} %, worst {100 * row['max_rel_dev']:.1f} %)")
    if out["contended_samples"]:
        print(f"warning: {out['contended_samples']} sample(s) were timed under competition: rerun on a quiet machine")
    print(f"recommended RTF margin (allowed_rel): {out['recommended_allowed_rel']:.2f}")
    print(f"written: {Path(config.output_dir) / 'rtf-noise.json'}")
    return 0


def _cmd_speed(args: argparse.Namespace) -> int:
    from bench.config import ConfigError
    from bench.speed import load_speed_config, run_speed
    from bench.speed.report import markdown

    try:
        report, path = run_speed(load_speed_config(args.config, args.set or []))
    except ConfigError as exc:
        raise SystemExit(f"speed: {exc}") from exc
    print("\n" + markdown(report))
    print(f"\nresults: {path}")
    return 0


def _cmd_model_card(args: argparse.Namespace) -> int:
    from bench.training.model_card import last_step, write_card

    root = Path(args.runs)
    diffusion_steps = last_step(root / "tiny-diffusion" / "diffusion")
    runs: dict[str, Path | tuple[Path, int]] = {
        "diffusion-tiny": root / "tiny-diffusion" / "diffusion",
        "flashspeech-tiny (adversarial stage, from diffusion-tiny)": (root / "tiny" / "adversarial", diffusion_steps),
        "tiny-paper consistency from scratch (not shipped)": root / "tiny-paper" / "consistency",
    }
    print(f"wrote {write_card(args.results, args.out, args.notes, runs if args.runs else None)}")
    return 0


def _stage_override(recipe, stage: str, steps: int) -> list[str]:  # type: ignore[no-untyped-def]
    names = [s.name for s in recipe.stages]
    if stage not in names:
        raise SystemExit(f"--stage {stage!r}: the recipe's stages are {names}")
    return [f"stages.{names.index(stage)}.steps={steps}"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashspeech-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"flashspeech-bench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("run", help="run a benchmark config (default: the embedded smoke config)")
    p.add_argument("--config", default="smoke", help="a TOML file, or a shipped config name (smoke, paper)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config field (TOML value)")
    p.add_argument("--device", default=None)
    p.add_argument("--output-dir", dest="output_dir", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--tracking-uri", dest="tracking_uri", default=None, help="MLflow server (default: sqlite)")
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument(
        "--retime", action="store_true", help="regenerate cached generations so every timing (RTF) is this run's"
    )
    p.add_argument("--gate", default=None, metavar="BASELINE", help="compare with a baseline run; exit 3 on regression")
    p.add_argument("--gate-config", default=None, help="TOML with a [gate] table (thresholds, tests)")
    p.add_argument("--gate-report", default=None, help="append the gate's Markdown to this file")
    p.add_argument(
        "--allow-evaluator-change",
        action="store_true",
        help="with --gate: compare a suite's metrics although its evaluator changed",
    )
    p.add_argument("--rtf-noise", default=None, help="with --gate: RTF margin from a calibrate-rtf result")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_run)

    p = commands.add_parser("train", help="train from a recipe (stages in order; resumes; MLflow curves)")
    p.add_argument(
        "--config", default="tiny", help="a recipe TOML, or a shipped one (tiny, tiny-diffusion, tiny-paper)"
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field (TOML value)")
    p.add_argument("--stage", default=None, help="run only this stage (its init stage must be done)")
    p.add_argument("--steps", type=int, default=None, help="train --stage to this many steps")
    p.add_argument("--restart", action="store_true", help="ignore saved state and start the stage again")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--output-dir", dest="output_dir", default=None, help="default: runs/train/<recipe name>")
    p.add_argument("--cache-dir", dest="cache_dir", default=None, help="corpus and feature cache")
    p.add_argument("--tracking-uri", dest="tracking_uri", default=None, help="MLflow server (default: sqlite)")
    p.add_argument("--no-mlflow", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = commands.add_parser("model-card", help="render the shipped checkpoints' model card from a results dir")
    p.add_argument("--results", default="outputs/model-card", help="results of `run --config model-card`")
    p.add_argument("--out", default="flashspeech/pretrained/README.md")
    p.add_argument(
        "--notes", default="docs/model-card-notes.md", help="a Markdown file appended as the card's Notes section"
    )
    p.add_argument("--runs", default="runs/train", help="training runs to draw validation curves from ('' for none)")
    p.set_defaults(func=_cmd_model_card)

    p = commands.add_parser("compare", help="regression gate: exit 3 if CANDIDATE regresses against BASELINE")
    p.add_argument("baseline", help="results directory or MLflow run id")
    p.add_argument("candidate", help="results directory or MLflow run id")
    p.add_argument("--tracking-uri", dest="tracking_uri", default=None)
    p.add_argument("--gate-config", default=None, help="TOML with a [gate] table (thresholds, tests)")
    p.add_argument("--gate-report", default=None, help="append the gate's Markdown to this file")
    p.add_argument(
        "--allow-evaluator-change",
        action="store_true",
        help="compare a suite's metrics although its evaluator (model checksum, backend, options) changed",
    )
    p.add_argument("--rtf-noise", default=None, help="RTF margin from a calibrate-rtf result (rtf-noise.json)")
    p.set_defaults(func=_cmd_compare)

    p = commands.add_parser("calibrate-rtf", help="run a config's generation N times to measure RTF noise")
    p.add_argument("--config", default="smoke", help="a TOML file, or a shipped config name")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config field (TOML value)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--output-dir", dest="output_dir", default=None, help="default: the config's output_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_calibrate_rtf)

    p = commands.add_parser("speed", help="time FlashSpeech vs the diffusion baseline and the suites' models")
    p.add_argument("--config", default="cpu-rtf", help="a TOML file, or a shipped one (gpu-rtf, cpu-rtf)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field (TOML value; suites.items=4)")
    p.set_defaults(func=_cmd_speed)

    data = commands.add_parser("data", help="test sets and the synthetic corpus").add_subparsers(
        dest="data_command", required=True
    )
    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument(
        "--cache-dir", type=Path, default=None, help="default: $FLASHSPEECH_BENCH_CACHE or ~/.cache/flashspeech-bench"
    )

    p = data.add_parser("synth", parents=[cache], help="build the synthetic corpus and the smoke manifest")
    p.add_argument("--voices", nargs="+", default=None, help="only these voices (default: all)")
    p.add_argument("--heldout-only", action="store_true", help="only the held-out voices (what `smoke` needs)")
    p.add_argument("--max-sentences", type=int, default=None, help="first N sentences only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rebuild from scratch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = data.add_parser("list", parents=[cache], help="embedded test sets with item counts and durations")
    p.set_defaults(func=_cmd_list)

    p = data.add_parser("import", help="manifest from a local copy of a standard protocol")
    protocols = p.add_subparsers(dest="protocol", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", type=Path, required=True, help="manifest to write (JSONL)")
    common.add_argument("--strict", action="store_true", help="exit non-zero if any item has a problem")
    common.add_argument("--show", type=int, default=50, help="problems to print")
    ls = protocols.add_parser("librispeech", parents=[common], help="LibriSpeech test-clean, VALL-E cross-sentence")
    ls.add_argument("root", type=Path, help="LibriSpeech test-clean directory (<spk>/<chapter>/...)")
    ls.add_argument("--min-s", type=float, default=4.0)
    ls.add_argument("--max-s", type=float, default=10.0)
    ls.add_argument("--prompt-s", type=float, default=3.0)
    ls.add_argument("--seed", type=int, default=0)
    ls.add_argument("--every-nth", type=int, default=1)
    ls.add_argument("--max-items", type=int, default=None)
    f5 = protocols.add_parser("f5-librispeech-pc", parents=[common], help="F5-TTS LibriSpeech-PC cross-sentence list")
    f5.add_argument("list", type=Path, help="the .lst file (ref_utt, ref_dur, ref_text, gen_utt, gen_dur, gen_text)")
    f5.add_argument("root", type=Path, help="LibriSpeech test-clean directory")
    st = protocols.add_parser("seedtts", parents=[common], help="seed-tts-eval meta.lst")
    st.add_argument("meta", type=Path, help="meta.lst (utt|prompt_text|prompt_wav|target_text[|gt_wav])")
    p.set_defaults(func=_cmd_import)

    p = data.add_parser("validate", help="check a manifest; lists every problem by line and field")
    p.add_argument("manifest", type=Path)
    p.add_argument("--no-audio", action="store_true", help="skip opening the audio files")
    p.add_argument("--show", type=int, default=50, help="problems to print")
    p.set_defaults(func=_cmd_validate)

    p = data.add_parser("phonemize", help="the text frontend's phonemes and ids")
    p.add_argument("text", nargs="+")
    p.set_defaults(func=_cmd_phonemize)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
