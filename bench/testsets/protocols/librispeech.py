"""LibriSpeech test-clean, cross-sentence protocol of VALL-E / FlashSpeech.

Layout: ``<root>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` plus ``<spk>-<chapter>.trans.txt`` in the
same folder (lines ``UTTID TRANSCRIPT``). Targets are the utterances lasting ``[min_s, max_s]`` seconds
(inclusive, from the audio header); each gets a ``prompt_s`` clip cut from another utterance of the same
speaker. The utterances are the flacs with a transcript line and a readable header, in utterance id order.

Prompt choice is deterministic given the seed and independent of listing order: among the candidates the
one with the highest hash of (seed, target, candidate) wins (rendezvous hashing), and the clip start is
drawn from an RNG seeded by (seed, target, prompt). Adding or removing an utterance therefore changes only
the items whose winning candidate it is (or was), never anyone else's prompt.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

from bench.testsets.manifest import Manifest, ManifestProblem
from bench.testsets.provenance import ImportRecord, LibriSpeechOptions, SourceRecord, source_sha256
from flashspeech.foundation.audio import AudioError, audio_info
from suites.item import EvalItem

NAME = "librispeech-test-clean"
# The texts the model reads: LibriSpeech's own transcripts. The official inference script read
# `transcription_with_punc` from an unreleased test.json (a punctuated, cased transcript, as LibriSpeech-PC's).
TEXT_SOURCE = (
    "LibriSpeech transcripts (*.trans.txt: upper case, no punctuation, numbers spelled out); the official script "
    "read an unreleased punctuated transcript instead"
)


@dataclass(frozen=True)
class Utterance:
    id: str
    speaker: str
    chapter: str
    path: Path
    text: str
    duration: float


def _problem(source: Path | str, line: int, item_id: str | None, fld: str, msg: str) -> ManifestProblem:
    return ManifestProblem(source=str(source), line=line, item_id=item_id, field=fld, message=msg)


def _hash(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _read_transcripts(
    chapter_dir: Path, flacs: dict[str, Path], problems: list[ManifestProblem]
) -> tuple[dict[str, str], set[str]]:
    """Utterance id -> transcript from the folder's *.trans.txt (bad and orphan lines become problems),
    and every id that has a line at all."""
    texts: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    for trans in sorted(chapter_dir.glob("*.trans.txt")):
        try:
            lines = trans.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(_problem(trans, 0, None, "text", f"unreadable transcript file ({exc})"))
            continue
        for line_no, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            utt, _, text = raw.strip().partition(" ")
            if utt in first_seen:
                problems.append(
                    _problem(trans, line_no, utt, "id", f"duplicate utterance id (first at {first_seen[utt]})")
                )
                continue
            first_seen[utt] = f"{trans}:{line_no}"
            if utt not in flacs:
                problems.append(_problem(trans, line_no, utt, "target_audio", f"no {utt}.flac in {chapter_dir}"))
            elif not text.strip():
                problems.append(_problem(trans, line_no, utt, "text", "empty transcript"))
            else:
                texts[utt] = text.strip()
    return texts, set(first_seen)


def scan_librispeech(root: Path, problems: list[ManifestProblem]) -> list[Utterance]:
    """Every usable utterance under `root`, sorted by id; the unusable ones become problems."""
    utterances: list[Utterance] = []
    for chapter_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
        flacs = {p.stem: p for p in chapter_dir.glob("*.flac")}
        texts, has_line = _read_transcripts(chapter_dir, flacs, problems)
        for utt, flac in sorted(flacs.items()):
            if utt not in texts:
                if utt not in has_line:  # else its line's problem is already reported
                    problems.append(
                        _problem(flac, 0, utt, "text", f"no transcript line for it in {chapter_dir}/*.trans.txt")
                    )
                continue
            try:
                duration = audio_info(flac).duration
            except AudioError as exc:
                problems.append(_problem(flac, 0, utt, "target_audio", str(exc)))
                continue
            speaker, chapter = chapter_dir.parent.name, chapter_dir.name
            utterances.append(Utterance(utt, speaker, chapter, flac, texts[utt], duration))
    return sorted(utterances, key=lambda u: u.id)


def _no_utterances(root: Path) -> str:
    """Why a directory held no LibriSpeech utterance, naming the subset folders one level down when that is it."""
    deeper = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*/*/*.trans.txt")))
    layout = "expected <subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt and .flac files"
    if deeper:
        subsets = ", ".join(deeper)
        return f"no utterances directly under it ({layout}); it holds the subsets {subsets}: pass one of those"
    return f"no LibriSpeech utterances under it ({layout}, e.g. LibriSpeech/test-clean)"


def clip_start(rng: random.Random, duration: float, clip_s: float) -> float:
    """A start uniform in [0, duration - clip_s], rounded to ms without letting the clip overrun."""
    latest = math.floor((duration - clip_s) * 1000 + 1e-6) / 1000
    return min(round(rng.uniform(0.0, duration - clip_s), 3), max(latest, 0.0))


def load_librispeech(root: str | os.PathLike, options: LibriSpeechOptions | None = None) -> Manifest:
    """Targets of 4-10 s with a 3 s prompt cut from another utterance of the same speaker."""
    opts = options or LibriSpeechOptions()
    root = Path(root)
    manifest = Manifest(name=NAME, source=str(root))
    if not root.is_dir():
        manifest.problems.append(_problem(root, 0, None, "root", "LibriSpeech directory not found"))
        return manifest
    root = root.resolve()
    utterances = scan_librispeech(root, manifest.problems)
    if not utterances and not manifest.problems:
        manifest.problems.append(_problem(root, 0, None, "root", _no_utterances(root)))

    pools: dict[str, list[Utterance]] = {}
    for u in utterances:
        if u.duration >= opts.prompt_s:
            pools.setdefault(u.speaker, []).append(u)
    filtered = [u for u in utterances if opts.min_s <= u.duration <= opts.max_s]
    targets = filtered[:: opts.every_nth]
    if opts.max_items is not None:
        targets = targets[: opts.max_items]

    for target in targets:
        _add_item(manifest, target, pools, opts)
    manifest.provenance = ImportRecord(
        protocol="librispeech",
        source=_source_record(root, utterances),
        options=opts,
        filtered=len(filtered),
        filtered_hours=round(sum(u.duration for u in filtered) / 3600, 4),
        items=len(manifest.items),
        speakers=len({i.speaker for i in manifest.items}),
        problems=len(manifest.problems),
        text=TEXT_SOURCE,
    )
    return manifest


def _source_record(root: Path, utterances: list[Utterance]) -> SourceRecord:
    flacs, transcripts = root.glob("*/*/*.flac"), root.glob("*/*/*.trans.txt")
    return SourceRecord(
        root=str(root),
        subset=root.name,
        utterances=len(utterances),
        speakers=len({u.speaker for u in utterances}),
        sha256=source_sha256(root, flacs, transcripts),
    )


def _add_item(
    manifest: Manifest, target: Utterance, pools: dict[str, list[Utterance]], opts: LibriSpeechOptions
) -> None:
    """The target's item with its prompt, or the problem of a speaker with nothing to cut a prompt from."""
    candidates = [u for u in pools.get(target.speaker, []) if u.id != target.id]
    if not candidates:
        manifest.problems.append(
            _problem(
                target.path,
                0,
                target.id,
                "prompt_audio",
                f"speaker {target.speaker} has no other utterance of at least {opts.prompt_s} s to cut a prompt from",
            )
        )
        return
    prompt = max(candidates, key=lambda u: _hash(opts.seed, target.id, u.id))
    rng = random.Random(_hash(opts.seed, target.id, prompt.id, "offset"))
    manifest.items.append(
        EvalItem(
            id=target.id,
            text=target.text,
            prompt_audio=str(prompt.path),
            speaker=target.speaker,
            prompt_text=None,
            target_audio=str(target.path),
            prompt_offset_s=clip_start(rng, prompt.duration, opts.prompt_s),
            prompt_duration_s=opts.prompt_s,
            meta={
                "chapter": target.chapter,
                "prompt_utt": prompt.id,
                "target_duration_s": target.duration,
            },
        )
    )
