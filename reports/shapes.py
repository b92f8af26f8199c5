"""The paper's ablation shapes, checked on our own runs: one table per shape and test set, and a verdict.

A shape is what an ablation table of the paper says qualitatively, not its numbers (our tiny models and
offline predictors are not the paper's):

- `steps` (Table 3): FlashSpeech at 1 and 2 steps about equal, and 2 steps at least as good as 4, on MOS and
  SIM-o. "About equal" means the two 95 % bootstrap intervals overlap; "at least as good" compares the point
  estimates.
- `adversarial` (Table 2): the adversarial stage raises MOS and SIM-o over consistency training alone
  (systems `consistency-only@2` and `flashspeech@2` in one run).
- `diffusion-steps` (the baseline's own curve, which the paper's speed-up presumes): the diffusion baseline's
  quality rises with Heun steps up to a plateau: WER and MOS at 16 steps better than at 4, and the 95 %
  intervals at 32 and 64 steps overlapping.
- `alpha-pitch`, `alpha-duration` (Tables 4, 5): a larger refinement scale alpha brings the pitch (duration)
  distribution closer to the ground truth's (JSD falls from alpha 0 to 1) at some cost in WER (WER at 1 is
  not below WER at 0). The JSD's ground-truth split-half floor is shown next to it: differences below it
  mean nothing.

`render_shapes(results)` renders every shape whose systems the run holds; `flashspeech-bench shapes`
writes them for several runs into one Markdown file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.results import Results
from reports.tables import Stat, fmt, fmt_ci, stat

Values = dict[str, dict[str, Stat | None]]  # row label -> metric key -> aggregate


@dataclass(frozen=True)
class Column:
    suite: str
    metric: str
    header: str
    spec: str = ".3f"
    floor: str | None = None  # a metric holding this one's noise floor, shown next to it


@dataclass(frozen=True)
class Shape:
    name: str
    title: str
    claim: str
    rows: tuple[tuple[str, str, int], ...]  # (label, system series (config entry), sampling steps)
    columns: tuple[Column, ...]
    check: Callable[[Values], tuple[bool, str]]


MOS = Column("mos", "mos", "DistillMOS", ".2f")
SIM = Column("similarity", "sim_o", "SIM-o")
WER = Column("wer", "wer_corpus", "WER")


def _v(values: Values, row: str, metric: str) -> float:
    s = values[row].get(metric)
    return s.value if s is not None else float("nan")


def _overlap(a: Stat | None, b: Stat | None) -> bool:
    if a is None or b is None or not (a.has_ci and b.has_ci):
        return False
    return a.ci_low <= b.ci_high and b.ci_low <= a.ci_high


def _check_steps(values: Values) -> tuple[bool, str]:
    parts, ok = [], True
    for metric, label in (("mos", "MOS"), ("sim_o", "SIM-o")):
        near = _overlap(values["1 step"][metric], values["2 steps"][metric])
        ge = _v(values, "2 steps", metric) >= _v(values, "4 steps", metric)
        ok &= near and ge
        parts.append(f"{label}: 1 vs 2 {'overlap' if near else 'differ'}, 2 {'>=' if ge else '<'} 4")
    return ok, "; ".join(parts)


def _check_adversarial(values: Values) -> tuple[bool, str]:
    parts, ok = [], True
    for metric, label in (("mos", "MOS"), ("sim_o", "SIM-o")):
        before, after = _v(values, "consistency training", metric), _v(values, "+ adversarial", metric)
        ok &= after > before
        parts.append(f"{label} {before:.3f} -> {after:.3f}")
    return ok, "; ".join(parts)


def _check_diffusion_steps(values: Values) -> tuple[bool, str]:
    rises = _v(values, "16", "wer_corpus") < _v(values, "4", "wer_corpus") and _v(values, "16", "mos") > _v(
        values, "4", "mos"
    )
    plateau = all(_overlap(values["32"][m], values["64"][m]) for m in ("wer_corpus", "mos"))
    detail = ", ".join(f"{n}: WER {_v(values, n, 'wer_corpus'):.3f} MOS {_v(values, n, 'mos'):.2f}" for n in values)
    return (
        rises and plateau,
        f"{'rises' if rises else 'does not rise'} from 4 to 16, {'a' if plateau else 'no'} plateau at 32-64; {detail}",
    )


def _check_alpha(jsd: str) -> Callable[[Values], tuple[bool, str]]:
    def check(values: Values) -> tuple[bool, str]:
        j0, j1 = _v(values, "alpha 0", jsd), _v(values, "alpha 1", jsd)
        w0, w1 = _v(values, "alpha 0", "wer_corpus"), _v(values, "alpha 1", "wer_corpus")
        floor = _v(values, "alpha 0", f"{jsd}_floor")
        measurable = j0 > floor  # at or below the floor, a fall from alpha 0 means nothing
        ok = measurable and j1 < j0 and w1 >= w0
        note = "" if measurable else ": alpha 0 is already at the ground-truth floor"
        return ok, f"{jsd} {j0:.4f} -> {j1:.4f} (floor {floor:.4f}{note}); WER {w0:.3f} -> {w1:.3f}"

    return check


def _alpha_shape(stream: str, table: int) -> Shape:
    jsd = f"{stream}_jsd"
    return Shape(
        name=f"alpha-{stream}",
        title=f"Table {table}: alpha for {stream} (the other stream's alpha 0), FlashSpeech at 2 steps",
        claim=f"{stream} JSD falls as alpha rises from 0 to 1 (from above the floor), and WER does not fall",
        rows=tuple((f"alpha {a}", f"{stream}-alpha-{a}", 2) for a in ("0", "0.2", "1")),
        columns=(Column("prosody", jsd, f"{stream} JSD", ".4f", floor=f"{jsd}_floor"), WER),
        check=_check_alpha(jsd),
    )


SHAPES = (
    Shape(
        name="steps",
        title="Table 3: sampling steps",
        claim="1 step about equals 2 steps, and 2 steps are at least as good as 4, on MOS and SIM-o",
        rows=(("1 step", "flashspeech", 1), ("2 steps", "flashspeech", 2), ("4 steps", "flashspeech", 4)),
        columns=(MOS, SIM),
        check=_check_steps,
    ),
    Shape(
        name="adversarial",
        title="Table 2: the adversarial stage, at 2 steps",
        claim="adversarial training raises MOS and SIM-o over consistency training alone",
        rows=(("consistency training", "consistency-only", 2), ("+ adversarial", "flashspeech", 2)),
        columns=(MOS, SIM),
        check=_check_adversarial,
    ),
    Shape(
        name="diffusion-steps",
        title="The diffusion baseline by Heun steps",
        claim="(implied by the speed-up comparison) the baseline's quality rises with steps up to a plateau",
        rows=tuple((str(n), "diffusion-heun", n) for n in (4, 8, 16, 32, 64)),
        columns=(WER, MOS),
        check=_check_diffusion_steps,
    ),
    _alpha_shape("pitch", 4),
    _alpha_shape("duration", 5),
)


def shape_values(results: Results, shape: Shape, testset: str) -> Values | None:
    """The shape's aggregates on one test set, or None when the run lacks one of its systems."""
    record = results.record
    keys = [record.find(testset, series, steps) for _, series, steps in shape.rows]
    if any(key is None for key in keys):
        return None
    values: Values = {}
    for (label, _, _), key in zip(shape.rows, keys, strict=True):
        metrics: dict[str, Stat | None] = {}
        for col in shape.columns:
            metrics[col.metric] = stat(results, key.label, col.suite, col.metric)
            if col.floor:
                metrics[col.floor] = stat(results, key.label, col.suite, col.floor)
        values[label] = metrics
    return values


def render_shape(shape: Shape, values: Values, testset: str) -> list[str]:
    header = "| | " + " | ".join(c.header + (" (floor)" if c.floor else "") for c in shape.columns) + " |"
    lines = [f"### {shape.title}: `{testset}`", "", header, "|---" * (len(shape.columns) + 1) + "|"]
    for label, _, _ in shape.rows:
        cells = []
        for col in shape.columns:
            cell = fmt_ci(values[label][col.metric], col.spec)
            if col.floor:
                floor = values[label].get(col.floor)
                cell += f" ({fmt(floor.value if floor else None, col.spec)})"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ok, detail = shape.check(values)
    verdict = "reproduced" if ok else "**not reproduced**"
    lines += ["", f"Paper: {shape.claim}. Here: {verdict} ({detail}).", ""]
    return lines


def render_shapes(results: Results, shapes: Sequence[Shape] = SHAPES) -> list[str]:
    """Markdown for every shape the run holds, per test set (nothing for shapes it lacks)."""
    lines: list[str] = []
    for shape in shapes:
        for testset in results.record.testsets:
            values = shape_values(results, shape, testset)
            if values is not None:
                lines += render_shape(shape, values, testset)
    return lines
