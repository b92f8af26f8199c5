"""CLI pieces of regression tracking: `history`, `accept`, and the options of `--gate auto` (the gate itself:
`bench.gate.run`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_history_parser(commands: Any) -> None:
    from bench.gate.history import DEFAULT_METRICS

    p = commands.add_parser("history", help="trend report of a config's runs across commits (from MLflow)")
    p.add_argument("--tracking-uri", dest="tracking_uri", required=True, help="the MLflow store (sqlite:///..., http)")
    p.add_argument("--config", default=None, help="the runs of this config name (default: every config)")
    p.add_argument("--branch", default=None, help="only this branch's runs (default: all)")
    p.add_argument("--metric", action="append", default=None, help=f"metric to follow (default: {DEFAULT_METRICS})")
    p.add_argument("--last", type=int, default=None, help="the most recent N runs only")
    p.add_argument("--window", type=int, default=8, help="runs before a point that make its band")
    p.add_argument("--k", type=float, default=3.0, help="band half-width in robust standard deviations")
    p.add_argument("--out", default="outputs/history", help="directory for history.md / .html / .csv")
    p.add_argument("--fail-on-departure", action="store_true", help="exit 3 when the latest run left a band (worse)")
    p.set_defaults(func=cmd_history)


def add_accept_parser(commands: Any) -> None:
    p = commands.add_parser(
        "accept",
        help="accept a logged run as a baseline after a deliberate change (`--gate auto` then compares with it)",
    )
    p.add_argument("run", help="the MLflow run id, or tag:KEY=VALUE (e.g. tag:commit=abc1234,config=smoke)")
    p.add_argument("--tracking-uri", dest="tracking_uri", required=True, help="the MLflow store (sqlite:///..., http)")
    p.add_argument("--reason", required=True, help="why the change is deliberate (kept on the run as a tag)")
    p.set_defaults(func=cmd_accept)


def cmd_accept(args: argparse.Namespace) -> int:
    """Tag a run `flashspeech_bench.accepted = <reason>`: `--gate auto` may then choose it although its own gate
    failed, so the commits after a deliberate change are gated against the new level, not the old one."""
    from bench.gate.baseline import find_tagged
    from bench.gate.store import ACCEPTED_TAG, list_runs, tag_run

    if args.run.startswith("tag:"):
        run = find_tagged(args.tracking_uri, args.run)
    else:
        found = [r for r in list_runs(args.tracking_uri) if r.run_id == args.run]
        if not found:
            raise LookupError(f"accept {args.run}: no benchmark run with that id at {args.tracking_uri}")
        run = found[0]
    if not args.reason.strip():
        raise ValueError("accept --reason: say why the change is deliberate")
    tag_run(args.tracking_uri, run.run_id, {ACCEPTED_TAG: args.reason.strip()})
    gate = run.gate or "not gated"
    print(f"accepted run {run.label} (gate: {gate}) as a baseline: {args.reason.strip()}")
    return 0


def add_auto_gate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline-branch", default="main", help="with auto: the branch baselines come from")
    p.add_argument(
        "--git-repo", default=None, help="with auto: the clone whose history decides ancestry (default: ours)"
    )
    p.add_argument(
        "--noise-runs",
        type=int,
        default=0,
        metavar="N",
        help="with auto: widen each margin to 3 sd of the metric over the N nearest baseline runs (N >= 3)",
    )


def cmd_history(args: argparse.Namespace) -> int:
    from bench.gate.history import DEFAULT_METRICS, HistoryConfig, history_table
    from bench.gate.run import publish_markdown
    from reports.history_report import write_history

    config = HistoryConfig(
        config=args.config,
        branch=args.branch,
        metrics=tuple(args.metric or DEFAULT_METRICS),
        last=args.last,
        window=args.window,
        k=args.k,
    )
    table, runs = history_table(args.tracking_uri, config)
    paths = write_history(table, runs, args.out, args.config, args.branch)
    publish_markdown(paths["markdown"].read_text(encoding="utf-8"))
    for name, path in paths.items():
        print(f"{name}: {path}")
    if args.fail_on_departure and len(table):
        latest = table[table["order"] == table["order"].max()]
        return 3 if (latest["left_band"] == "worse").any() else 0
    return 0
