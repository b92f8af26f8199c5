"""The import record a LibriSpeech manifest carries, and the paper-protocol verdict decided from it (never from
the set's name), on a fake test-clean tree in the real layout."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.cli import main
from bench.testsets import provenance
from bench.testsets.manifest import load_manifest
from bench.testsets.protocols import LibriSpeechOptions, load_librispeech
from bench.testsets.provenance import MINOR, PAPER_SELECTION, SEVERE, Subset, paper_differences
from tests.bench.testsets.test_protocols import UTTERANCES, make_librispeech

# the fake tree: 12 utterances of 3 speakers, 7 targets of 4-10 s (the first has no prompt source); COMPLETE drops
# that speaker: 10 utterances of 2 speakers, 6 targets, each with a prompt
COMPLETE = {utt: s for utt, s in UTTERANCES.items() if not utt.startswith("1089-")}


@pytest.fixture
def libri(tmp_path: Path) -> Path:
    return make_librispeech(tmp_path / "LibriSpeech" / "test-clean")


@pytest.fixture
def complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tree that stands for the complete test-clean (LibriSpeech's is 2,620 utterances of 40 speakers)."""
    monkeypatch.setitem(provenance.SUBSETS, "test-clean", Subset("test-clean", 10, 2))
    return make_librispeech(tmp_path / "complete" / "test-clean", COMPLETE)


def test_the_record_holds_source_selection_and_counts(libri: Path, tmp_path: Path) -> None:
    options = LibriSpeechOptions(seed=3, every_nth=2)
    manifest = load_librispeech(libri, options)
    record = manifest.provenance
    assert record is not None and record.protocol == "librispeech"
    assert (record.source.subset, record.source.utterances, record.source.speakers) == ("test-clean", 12, 3)
    assert record.source.root == str(libri.resolve()) and len(record.source.sha256) == 64
    assert record.options == options
    assert record.filtered == 7 and record.expected_items == 4  # targets 0, 2, 4, 6 of the 7
    assert record.filtered_hours == pytest.approx(sum(s for s in UTTERANCES.values() if 4 <= s <= 10) / 3600, abs=1e-4)
    assert (record.items, record.problems) == (len(manifest.items), len(manifest.problems))
    assert "no punctuation" in record.text

    path = manifest.write(tmp_path / "ls.jsonl")
    header = json.loads(path.read_text().splitlines()[0])
    assert set(header) == {"manifest"} and header["manifest"]["options"]["every_nth"] == 2
    back = load_manifest(path)
    assert back.ok and back.items == manifest.items
    assert back.provenance == replace(record, items_sha256=back.items_sha256)


def test_the_source_digest_follows_files_and_transcripts(tmp_path: Path) -> None:
    a = load_librispeech(make_librispeech(tmp_path / "a" / "test-clean")).provenance
    b = load_librispeech(make_librispeech(tmp_path / "b" / "test-clean")).provenance
    assert a.source.sha256 == b.source.sha256  # the same tree in another place
    trans = tmp_path / "b" / "test-clean" / "19" / "198" / "19-198.trans.txt"
    trans.write_text(trans.read_text().replace("WORDS", "VERBS", 1))
    c = load_librispeech(tmp_path / "b" / "test-clean").provenance
    assert c.source.sha256 != a.source.sha256


def test_an_incomplete_copy_is_an_import_error_unless_partial(libri: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ls.jsonl"
    assert main(["data", "import", "librispeech", str(libri), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "found 12 utterances of 3 speakers, but LibriSpeech test-clean has 2620 of 40" in err
    assert "--partial" in err and not out.exists()
    assert main(["data", "import", "librispeech", str(libri), "-o", str(out), "--partial"]) == 0
    record = load_manifest(out).provenance
    assert record.partial
    assert any(d.severity == SEVERE and "incomplete" in d.reason for d in paper_differences(record))


def test_the_paper_selection_on_the_complete_subset_is_comparable(complete, tmp_path, capsys) -> None:
    out = tmp_path / "ls.jsonl"
    args = ["data", "import", "librispeech", str(complete), "-o", str(out), "--every-nth", "10"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "10 utterances, 2 speakers" in printed and "every 10 -> 1 items" in printed
    manifest = load_manifest(out)
    differences = paper_differences(manifest.provenance, ran_items=len(manifest), items_sha256=manifest.items_sha256)
    # only the fake tree's hours differ from VALL-E's 2.2 h: the selection itself is the paper's
    assert [d.severity for d in differences] == [MINOR] and "VALL-E reports 2.2 h" in differences[0].reason
    assert manifest.provenance.options == replace(PAPER_SELECTION, seed=0)


def test_departures_from_the_paper_protocol_are_named(libri: Path, complete: Path) -> None:
    def reasons(options: LibriSpeechOptions, root: Path = complete) -> dict[str, str]:
        record = load_librispeech(root, options).provenance
        return {d.reason: d.severity for d in paper_differences(record)}

    every = reasons(LibriSpeechOptions())
    assert every["every target, not every 10th as the official script"] == MINOR
    dropped = reasons(LibriSpeechOptions(), libri)  # the 3-speaker tree: one speaker has nothing to cut a prompt from
    assert dropped["1 target(s) or source entries left out at import"] == MINOR
    assert dropped["6 items, the selection implies 7"] == MINOR
    capped = reasons(replace(PAPER_SELECTION, max_items=5))
    assert capped["capped at the first 5 targets (max_items)"] == SEVERE
    other_filter = reasons(replace(PAPER_SELECTION, min_s=2.0))
    assert other_filter["targets 2-10 s with 3 s prompts, not 4-10 s with 3 s"] == SEVERE
    record = load_librispeech(complete, PAPER_SELECTION).provenance
    ran = {d.reason: d.severity for d in paper_differences(record, ran_items=0, items_sha256="edited")}
    assert ran[f"0 of the {record.items} imported items ran"] == SEVERE
    assert ran["the manifest's items were changed after the import (digest differs)"] == SEVERE
    assert [d.severity for d in paper_differences(None)] == [SEVERE]


def test_a_set_named_like_the_paper_but_not_imported_is_not_comparable(tmp_path: Path) -> None:
    from reports.comparability import testset_verdict
    from reports.provenance import TestsetImport

    verdict = testset_verdict(TestsetImport("librispeech-test-clean", None, 5, None))
    assert verdict.level == "not comparable" and "no import record" in verdict.text


def test_an_edited_manifest_no_longer_matches_its_record(complete: Path, tmp_path: Path) -> None:
    path = load_librispeech(complete, PAPER_SELECTION).write(tmp_path / "ls.jsonl")
    assert load_manifest(path).items_sha256 == load_manifest(path).provenance.items_sha256
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:1], lines[1].replace("WORDS", "SWORDS"), *lines[2:]]) + "\n")
    edited = load_manifest(path)
    assert edited.items_sha256 != edited.provenance.items_sha256
