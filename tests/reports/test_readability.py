"""A report read at a glance: a short headline per test set that fits a 1280 px page, every other number one click
away, and figures whose labels never overlap, for eight systems close in speed and WER on two test sets."""

from __future__ import annotations

import itertools
import re

import pandas as pd
import pytest
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

from bench.results import Results
from reports.html import render_html
from reports.markdown import render_markdown
from reports.plots import frontier, frontier_figure, prosody_diversity, prosody_diversity_figure
from tests.fixtures.images import PNG_SIGNATURE
from tests.fixtures.toy import CROWDED_SYSTEMS, crowded_results
from tests.reports.test_reports import CHROMIUM, chromium

TESTSETS = ("librispeech-pc", "seed-tts-en")
SUMMARY = ["System", "WER ↓", "SIM-o ↑", "MOS ↑", "RTF ↓", "Failures"]


def with_rows(results: Results, suite: str, metric: str, values: dict[str, tuple[float, float, float]]) -> Results:
    """Aggregate rows (value, ci_low, ci_high) of a suite the toy run does not have."""
    rows = [
        {"system": system, "suite": suite, "metric": metric, "value": v, "ci_low": lo, "ci_high": hi, "n_items": 6,
         "higher_is_better": None, "unit": ""}
        for system, (v, lo, hi) in values.items()
    ]  # fmt: skip
    aggregates = pd.concat([results.aggregates, pd.DataFrame(rows)], ignore_index=True)
    return Results(results.items, results.groups, aggregates, results.metadata)


@pytest.fixture(scope="module")
def crowded() -> Results:
    """The crowded run with a MOS suite for the FlashSpeech systems and two defective samples."""
    results = crowded_results()
    steps = {s: m["steps"] for s, m in results.metadata["systems"].items() if "flashspeech@" in s}
    results = with_rows(
        results, "mos", "mos", {s: (3.0 + 0.1 * n, 2.9 + 0.1 * n, 3.1 + 0.1 * n) for s, n in steps.items()}
    )
    defective = f"{TESTSETS[1]}:flashspeech@8"
    results = with_rows(results, "defects", "defective", {defective: (2 / 12, 0.0, 0.4)})  # the rate
    results = with_rows(results, "defects", "defective_count", {defective: (2.0, 2.0, 2.0)})
    return with_rows(results, "defects", "scored", {defective: (12.0, 12.0, 12.0)})


def md_rows(section: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]


# --- the headline ------------------------------------------------------------------------------------------------


def test_markdown_headline_is_short_and_grouped_by_test_set(crowded):
    md = render_markdown(crowded, paper_view=False)
    headline = md[md.index("## Headline") : md.index("## Full results")]
    full = md[md.index("## Full results (95 % CI)") : md.index("## Failures")]
    sections = re.split(r"^### ", headline, flags=re.M)[1:]
    assert [s.split(" ", 1)[0] for s in sections] == list(TESTSETS)
    for testset, section in zip(TESTSETS, sections, strict=True):
        assert section.startswith(f"{testset} (6 items)")
        header, _rule, *rows = md_rows(section)
        assert header == SUMMARY
        assert [r[0] for r in rows] == [name for name, _, _ in CROWDED_SYSTEMS]  # short names, ground truth last
        full_rows = {r[0]: r for r in md_rows(full)}
        full_header = md_rows(full)[0]
        for row in rows:  # the same numbers as the full table, without their CIs
            reference = full_rows[f"{testset}:{row[0]}"]
            for column in ("WER ↓", "SIM-o ↑", "RTF ↓"):
                cell = reference[full_header.index(column)]
                assert cell == "–" or cell.startswith(row[header.index(column)] + " ["), (row, column)
    assert not re.search(r"\[(\d|no CI)", headline)  # no CIs in the headline
    cells = {r[0]: r for r in md_rows(sections[1])}
    assert cells["flashspeech@8"][SUMMARY.index("Failures")] == "0 / 12, 2 / 12 defective"
    assert cells["flashspeech@1"][SUMMARY.index("Failures")] == "1 / 12"
    assert cells["flashspeech@2"][SUMMARY.index("MOS ↑")] == "3.20" and cells["ground_truth"][3] == "–"
    assert "spk-ID" not in headline and "spk-ID acc ↑" in full  # every other metric is in the full table
    assert len(re.findall(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", full)) >= 16 * 3


def test_headline_without_mos_or_defects_has_no_such_column():
    md = render_markdown(crowded_results(), paper_view=False)
    headline = md[md.index("## Headline") : md.index("## Full results")]
    assert md_rows(headline)[0] == [c for c in SUMMARY if c != "MOS ↑"]
    assert not any("defective" in cell for row in md_rows(headline) for cell in row)


def test_html_headline_has_a_row_per_test_set_and_the_full_table_one_click_away(crowded, tmp_path):
    text = render_html(crowded, tmp_path).read_text(encoding="utf-8")
    headline = text[text.index('<table class="headline') : text.index("</table>", text.index('<table class="headline'))]
    assert all(f"Test set: {t} (6 items)" in headline for t in TESTSETS)
    assert headline.count("<tr") == 1 + 2 + 16 and "[" not in headline
    assert re.search(r'<details class="full" id="full-results"><summary>Full results', text)
    full = text[text.index('id="full-results"') :]
    assert "seed-tts-en:flashspeech@8" in full and "spk-ID acc ↑" in full and "WER: corpus WER" in full
    assert '<td class="num bad">0 / 12, 2 / 12 defective</td>' in headline


# --- figures -----------------------------------------------------------------------------------------------------


def drawn_texts(fig: Figure) -> list[Text]:
    """Every text the figure draws: titles, axis labels, tick labels inside the view, legend entries, annotations."""
    fig.draw_without_rendering()
    texts = []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        texts.append(text)
    for ax in fig.axes:  # tick labels the locator made but the axis does not draw
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low <= tick.get_loc() <= high:
                    texts = [t for t in texts if t is not tick.label1 and t is not tick.label2]
    return texts


def text_box(text: Text, renderer: RendererBase) -> Bbox:
    """Where the text's glyphs are (an annotation's leader line left out)."""
    return Text.get_window_extent(text, renderer)


def assert_no_overlap(fig: Figure) -> list[Text]:
    """Assert that no two drawn texts overlap; returns them."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    texts = drawn_texts(fig)
    boxes = [(t.get_text(), text_box(t, renderer)) for t in texts]
    clashes = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]
    assert not clashes, clashes
    return texts


def test_frontier_labels_do_not_overlap(crowded):
    made = frontier_figure(crowded)
    assert made is not None
    fig, left_out = made
    assert left_out == []  # every step count found a free spot
    texts = assert_no_overlap(fig)
    renderer = FigureCanvasAgg(fig).get_renderer()
    steps = [t for t in texts if isinstance(t, Annotation)]
    with_steps = [s for s in CROWDED_SYSTEMS if s[1] is not None]
    assert sorted(t.get_text() for t in steps) == sorted([str(s[1]) for s in with_steps] * len(TESTSETS))
    for label in steps:  # inside its panel, clear of every marker
        box = text_box(label, renderer)
        assert label.axes.get_window_extent(renderer).contains(box.x0, box.y0)
        for line in label.axes.get_lines():
            if line.get_marker() in ("None", "", " ", None):
                continue
            for x, y in label.axes.transData.transform(line.get_xydata()):
                assert not box.overlaps(Bbox.from_bounds(x - 2, y - 2, 4, 4)), label.get_text()
    titles = sorted(ax.get_title() for ax in fig.axes if ax.get_visible())
    assert titles == [f"test set: {t}" for t in TESTSETS]
    assert all(ax.get_xscale() == "log" for ax in fig.axes if ax.get_visible())
    assert "compute s / audio s" in fig.axes[0].get_xlabel() and "fraction" in fig.axes[0].get_ylabel()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["flashspeech", "diffusion-heun", "codec_resynthesis", "ground truth WER (no RTF)"]
    plot = frontier(crowded)
    assert plot.png is not None and plot.png.startswith(PNG_SIGNATURE) and plot.wide


def test_prosody_diversity_labels_do_not_overlap(crowded):
    fig = prosody_diversity_figure(crowded)
    assert fig is not None
    assert_no_overlap(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == f"test set: {TESTSETS[0]}" and labels.count("flashspeech@1") == 2
    assert len(fig.axes) == 4 and all(ax.get_xlabel() for ax in fig.axes)
    assert prosody_diversity(crowded).wide


# --- a real headless browser at 1280 px ---------------------------------------------------------------------------

MEASURE = """<script>
window.addEventListener("load", function () {
  var wrap = document.getElementById("headline-table"), table = wrap.querySelector("table");
  var root = document.documentElement, b = document.body;
  b.setAttribute("data-wrap-scroll", wrap.scrollWidth);
  b.setAttribute("data-wrap-client", wrap.clientWidth);
  b.setAttribute("data-table-width", Math.ceil(table.getBoundingClientRect().width));
  b.setAttribute("data-page-scroll", root.scrollWidth);
  b.setAttribute("data-page-client", root.clientWidth);
  b.setAttribute("data-full-open", document.getElementById("full-results").open);
  var wide = Array.from(document.querySelectorAll("figure.wide img"));
  b.setAttribute("data-wide-figures", wide.length);
  b.setAttribute("data-wide-scale", Math.min.apply(null, wide.map(function (i) { return i.width / i.naturalWidth; })));
  b.setAttribute("data-measured", "yes");
});
</script>"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_headline_fits_1280_px_without_scrolling(crowded, tmp_path):
    report = render_html(crowded, tmp_path / "report", audio_per_system=0)
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>" + MEASURE, 1), encoding="utf-8")
    run = chromium(tmp_path, "--window-size=1280,1000", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    body = re.search(r"<body[^>]*>", run.stdout)
    assert body is not None, run.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(0)))
    assert attrs.get("data-measured") == "yes", attrs
    assert int(attrs["data-page-client"]) == 1280, attrs
    assert int(attrs["data-wrap-scroll"]) <= int(attrs["data-wrap-client"]), attrs  # the headline does not scroll
    assert int(attrs["data-table-width"]) <= int(attrs["data-wrap-client"]), attrs
    assert int(attrs["data-page-scroll"]) <= int(attrs["data-page-client"]), attrs  # nor does the page
    assert attrs["data-full-open"] == "false", attrs  # the full table is one click away, folded
    assert attrs["data-wide-figures"] == "2" and float(attrs["data-wide-scale"]) >= 0.85, attrs  # near full size
