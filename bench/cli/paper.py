"""`flashspeech-bench paper` (all five of the paper's tables from a LibriSpeech copy, the evaluation weights and
a checkpoint, checked before anything runs), `report` (re-render the reports of results directories) and
`run --check` (the preflight alone)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

PAPER_CONFIGS = {  # table -> the shipped config that measures it
    1: "paper",
    3: "paper",
    2: "paper-ablation-adversarial",
    4: "paper-alpha",
    5: "paper-alpha",
}
CONSISTENCY_ONLY = "consistency-only"  # Table 2's system that takes --consistency-only


def add_paper_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "paper", help="the paper's five tables: import LibriSpeech, check every piece, run, render PAPER.md"
    )
    p.add_argument("--librispeech", type=Path, required=True, help="LibriSpeech test-clean (the extracted tarball)")
    p.add_argument("--models", type=Path, default=None, help="model directory (default: $FLASHSPEECH_BENCH_MODELS)")
    p.add_argument("--checkpoint", required=True, help="the FlashSpeech checkpoint (adversarially trained)")
    p.add_argument(
        "--consistency-only", dest="consistency_only", default=None, help="Table 2's consistency-only checkpoint"
    )
    p.add_argument("--tables", type=int, nargs="+", default=[1, 2, 3, 4, 5], choices=sorted(PAPER_CONFIGS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--output-dir", dest="output_dir", type=Path, default=Path("outputs/paper-tables"))
    p.add_argument("--partial", action="store_true", help="accept an incomplete test-clean (not comparable)")
    p.add_argument("--check", action="store_true", help="import and check every piece, run nothing")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a field of every table's config (TOML value), e.g. seeds=[0,1,2]",
    )
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_paper)

    p = commands.add_parser("report", help="re-render the reports of results directories (and PAPER.md)")
    p.add_argument("results", nargs="+", type=Path, help="results directories (results.json)")
    p.add_argument(
        "--paper",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the paper report there: Tables 1 and 3 from the first directory, 2, 4, 5 from any",
    )
    p.set_defaults(func=cmd_report)


def _load_results(path: Path):  # type: ignore[no-untyped-def]
    from bench.results import Results

    if not (path / "results.json").is_file():
        raise FileNotFoundError(f"{path}: no results.json (not a results directory)")
    return Results.load(path)


def cmd_report(args: argparse.Namespace) -> int:
    from reports import write_reports

    runs = [_load_results(path) for path in args.results]
    for path, results in zip(args.results, runs, strict=True):
        for name, written in write_reports(results, path, results_dir=path).items():
            if name in ("markdown", "html"):
                print(f"{path}: {name} {written}")
    if args.paper is not None:
        report = _write_paper_report(runs, args.paper)
        _print_paper_summary(report)
    return 0


def _write_paper_report(runs, path: Path, tables=None):  # type: ignore[no-untyped-def]
    from flashspeech.foundation.files import write_text_atomic
    from reports.paper_report import ALL_TABLES, paper_report, render_paper_report

    report = paper_report(runs[0], runs[1:])
    write_text_atomic(path, render_paper_report(report, tables or ALL_TABLES))
    print(f"paper report: {path}")
    return report


def _print_paper_summary(report) -> None:  # type: ignore[no-untyped-def]
    counts = ", ".join(f"{n} {level}" for level, n in sorted(report.counts.items())) or "none"
    print(f"cells with a value of ours, by comparability: {counts}")
    for line in report.unusable():
        print(f"  not the paper's protocol: {line}", file=sys.stderr)


def paper_configs(args: argparse.Namespace, manifest: Path):  # type: ignore[no-untyped-def]
    """The shipped configs the tables need, pointed at the manifest, the checkpoints, the device and the output."""
    from bench.config import load_config

    configs = []
    for name in dict.fromkeys(PAPER_CONFIGS[t] for t in sorted(args.tables)):
        config = load_config(name, args.set or [])
        config.device, config.output_dir = args.device, str(args.output_dir / name)
        config.mlflow = config.mlflow and not args.no_mlflow
        config.testsets = [replace(t, manifest=str(manifest)) for t in config.testsets]
        for system in config.systems:
            if system.kind == "flashspeech":
                ckpt = args.consistency_only if system.name == CONSISTENCY_ONLY else args.checkpoint
                system.options = replace(system.options, checkpoint=str(ckpt))
        configs.append(config)
    return configs


def import_paper_set(args: argparse.Namespace, options) -> tuple[Path | None, list[str]]:  # type: ignore[no-untyped-def]
    """The LibriSpeech manifest imported with the configs' selection; (None, problems) when it cannot be."""
    from bench.testsets.protocols import load_librispeech
    from bench.testsets.provenance import IncompleteSource

    manifest = load_librispeech(args.librispeech, options)
    record, problems = manifest.provenance, [str(p) for p in manifest.problems]
    if record is None or not len(manifest):
        return None, problems or [f"{args.librispeech}: no items imported"]
    try:
        manifest.provenance = record.accepted(args.partial)
    except IncompleteSource as exc:
        return None, [str(exc)]
    path = args.output_dir / "librispeech-test-clean.jsonl"
    manifest.write(path)
    print(
        f"imported {args.librispeech}: {record.source.utterances} utterances, {record.filtered} targets of "
        f"{options.min_s:g}-{options.max_s:g} s ({record.filtered_hours:.2f} h), every {options.every_nth} -> "
        f"{record.items} items -> {path}" + (f" ({len(problems)} left out)" if problems else "")
    )
    return path, []


def cmd_paper(args: argparse.Namespace) -> int:
    from bench.config import load_config
    from bench.run import preflight

    if 2 in args.tables and args.consistency_only is None:
        raise FileNotFoundError("Table 2 needs --consistency-only CHECKPOINT (or leave it out: --tables 1 3 4 5)")
    if args.models is not None:
        os.environ["FLASHSPEECH_BENCH_MODELS"] = str(args.models.resolve())
    options = load_config("paper").testsets[0].librispeech
    manifest, problems = import_paper_set(args, options)
    if manifest is None:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        return 1
    configs = paper_configs(args, manifest)
    missing = []
    for config in configs:  # every piece of every table before any generation
        ready = preflight(config)
        for line in ready.loaded:
            print(f"{config.name}: ok: {line}")
        missing += [f"{config.name}: {m}" for m in ready.missing]
    if missing:
        print(f"\n{len(missing)} missing piece(s); nothing was generated:", file=sys.stderr)
        for line in dict.fromkeys(missing):
            print(f"  {line}", file=sys.stderr)
        return 1
    if args.check:
        print("every piece is in place: run without --check to measure")
        return 0
    runs = [_run(config, args.quiet) for config in configs]
    report = _write_paper_report(runs, args.output_dir / "PAPER.md", args.tables)
    _print_paper_summary(report)
    return 1 if report.unusable() else 0


def _run(config, quiet: bool):  # type: ignore[no-untyped-def]
    from bench.cli.publish import publish
    from bench.run import run_benchmark

    outcome = run_benchmark(config, progress=not quiet)
    publish(outcome, config)
    print(f"{config.name}: {outcome.generated} generated, {outcome.cached} from the cache -> {outcome.output_dir}")
    return outcome.results
