"""LibriTTS-style training directories with Praat TextGrid alignments -> `TrainingUtterance`s.

Layout: `<root>/<speaker>/<chapter>/<utt>.wav` with `<utt>.normalized.txt` (or `.original.txt`, `.lab`)
and `<utt>.TextGrid` beside it, or under a separate `textgrid_root` (`<speaker>/<chapter>/<utt>.TextGrid`
or `<speaker>/<utt>.TextGrid`, as Montreal Forced Aligner writes them). The TextGrid reader is
`bench.training.textgrid`, the phone mapping `bench.training.phones`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.training.phones import alignment_phonemes, default_vocab
from bench.training.sources import TrainingUtterance
from bench.training.textgrid import parse_textgrid
from flashspeech.text.phonemes import PhonemeVocab

AUDIO_SUFFIXES = (".wav", ".flac")
TRANSCRIPT_SUFFIXES = (".normalized.txt", ".original.txt", ".lab")


def _first_existing(paths: Iterable[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _utterance(
    wav: Path,
    rel: Path,
    *,
    textgrid_root: Path | None,
    tier: str,
    vocab: PhonemeVocab,
    sample_rate: int,
    hop: int,
    stress: bool,
    espeak_clusters: bool,
    text: str | None = None,
) -> TrainingUtterance:
    """One aligned utterance; its transcript from the file beside the audio, or `text` when the corpus keeps
    transcripts elsewhere (MLS)."""
    from flashspeech.foundation.audio import audio_info

    utt_id, speaker = wav.stem, rel.parts[0]
    if text is None:
        stem = wav.with_suffix("")
        transcript = _first_existing(stem.with_name(stem.name + s) for s in TRANSCRIPT_SUFFIXES)
        if transcript is None:
            raise ValueError(f"no transcript ({', '.join('<utt>' + s for s in TRANSCRIPT_SUFFIXES)})")
        text = transcript.read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError(f"empty transcript {transcript}")
    candidates = [wav.with_suffix(".TextGrid")]
    if textgrid_root is not None:
        candidates += [textgrid_root / rel.with_suffix(".TextGrid"), textgrid_root / speaker / f"{utt_id}.TextGrid"]
    textgrid = _first_existing(candidates)
    if textgrid is None:
        raise ValueError(f"no TextGrid (looked for {', '.join(str(c) for c in candidates)})")
    tiers = parse_textgrid(textgrid)
    names = [tier] if tier in tiers else [n for n in tiers if n.endswith(f" - {tier}")]  # MFA: "spk - phones"
    if len(names) != 1:
        raise ValueError(f"{textgrid} has no single interval tier {tier!r} (tiers: {sorted(tiers)})")
    intervals = tiers[names[0]]
    if not intervals:
        raise ValueError(f"{textgrid}: tier {names[0]!r} is empty")
    audio_s = audio_info(wav).duration
    end = intervals[-1].end
    if end > audio_s + hop / sample_rate:
        raise ValueError(f"TextGrid ends at {end:.3f} s, beyond the audio ({audio_s:.3f} s)")
    phonemes, durations = alignment_phonemes(
        intervals,
        utt_id=utt_id,
        vocab=vocab,
        sample_rate=sample_rate,
        hop=hop,
        stress=stress,
        espeak_clusters=espeak_clusters,
    )
    vocab.encode(phonemes)  # every symbol is in the vocabulary by construction; fail loudly if not
    return TrainingUtterance(id=utt_id, speaker=speaker, audio=wav, text=text, phonemes=phonemes, durations=durations)


def problem_line(utt_id: str, exc: BaseException) -> str:
    """ "<id>: <problem>" for a skipped utterance (its id not repeated when the message already starts with it)."""
    message = str(exc)
    return message if message.startswith(f"{utt_id}: ") else f"{utt_id}: {message}"


def libritts_utterances(
    root: str | os.PathLike,
    *,
    tier: str = "phones",
    sample_rate: int = 16_000,
    hop: int = 200,
    speakers: Iterable[str] | None = None,
    textgrid_root: str | os.PathLike | None = None,
    vocab: PhonemeVocab | None = None,
    stress: bool = True,
    espeak_clusters: bool = True,
) -> tuple[list[TrainingUtterance], list[str]]:
    """Utterances of a `<root>/<speaker>/<chapter>/<utt>.wav` tree, sorted by id, and the problems found.

    An utterance without transcript or TextGrid, with an unmappable phone, or whose TextGrid ends more
    than one hop beyond its audio is skipped, and "<id>: <problem>" is recorded in the problems list.
    `speakers` keeps only those speaker directories (the others are not problems).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    tg_root = Path(textgrid_root) if textgrid_root is not None else None
    keep = None if speakers is None else {speakers} if isinstance(speakers, str) else set(speakers)
    vocab = vocab or default_vocab()
    found: dict[str, TrainingUtterance] = {}
    seen: dict[str, Path] = {}
    problems: list[str] = []
    wavs = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    for wav in wavs:
        rel = wav.relative_to(root)
        if len(rel.parts) < 2:
            problems.append(f"{wav.stem}: {wav} is not inside a speaker directory")
            continue
        if keep is not None and rel.parts[0] not in keep:
            continue
        if wav.stem in seen:
            problems.append(f"{wav.stem}: duplicate id ({wav} and {seen[wav.stem]})")
            continue
        seen[wav.stem] = wav
        try:
            found[wav.stem] = _utterance(
                wav,
                rel,
                textgrid_root=tg_root,
                tier=tier,
                vocab=vocab,
                sample_rate=sample_rate,
                hop=hop,
                stress=stress,
                espeak_clusters=espeak_clusters,
            )
        except (ValueError, OSError) as exc:  # TextGridError, AlignmentError, AudioError, missing files
            problems.append(problem_line(wav.stem, exc))
    return [found[k] for k in sorted(found)], sorted(problems)


def summarize(utterances: Sequence[TrainingUtterance], *, sample_rate: int = 16_000, hop: int = 200) -> dict:
    """Utterance count, speaker count, total frames and hours (from the durations at `hop` / `sample_rate`)."""
    frames = sum(sum(u.durations) for u in utterances)
    return {
        "count": len(utterances),
        "speakers": len({u.speaker for u in utterances}),
        "frames": frames,
        "hours": frames * hop / sample_rate / 3600,
    }
