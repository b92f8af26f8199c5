"""How an imported test set was made, recorded in its manifest, and how that record is set against the paper's
protocol: the item set is proven from what the import saw and did, never inferred from a name.

`data import librispeech` writes an `ImportRecord` as the manifest's first line (``{"manifest": {...}}``): the
source tree (root, subset folder, utterance and speaker counts, a digest of every file's path and size and every
transcript), the selection (`LibriSpeechOptions`: duration filter, prompt length, seed, every n-th, max items),
what it yielded (targets passing the filter, their hours, items, speakers, problems), where the texts come from,
and a digest of the item lines written after it, so an edited manifest no longer matches its record.

The FlashSpeech paper's protocol (`PAPER_SELECTION`) follows VALL-E: LibriSpeech test-clean (2,620 utterances,
40 speakers, as LibriSpeech ships it), targets of 4-10 s (VALL-E: "a 2.2 hours subset and 40 unique speakers"),
3 s prompts cut from another utterance of the same speaker; the official inference script keeps every 10th case,
so the paper's set is about a tenth of those targets. The official list itself was never released: which tenth,
and which prompt clip, differ from ours even when everything checkable matches. `paper_differences` lists every
way a record departs from that protocol, each with its severity.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from flashspeech import __version__
from flashspeech.foundation.fields import from_table

HEADER_KEY = "manifest"  # a manifest's first line {"manifest": {...}} is its import record


@dataclass(frozen=True)
class LibriSpeechOptions:
    """Target filter, prompt length, seed and subsampling (every n-th target, then at most max_items)."""

    min_s: float = 4.0
    max_s: float = 10.0
    prompt_s: float = 3.0
    seed: int = 0
    every_nth: int = 1
    max_items: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_s <= self.max_s:
            raise ValueError(f"need 0 <= min_s <= max_s, got {self.min_s}, {self.max_s}")
        if self.prompt_s <= 0:
            raise ValueError(f"prompt_s must be > 0, got {self.prompt_s}")
        if self.every_nth < 1:
            raise ValueError(f"every_nth must be >= 1, got {self.every_nth}")
        if self.max_items is not None and self.max_items < 0:
            raise ValueError(f"max_items must be >= 0 or None, got {self.max_items}")


# The paper's selection (VALL-E's filter and prompt, the official script's every 10th target).
PAPER_SELECTION = LibriSpeechOptions(min_s=4.0, max_s=10.0, prompt_s=3.0, every_nth=10)
PAPER_SUBSET = "test-clean"
PAPER_FILTERED_HOURS = 2.2  # VALL-E's statement for test-clean at 4-10 s, rounded to 0.1 h


@dataclass(frozen=True)
class Subset:
    """A LibriSpeech subset as distributed (its README and the corpus paper): utterances and speakers."""

    name: str
    utterances: int
    speakers: int


SUBSETS = {s.name: s for s in (Subset("test-clean", 2620, 40), Subset("test-other", 2939, 33))}


@dataclass(frozen=True)
class SourceRecord:
    """The tree an import read: its root, subset folder name, counts and a digest of its listing and texts."""

    root: str
    subset: str
    utterances: int  # flac files with a transcript line
    speakers: int
    sha256: str  # over every flac's relative path and size and every transcript file's bytes

    def mismatch(self) -> str | None:
        """Why this is not the complete subset its folder name says (None: it is, or the name is not a known one)."""
        known = SUBSETS.get(self.subset)
        if known is None or (known.utterances, known.speakers) == (self.utterances, self.speakers):
            return None
        return (
            f"found {self.utterances} utterances of {self.speakers} speakers, but LibriSpeech {known.name} has "
            f"{known.utterances} of {known.speakers}: an incomplete or modified copy"
        )


class IncompleteSource(ValueError):
    """A LibriSpeech copy that is not the complete subset its folder name says."""


@dataclass(frozen=True)
class ImportRecord:
    """What `data import` read, chose and wrote; the first line of the manifest it wrote."""

    protocol: str
    source: SourceRecord
    options: LibriSpeechOptions
    filtered: int  # targets passing the duration filter, before every n-th and max items
    filtered_hours: float
    items: int
    speakers: int
    problems: int  # targets (or source entries) left out, each listed at import
    text: str  # where the item texts come from, and their form
    partial: bool = False  # imported with --partial although the source is not the complete subset
    items_sha256: str = ""  # of the item lines that follow the record; set when the manifest is written
    tool: str = f"flashspeech-bench {__version__}"

    @property
    def expected_items(self) -> int:
        """Items the selection implies from the filtered targets (every n-th, then max items)."""
        n = math.ceil(self.filtered / self.options.every_nth)
        return n if self.options.max_items is None else min(n, self.options.max_items)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = HEADER_KEY) -> ImportRecord:
        """Built and checked field by field (FieldError naming the dotted key)."""
        return from_table(cls, data, where)

    def accepted(self, partial: bool) -> ImportRecord:
        """The record of an import that may go ahead: IncompleteSource when the source is not the complete subset
        its folder names, unless `partial` accepts it (then recorded, and not comparable to the paper)."""
        mismatch = self.source.mismatch()
        if mismatch is not None and not partial:
            raise IncompleteSource(
                f"{self.source.root}: {mismatch}; pass --partial to import it anyway (then not comparable to the paper)"
            )
        return replace(self, partial=mismatch is not None)

    def with_items(self, lines: Iterable[str]) -> ImportRecord:
        return replace(self, items_sha256=lines_sha256(lines))


def lines_sha256(lines: Iterable[str]) -> str:
    """The digest of a manifest's item lines (stripped, blank lines skipped), as written and as read back."""
    h = hashlib.sha256()
    for line in lines:
        if line.strip():
            h.update(line.strip().encode("utf-8") + b"\n")
    return h.hexdigest()


def source_sha256(root: Path, flacs: Iterable[Path], transcripts: Iterable[Path]) -> str:
    """A digest of a LibriSpeech tree: every flac's path relative to `root` and size, every transcript's bytes."""
    h = hashlib.sha256()
    for path in sorted(flacs):
        h.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
    for path in sorted(transcripts):
        h.update(f"{path.relative_to(root).as_posix()}\n".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


SEVERE, MINOR = "not comparable", "approximate"


@dataclass(frozen=True)
class Difference:
    """One way an imported set departs from the paper's protocol; `severity` is SEVERE or MINOR."""

    severity: str
    reason: str


def paper_differences(
    record: ImportRecord | None, *, ran_items: int | None = None, items_sha256: str | None = None
) -> list[Difference]:
    """Every departure of an imported set from the paper's protocol (empty: it follows it in all that can be
    checked). `ran_items` / `items_sha256`: what a run loaded from the manifest, checked against the record."""
    if record is None:
        return [
            Difference(SEVERE, "no import record: make the manifest with `flashspeech-bench data import librispeech`")
        ]
    out: list[Difference] = []
    src, opts, paper = record.source, record.options, PAPER_SELECTION
    if record.protocol != "librispeech":
        out.append(Difference(SEVERE, f"protocol {record.protocol!r}, not LibriSpeech (VALL-E cross-sentence)"))
    if src.subset != PAPER_SUBSET:
        out.append(Difference(SEVERE, f"imported from {src.subset!r}, not LibriSpeech {PAPER_SUBSET}"))
    elif (why := src.mismatch()) is not None:
        out.append(Difference(SEVERE, why))
    filt = (opts.min_s, opts.max_s, opts.prompt_s)
    if filt != (paper.min_s, paper.max_s, paper.prompt_s):
        out.append(
            Difference(
                SEVERE,
                f"targets {opts.min_s:g}-{opts.max_s:g} s with {opts.prompt_s:g} s prompts, not "
                f"{paper.min_s:g}-{paper.max_s:g} s with {paper.prompt_s:g} s",
            )
        )
    if opts.max_items is not None:
        out.append(Difference(SEVERE, f"capped at the first {opts.max_items} targets (max_items)"))
    if opts.every_nth != paper.every_nth:
        kept = "every target" if opts.every_nth == 1 else f"every {opts.every_nth}th target"
        out.append(Difference(MINOR, f"{kept}, not every {paper.every_nth}th as the official script"))
    if record.problems:
        out.append(Difference(MINOR, f"{record.problems} target(s) or source entries left out at import"))
    if record.items != record.expected_items:
        out.append(Difference(MINOR, f"{record.items} items, the selection implies {record.expected_items}"))
    hours = record.filtered_hours
    if src.subset == PAPER_SUBSET and src.mismatch() is None and abs(hours - PAPER_FILTERED_HOURS) >= 0.05:
        out.append(Difference(MINOR, f"the 4-10 s targets last {hours:.2f} h, VALL-E reports {PAPER_FILTERED_HOURS} h"))
    if ran_items is not None and ran_items != record.items:
        out.append(Difference(SEVERE, f"{ran_items} of the {record.items} imported items ran"))
    if items_sha256 is not None and items_sha256 != record.items_sha256:
        out.append(Difference(SEVERE, "the manifest's items were changed after the import (digest differs)"))
    return out
