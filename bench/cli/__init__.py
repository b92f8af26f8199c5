"""`flashspeech-bench` (also `python -m bench`): the command-line entry point.

Subcommands:
  run             run a benchmark config (generation cache, suites, results, reports, MLflow, gate)
  scaling         scoring throughput against the number of Ray actors (random-weight models, a benchmark)
  throughput      scoring throughput of the suites' real backends per batch size (a benchmark)
  model-card      render flashspeech/pretrained/README.md from a model-card benchmark run
  decoder-card    render a neural decoder's card (training, the comparison with Griffin-Lim) from a decoder run
  shapes          the paper's ablation shapes (Tables 2-5) checked on benchmark runs, as Markdown
  train           train FlashSpeech / the diffusion baseline / the codec's neural decoder from a recipe (resumable,
                  MLflow curves)
  compare         regression gate between two runs (results directories, MLflow run ids, tags, auto)
  history         trend report of a config's runs across commits from MLflow (Markdown, HTML, departures)
  accept          accept a logged run as the new baseline after a deliberate change (its failed gate)
  calibrate-rtf   run a config's generation N times to measure RTF noise (the gate's timing margin)
  speed           GPU-speed benchmark: paper-scale RTF, speed-up over diffusion, scoring throughput
  data synth      build the synthetic corpus (cached; resumes; deterministic)
  data natural    build the natural-voice corpus (flite, piper, hibari); --export / --check the committed sets
  data survey     the instruments on the corpora's ground truth: WER, MOS, speaker separation, alignment
  data list       the embedded test sets with item counts and durations
  data import     turn a local copy of a standard protocol into a manifest
  data featurize  build a recipe's training features, one shard of N (run the shards in parallel)
  data mls-mfa    an MLS English split as a Montreal Forced Aligner corpus (the paper's training data)
  data validate   check a manifest and list every problem by line and field
  data phonemize  show the frontend's phonemes and ids for a text
  paper           the paper's five tables: import LibriSpeech, check every piece, run, render PAPER.md
  report          re-render the reports of results directories (and the paper report)
  convert-official  map a checkpoint trained with the official FlashSpeech code onto our model (strict)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli.commands import (
    cmd_calibrate_rtf,
    cmd_compare,
    cmd_decoder_card,
    cmd_import,
    cmd_list,
    cmd_model_card,
    cmd_natural,
    cmd_phonemize,
    cmd_run,
    cmd_scaling,
    cmd_shapes,
    cmd_speed,
    cmd_survey,
    cmd_synth,
    cmd_throughput,
    cmd_validate,
)
from bench.cli.convert import add_convert_parser
from bench.cli.paper import add_paper_parsers
from bench.cli.regression import add_accept_parser, add_auto_gate_options, add_history_parser
from bench.cli.training import cmd_featurize, cmd_mls_mfa, cmd_train
from flashspeech import __version__


def _add_gate_options(p: argparse.ArgumentParser, when: str = "") -> None:
    """The regression gate's options (`run --gate` and `compare`); `when` prefixes the help of those that
    only apply with a gate."""
    p.add_argument("--gate-config", default=None, help="TOML with a [gate] table (thresholds, tests)")
    p.add_argument("--gate-report", default=None, help="append the gate's Markdown to this file")
    p.add_argument(
        "--allow-evaluator-change",
        action="store_true",
        help=f"{when}compare a suite's metrics although its evaluator (model checksum, backend, options) changed",
    )
    p.add_argument(
        "--allow-incomparable",
        action="append",
        default=None,
        metavar="METRIC",
        help=f"{when}let this gating metric (e.g. rtf.rtf; '*': any) be 'not comparable' without failing the gate "
        "(by default a gating row compares or fails)",
    )
    p.add_argument("--rtf-noise", default=None, help=f"{when}RTF margin from a calibrate-rtf result (rtf-noise.json)")
    add_auto_gate_options(p)
    p.add_argument(
        "--require-baseline", action="store_true", help=f"{when}exit 3 when auto (or tag:) finds no baseline run"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashspeech-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"flashspeech-bench {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a config or input error (default: one line)"
    )
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
        "--executor", choices=("local", "ray"), default=None, help="where units run (default: the config's, local)"
    )
    p.add_argument(
        "--ray-address",
        dest="ray_address",
        default=None,
        metavar="ADDRESS",
        help='with --executor ray: an existing cluster ("auto", "ray://head:10001"); default: start a local one',
    )
    p.add_argument(
        "--retime",
        action="store_true",
        help="regenerate cached generations so every timing (RTF) is this run's (implied by --gate)",
    )
    p.add_argument(
        "--no-retime",
        dest="no_retime",
        action="store_true",
        help="with --gate: reuse cached generations (their timings are not this run's: RTF does not compare, and "
        "fails the gate unless --allow-incomparable rtf.rtf)",
    )
    p.add_argument(
        "--gate",
        default=None,
        metavar="BASELINE",
        help="compare with a baseline (results dir, MLflow run id, tag:K=V, or auto); exit 3 on regression",
    )
    _add_gate_options(p, when="with --gate: ")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--check",
        action="store_true",
        help="only the preflight: load every test set, system and suite the config needs; exit 1 naming what is "
        "missing (every run does this before generating)",
    )
    p.set_defaults(func=cmd_run)

    p = commands.add_parser("scaling", help="scoring throughput against the number of Ray actors (a benchmark)")
    p.add_argument("--model", default="whisper:tiny", help="whisper:<size> or wavlm:<tiny|large>, random weights")
    p.add_argument("--device", default="cpu")
    p.add_argument("--items", type=int, default=32, help="synthetic 4-10 s clips scored per configuration")
    p.add_argument("--unit-items", dest="unit_items", type=int, default=8, help="clips per unit")
    p.add_argument("--batch", type=int, default=8, help="clips per model call")
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="actor counts to time")
    p.add_argument("--cpus-per-actor", dest="cpus_per_actor", type=float, default=0.5)
    p.add_argument("--gpus-per-actor", dest="gpus_per_actor", type=float, default=None)
    p.add_argument("--threads-per-actor", dest="threads_per_actor", type=int, default=1)
    p.add_argument("--ray-address", dest="ray_address", default=None, help="an existing cluster (default: local)")
    p.add_argument("--no-local", dest="local", action="store_false", help="skip the local-executor row")
    p.add_argument("--out", default=None, metavar="PREFIX", help="write PREFIX.json and PREFIX.md")
    p.set_defaults(func=cmd_scaling)

    p = commands.add_parser("throughput", help="scoring throughput of the suites' real backends (a benchmark)")
    p.add_argument(
        "--case",
        dest="cases",
        action="append",
        default=None,
        help="suite:backend[:key=value,...], repeatable (default: Whisper base greedy / beam 5 on openai-whisper "
        "and CTranslate2, CT2 int8, DistillMOS, resemblyzer)",
    )
    p.add_argument("--batch", dest="batches", type=int, nargs="+", default=[8], help="batch sizes to time")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", type=int, default=1, help="tile the 44 committed clips N times (28: 1,232 items)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: as set)")
    p.add_argument("--out", default=None, metavar="PREFIX", help="write PREFIX.json and PREFIX.md")
    p.set_defaults(func=cmd_throughput)

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
    bench = p.add_argument_group("--benchmark: training throughput and memory (synthetic data, no recipe)")
    bench.add_argument("--benchmark", action="store_true", help="time optimizer steps instead of training")
    bench.add_argument("--preset", default="tiny", help="model preset (tiny, paper)")
    bench.add_argument("--precision", nargs="+", default=["fp32"], help="fp32, bf16, fp16 (CUDA)")
    bench.add_argument("--batch-frames", dest="batch_frames", type=int, nargs="+", default=[1000, 2000])
    bench.add_argument("--bench-steps", dest="bench_steps", type=int, default=3, help="timed steps per case")
    bench.add_argument("--estimate-at", dest="estimate_at", type=int, default=None, help="estimate memory here")
    bench.add_argument("--out", default=None, metavar="PREFIX", help="write PREFIX.json and PREFIX.md")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("model-card", help="render the shipped checkpoints' model card from a results dir")
    p.add_argument("--results", default="outputs/model-card", help="results of `run --config model-card`")
    p.add_argument("--out", default="flashspeech/pretrained/README.md")
    p.add_argument(
        "--notes", default="docs/model-card-notes.md", help="a Markdown file appended as the card's Notes section"
    )
    p.set_defaults(func=cmd_model_card)

    p = commands.add_parser("decoder-card", help="render a neural decoder's card from a `decoder` run's results")
    p.add_argument("--decoder", default="runs/train/vocos-tiny/export", help="decoder directory or pretrained:<name>")
    p.add_argument("--results", default="outputs/decoder", help="results of `run --config decoder`")
    p.add_argument("--out", default=None, help="the card's Markdown file (default: <decoder dir>/README.md)")
    p.set_defaults(func=cmd_decoder_card)

    p = commands.add_parser("shapes", help="the paper's ablation shapes (Tables 2-5) checked on benchmark runs")
    p.add_argument("--results", nargs="+", required=True, help="results directories (model-card, ablation-alpha, ...)")
    p.add_argument("--out", default="docs/paper-shapes.md")
    p.set_defaults(func=cmd_shapes)

    p = commands.add_parser("compare", help="regression gate: exit 3 if CANDIDATE regresses against BASELINE")
    p.add_argument("baseline", help="results directory, MLflow run id, tag:KEY=VALUE or auto (with --tracking-uri)")
    p.add_argument("candidate", help="results directory or MLflow run id")
    p.add_argument("--tracking-uri", dest="tracking_uri", default=None)
    _add_gate_options(p)
    p.set_defaults(func=cmd_compare)

    add_history_parser(commands)
    add_accept_parser(commands)
    add_paper_parsers(commands)
    add_convert_parser(commands)

    p = commands.add_parser("calibrate-rtf", help="run a config's generation N times to measure RTF noise")
    p.add_argument("--config", default="smoke", help="a TOML file, or a shipped config name")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config field (TOML value)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--output-dir", dest="output_dir", default=None, help="default: the config's output_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_calibrate_rtf)

    p = commands.add_parser("speed", help="time FlashSpeech vs the diffusion baseline and the suites' models")
    p.add_argument("--config", default="cpu-rtf", help="a TOML file, or a shipped one (gpu-rtf, cpu-rtf)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field (TOML value; suites.items=4)")
    p.set_defaults(func=cmd_speed)

    data = commands.add_parser("data", help="test sets and the synthetic corpus").add_subparsers(
        dest="data_command", required=True
    )
    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument(
        "--cache-dir", type=Path, default=None, help="default: $FLASHSPEECH_BENCH_CACHE or ~/.cache/flashspeech-bench"
    )

    p = data.add_parser("natural", parents=[cache], help="build the natural-voice corpus (needs flite, [voices])")
    p.add_argument("--voices", nargs="+", default=None, help="only these voices (default: all)")
    p.add_argument("--max-sentences", type=int, default=None, help="first N sentences only")
    p.add_argument("--force", action="store_true", help="rebuild from scratch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--export", action="store_true", help="rewrite the committed test sets from the corpus")
    what.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless the committed sets match the corpus (--force: resynthesized)",
    )
    p.set_defaults(func=cmd_natural)

    p = data.add_parser("survey", parents=[cache], help="ground-truth WER, MOS and speaker separation per voice")
    p.add_argument("--out", type=Path, default=Path("outputs/survey"), help="where SURVEY.md and survey.json go")
    p.add_argument("--per-voice", type=int, default=20, help="test sentences per voice (default 20 of 40)")
    p.add_argument("--asr", nargs="+", default=None, help="ASR configurations (default: all of ASR_CONFIGS)")
    p.set_defaults(func=cmd_survey)

    p = data.add_parser("synth", parents=[cache], help="build the synthetic corpus and the espeak manifest")
    p.add_argument("--voices", nargs="+", default=None, help="only these voices (default: all)")
    p.add_argument("--heldout-only", action="store_true", help="only the held-out voices (what `smoke` needs)")
    p.add_argument("--max-sentences", type=int, default=None, help="first N sentences only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rebuild from scratch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synth)

    p = data.add_parser("list", parents=[cache], help="embedded test sets with item counts and durations")
    p.set_defaults(func=cmd_list)

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
    ls.add_argument("--every-nth", type=int, default=1, help="keep every n-th target (the paper's official script: 10)")
    ls.add_argument("--max-items", type=int, default=None)
    ls.add_argument(
        "--partial",
        action="store_true",
        help="import a copy that is not the complete subset its folder name says (recorded; not comparable)",
    )
    f5 = protocols.add_parser("f5-librispeech-pc", parents=[common], help="F5-TTS LibriSpeech-PC cross-sentence list")
    f5.add_argument("list", type=Path, help="the .lst file (ref_utt, ref_dur, ref_text, gen_utt, gen_dur, gen_text)")
    f5.add_argument("root", type=Path, help="LibriSpeech test-clean directory")
    st = protocols.add_parser("seedtts", parents=[common], help="seed-tts-eval meta.lst")
    st.add_argument("meta", type=Path, help="meta.lst (utt|prompt_text|prompt_wav|target_text[|gt_wav])")
    p.set_defaults(func=cmd_import)

    p = data.add_parser("featurize", parents=[cache], help="build a recipe's training features (one shard of N)")
    p.add_argument("--config", default="tiny", help="a training recipe (its data source)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field (TOML value)")
    p.add_argument("--shard", default="0/1", metavar="K/N", help="every N-th utterance from the K-th (default: all)")
    p.set_defaults(func=cmd_featurize)

    p = data.add_parser("mls-mfa", help="an MLS English split as a Montreal Forced Aligner corpus (.lab beside audio)")
    p.add_argument("split", type=Path, help="the MLS split directory (transcripts.txt, audio/)")
    p.add_argument("corpus", type=Path, help="where to write <speaker>/<utt>.flac links and <utt>.lab transcripts")
    p.set_defaults(func=cmd_mls_mfa)

    p = data.add_parser("validate", help="check a manifest; lists every problem by line and field")
    p.add_argument("manifest", type=Path)
    p.add_argument("--no-audio", action="store_true", help="skip opening the audio files")
    p.add_argument("--show", type=int, default=50, help="problems to print")
    p.set_defaults(func=cmd_validate)

    p = data.add_parser("phonemize", help="the text frontend's phonemes and ids")
    p.add_argument("text", nargs="+")
    p.set_defaults(func=cmd_phonemize)
    return parser


def user_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input (a config, a flag, a missing file): `main` prints them as one line."""
    from bench.execution import ExecutorError
    from flashspeech.foundation.fields import FieldError
    from flashspeech.official import OfficialCheckpointError

    # FieldError: every table that does not fit its dataclass (ConfigError, SystemConfigError, GateConfigError...)
    return FieldError, ExecutorError, FileNotFoundError, OfficialCheckpointError


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; bad input (`user_errors`) ends it with one line on stderr and exit 2 (--debug: the
    traceback), any other exception with its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        if args.debug or not isinstance(exc, user_errors()):
            raise
        print(f"flashspeech-bench: error: {exc}", file=sys.stderr)
        return 2
