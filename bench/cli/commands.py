"""The subcommands of `flashspeech-bench`, one function each: parsed arguments in, exit status out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_synth(args: argparse.Namespace) -> int:
    from bench.testsets.corpus import HELDOUT
    from bench.testsets.embedded import EMBEDDED
    from bench.testsets.espeak_corpus import CorpusConfig, build_corpus

    config = CorpusConfig(seed=args.seed, max_sentences=args.max_sentences)
    voices = args.voices
    if args.heldout_only:
        voices = [v.name for v in config.voices if config.split_of(v.name) == HELDOUT]
    corpus = build_corpus(config, args.cache_dir, voices=voices, force=args.force, progress=not args.quiet)
    seconds = sum(u.n_samples for u in corpus.utterances) / corpus.sample_rate
    n_voices = len({u.voice for u in corpus.utterances})
    print(f"corpus: {len(corpus.utterances)} utterances, {n_voices} voices, {seconds / 3600:.2f} h at {corpus.root}")
    if args.max_sentences is None and args.seed == 0:
        espeak = EMBEDDED["espeak"].build(args.cache_dir, not args.quiet)
        print(f"espeak manifest: {espeak}")
    return 0


def _skipped(pairs: list[dict[str, str]]) -> str:
    """One line for the (test set, system) pairs not run because the system does not do the set's task (by design,
    not a failure): test sets with the same systems left out share a clause."""
    by_testset: dict[str, list[str]] = {}
    for pair in pairs:
        by_testset.setdefault(f"{pair['testset']} ({pair['task']})", []).append(pair["system"])
    clauses: dict[tuple[str, ...], list[str]] = {}
    for testset, names in by_testset.items():
        clauses.setdefault(tuple(names), []).append(testset)
    text = "; ".join(f"{', '.join(sets)}: not {', '.join(names)}" for names, sets in clauses.items())
    return f"not run, another task: {text}" if text else ""


def cmd_natural(args: argparse.Namespace) -> int:
    import filecmp
    import tempfile

    from bench.testsets.natural import NaturalConfig, build_natural_corpus, export_sets, natural_assets_dir
    from bench.testsets.survey import SURVEY_FILES

    config = NaturalConfig(max_sentences=args.max_sentences)
    corpus = build_natural_corpus(config, args.cache_dir, voices=args.voices, force=args.force, progress=not args.quiet)
    seconds = sum(u.n_samples for u in corpus.utterances) / corpus.sample_rate
    n_voices = len({u.voice for u in corpus.utterances})
    print(
        f"natural corpus: {len(corpus.utterances)} utterances, {n_voices} voices, {seconds / 3600:.2f} h",
        f"at {corpus.root}",
    )
    if args.export:
        for path in export_sets(corpus):
            print(f"wrote {path}")
    elif args.check:
        committed = natural_assets_dir()
        with tempfile.TemporaryDirectory() as tmp:
            export_sets(corpus, Path(tmp))
            fresh = sorted(p.relative_to(tmp) for p in Path(tmp).rglob("*") if p.is_file())
            old = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
            differ = [
                str(p)
                for p in fresh
                if not (committed / p).is_file() or not filecmp.cmp(Path(tmp) / p, committed / p, shallow=False)
            ]
            extra = [str(p) for p in old if p not in set(fresh) and p.name not in SURVEY_FILES]
        if differ or extra:
            print(
                f"committed natural sets differ from an export of {corpus.root}:",
                f"{len(differ)} changed or missing, {len(extra)} extra",
            )
            for name in (differ + extra)[:20]:
                print(f"  {name}")
            return 1
        print(f"the committed natural sets match an export of {corpus.root} ({len(fresh)} files)")
    return 0


def cmd_survey(args: argparse.Namespace) -> int:
    from bench.testsets.survey import ASR_CONFIGS, alignment_check, run_survey, survey_clips, write_survey

    unknown = set(args.asr or ()) - set(ASR_CONFIGS)
    if unknown:
        raise SystemExit(f"--asr: unknown {sorted(unknown)}; known: {list(ASR_CONFIGS)}")
    asr = {k: v for k, v in ASR_CONFIGS.items() if args.asr is None or k in args.asr}
    survey = run_survey(survey_clips(args.cache_dir, args.per_voice), asr)
    survey.alignment = alignment_check()
    md, js = write_survey(survey, args.out)
    print(f"wrote {md} and {js}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bench.testsets.embedded import list_embedded, list_tiers

    print("corpus tiers")
    for tier in list_tiers(args.cache_dir):
        built = "not built here" if tier.utterances is None else f"{tier.utterances} utterances, {tier.hours:.2f} h"
        print(f"  {tier.name:8} {tier.description} ({built}; build: {tier.build})")
        if tier.train_voices:
            print(f"  {'':8} training voices: {', '.join(tier.train_voices)}")
        print(f"  {'':8} held-out voices: {', '.join(tier.heldout_voices)}; test sets: {', '.join(tier.test_sets)}")
        print(f"  {'':8} licence: {tier.licence}")
    print()
    print("test sets")
    rows = list_embedded(args.cache_dir)
    print(f"  {'name':10} {'items':>6} {'speakers':>8} {'targets':>9} {'prompts':>9}  description")
    for r in rows:
        if not r.built:
            print(f"  {r.name:10} {'-':>6} {'-':>8} {'-':>9} {'-':>9}  {r.description}")
            print(f"  {'':10} not built yet: run `flashspeech-bench data synth` ({r.path})")
            continue
        counts = f"{r.items:>6} {r.speakers:>8} {r.target_seconds:>8.1f}s {r.prompt_seconds:>8.1f}s"
        print(f"  {r.name:10} {counts}  {r.description}")
        if r.problems:
            print(f"  {'':10} {r.problems} problem(s): run `flashspeech-bench data validate {r.path}`")
    return 0


def _report_problems(manifest, limit: int) -> None:  # type: ignore[no-untyped-def]
    for problem in manifest.problems[:limit]:
        print(f"  {problem}", file=sys.stderr)
    if len(manifest.problems) > limit:
        print(f"  ... and {len(manifest.problems) - limit} more", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    from bench.testsets.protocols import LibriSpeechOptions, load_f5_librispeech_pc, load_librispeech, load_seedtts

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
        status = _check_import(manifest, args.partial)
        if status:
            return status
    elif args.protocol == "f5-librispeech-pc":
        manifest = load_f5_librispeech_pc(args.list, args.root)
    else:
        manifest = load_seedtts(args.meta)
    manifest.write(args.output)
    print(f"{args.output}: {len(manifest)} items, {len(manifest.problems)} problem(s)")
    _report_problems(manifest, args.show)
    if not len(manifest):
        print(f"error: {args.output}: no items imported; nothing to benchmark", file=sys.stderr)
        return 1  # an empty test set is never usable, --strict or not
    return 1 if manifest.problems and args.strict else 0


def _check_import(manifest, partial: bool) -> int:  # type: ignore[no-untyped-def]
    """Refuse an incomplete copy of a known subset (unless `partial`, then recorded); print the record and how
    the set departs from the paper's protocol."""
    from bench.testsets.provenance import IncompleteSource, paper_differences

    record = manifest.provenance
    if record is None:
        return 0
    try:
        manifest.provenance = record.accepted(partial)
    except IncompleteSource as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    src, opts = record.source, record.options
    print(
        f"source {src.root}: {src.subset}, {src.utterances} utterances, {src.speakers} speakers "
        f"(sha256 {src.sha256[:12]}…); {record.filtered} targets of {opts.min_s:g}-{opts.max_s:g} s "
        f"({record.filtered_hours:.2f} h), every {opts.every_nth} -> {record.items} items of {record.speakers} speakers"
    )
    differences = paper_differences(record)
    if not differences:
        print("paper protocol (FlashSpeech Table 1): followed in every recorded respect")
    for d in differences:
        print(f"paper protocol: {d.severity}: {d.reason}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bench.testsets.manifest import load_manifest

    manifest = load_manifest(args.manifest, check_audio=not args.no_audio)
    print(f"{args.manifest}: {len(manifest)} valid items, {len(manifest.problems)} problem(s)")
    _report_problems(manifest, args.show)
    return 1 if manifest.problems else 0


def cmd_phonemize(args: argparse.Namespace) -> int:
    from flashspeech.text.phonemes import Frontend

    frontend = Frontend()
    for text in args.text:
        phonemes = frontend.phonemize(text)
        print(" ".join(phonemes))
        print(" ".join(map(str, frontend.encode(text))))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench.cli.publish import publish
    from bench.config import load_config
    from bench.run import run_benchmark

    overrides = list(args.set or [])
    flags = [("device", "device"), ("output_dir", "output_dir"), ("tracking_uri", "tracking_uri")]
    flags += [("executor", "executor.kind"), ("ray_address", "executor.address")]
    for flag, key in flags:
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={json.dumps(str(value))}")
    if args.seeds is not None:
        overrides.append(f"seeds={json.dumps(args.seeds)}")
    if args.no_mlflow:
        overrides.append("mlflow=false")
    if args.retime or (args.gate and not args.no_retime):
        overrides.append("retime=true")  # a gated run times itself: RTF compares or the gate fails closed
    config = load_config(args.config, overrides)
    if args.check:
        return _check(config)
    gate = _gate_config(args) if args.gate else None  # a bad gate config fails before anything is generated
    if args.gate:
        from bench.gate.run import check_baseline

        try:  # a baseline path that is not a results directory fails now, not after the run
            check_baseline(args.gate)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"--gate {exc}") from exc
    outcome = run_benchmark(config, progress=not args.quiet)
    results = outcome.results
    reports, tracking = publish(outcome, config)
    print(f"\n{config.name}: {outcome.generated} generated, {outcome.cached} from the cache")
    if skipped := _skipped(results.metadata["run"].get("skipped") or []):
        print(skipped)
    print(_headline(results))
    _print_problems(results)
    print(f"\nresults: {outcome.output_dir}")
    for name, path in reports.items():
        if name in ("markdown", "html"):
            print(f"report ({name}): {path}")
    if tracking is not None:
        print(f"mlflow: {tracking.describe()}")
    if args.gate:
        from bench.gate.run import gate as run_gate
        from bench.tracking import tracking_uri

        uri = tracking.uri if tracking is not None else tracking_uri(outcome.output_dir, config.tracking_uri)
        logged = tracking.run_id if tracking is not None else None
        options = _gate_options(args, gate, uri, exclude=(logged,), candidate_label="this run", tag_run=logged)
        return run_gate(results, args.gate, options).exit_status(args.require_baseline)
    return 0


def _check(config) -> int:  # type: ignore[no-untyped-def]
    """`run --check`: the preflight alone, one line per piece; 1 when anything is missing."""
    from bench.run import preflight

    ready = preflight(config)
    for line in ready.loaded:
        print(f"ok: {line}")
    for missing in ready.missing:
        print(f"missing: {missing}", file=sys.stderr)
    print(f"{config.name}: {'ready' if not ready.missing else f'{len(ready.missing)} missing piece(s)'}")
    return 1 if ready.missing else 0


def _gate_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The gate config of `--gate-config`, `--allow-evaluator-change`, `--allow-incomparable` and `--rtf-noise`
    (run --gate, compare)."""
    from bench.gate.rules import GateConfig

    config = GateConfig.from_toml(args.gate_config) if args.gate_config else GateConfig()
    config.allow_evaluator_change |= args.allow_evaluator_change
    config.allow_incomparable = [*config.allow_incomparable, *(getattr(args, "allow_incomparable", None) or [])]
    if args.rtf_noise:
        config.apply_rtf_noise(args.rtf_noise)
    return config


def _gate_options(args: argparse.Namespace, config, uri: str | None, **fields):  # type: ignore[no-untyped-def]
    """The gate's options from the flags of `run --gate` and `compare` (`--gate-report`, the `auto` options)."""
    from bench.gate.baseline import REPO
    from bench.gate.run import GateOptions

    repo = Path(args.git_repo) if args.git_repo else REPO
    return GateOptions(config, uri, args.baseline_branch, repo, args.noise_runs, report_path=args.gate_report, **fields)


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
    """The report's summary metrics (WER, SIM-o, MOS, RTF), with failed generations and defective samples."""
    from reports.headline import SUMMARY

    keys = ["generation.failed", *(f"{c.suite}.{c.metric}" for c in SUMMARY), "similarity.sim_r", "defects.defective"]
    table = results.summary()
    cols = [k for k in keys if k in table.columns]
    return table[cols].to_string(float_format=lambda v: f"{v:.4f}") if cols else "(no aggregates)"


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.gate.compare import load_results
    from bench.gate.run import gate, needs_store

    config = _gate_config(args)
    candidate = load_results(args.candidate, uri=args.tracking_uri)
    if needs_store(args.baseline) and not args.tracking_uri:
        raise SystemExit(f"compare {args.baseline}: needs --tracking-uri (the store to choose the baseline from)")
    options = _gate_options(args, config, args.tracking_uri, exclude=(args.candidate,), candidate_label=args.candidate)
    return gate(candidate, args.baseline, options).exit_status(args.require_baseline)


def cmd_calibrate_rtf(args: argparse.Namespace) -> int:
    from bench.config import load_config
    from bench.gate.rtf_noise import calibrate_rtf

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


def cmd_speed(args: argparse.Namespace) -> int:
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


def _print_and_save(report: dict, table: str, out: str | None) -> int:
    """A benchmark's Markdown table on stdout, and with `out` as PREFIX.json (the report) and PREFIX.md."""
    from flashspeech.foundation.files import write_text_atomic

    print("\n" + table)
    if out:
        write_text_atomic(f"{out}.json", json.dumps(report, indent=1, default=str) + "\n")
        write_text_atomic(f"{out}.md", table + "\n")
        print(f"\nwrote {out}.json and {out}.md")
    return 0


def cmd_scaling(args: argparse.Namespace) -> int:
    from bench.speed.scaling import ScalingConfig, markdown, measure_scaling

    config = ScalingConfig(
        model=args.model,
        device=args.device,
        items=args.items,
        unit_items=args.unit_items,
        batch=args.batch,
        actors=tuple(args.actors),
        cpus_per_actor=args.cpus_per_actor,
        gpus_per_actor=args.gpus_per_actor,
        threads_per_actor=args.threads_per_actor,
        address=args.ray_address,
        local=args.local,
    )
    try:
        report = measure_scaling(config)
    except ValueError as exc:
        raise SystemExit(f"scaling: {exc}") from exc
    return _print_and_save(report, markdown(report), args.out)


def cmd_throughput(args: argparse.Namespace) -> int:
    from bench.speed.throughput import DEFAULT_CASES, Case, markdown, measure_throughput

    try:
        cases = [Case.parse(text) for text in (args.cases or DEFAULT_CASES)]
        report = measure_throughput(cases, args.batches, args.device, args.repeat, args.threads)
    except ValueError as exc:
        raise SystemExit(f"throughput: {exc}") from exc
    return _print_and_save(report, markdown(report), args.out)


def cmd_model_card(args: argparse.Namespace) -> int:
    from reports.model_card import write_card

    print(f"wrote {write_card(args.results, args.out, args.notes)}")
    return 0


def cmd_decoder_card(args: argparse.Namespace) -> int:
    from reports.decoder_card import write_card

    print(f"wrote {write_card(args.decoder, args.results, args.out)}")
    return 0


def cmd_shapes(args: argparse.Namespace) -> int:
    from bench.results import Results
    from reports.shapes import render_shapes

    lines = [
        "# The paper's ablation shapes at our scale",
        "",
        "Written by `flashspeech-bench shapes --results " + " ".join(args.results) + "`; see reports/shapes.py for",
        "what each shape claims and how it is checked. Do not edit the numbers by hand.",
        "",
    ]
    for directory in args.results:
        found = render_shapes(Results.load(directory))
        lines += [f"## `{directory}`", ""] + (found or ["No shape's systems are in this run.", ""])
    out = Path(args.out)
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}")
    return 0
