"""Multilingual LibriSpeech (MLS) English, the paper's training corpus, with Montreal Forced Aligner TextGrids.

Layout as distributed (openslr.org/94): `<split>/transcripts.txt` (lines `<utt id>\\t<text>`) and
`<split>/audio/<speaker>/<book>/<speaker>_<book>_<segment>.flac` (`.opus` in the Opus release, read through
libsndfile). MLS ships no alignments; the official FlashSpeech code trains on MFA TextGrids, and so does this
source. The route:

1. `flashspeech-bench data mls-mfa <split> <corpus>` writes an MFA corpus: a symlink to each audio file and its
   transcript as `<utt>.lab` beside it, in `<corpus>/<speaker>/` (MFA's speaker-per-folder layout).
2. `mfa align <corpus> english_us_arpa english_us_arpa <split>/textgrids` (MFA's English ARPAbet dictionary
   and acoustic model) writes `<split>/textgrids/<speaker>/<utt>.TextGrid`.
3. A recipe with `data = "mls:<split>"` reads them (`<split>/textgrids`, or `textgrid_root`); an utterance
   without a transcript line or TextGrid, or with an unmappable phone, is skipped and listed as a problem.

The phone mapping, the TextGrid reader and the checks are LibriTTS's (`bench.training.libritts`).
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.training.libritts import _utterance, problem_line
from bench.training.phones import default_vocab
from bench.training.sources import TrainingUtterance

MLS_AUDIO = (".flac", ".opus", ".wav")


def read_transcripts(split: Path) -> dict[str, str]:
    """Utterance id -> text from `<split>/transcripts.txt` (FileNotFoundError naming the file)."""
    path = split / "transcripts.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (an MLS split holds transcripts.txt and audio/)")
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        utt, _, text = line.partition("\t")
        if utt.strip() and text.strip():
            out[utt.strip()] = text.strip()
    return out


def audio_files(split: Path) -> list[Path]:
    root = split / "audio"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not found (an MLS split holds transcripts.txt and audio/)")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in MLS_AUDIO and p.is_file())


def mls_utterances(
    split: str | os.PathLike,
    *,
    textgrid_root: str | os.PathLike | None = None,
    tier: str = "phones",
    sample_rate: int = 16_000,
    hop: int = 200,
) -> tuple[list[TrainingUtterance], list[str]]:
    """The split's aligned utterances, sorted by id, and "<id>: <problem>" for each one skipped."""
    split = Path(split)
    texts = read_transcripts(split)
    tg_root = Path(textgrid_root) if textgrid_root is not None else split / "textgrids"
    vocab = default_vocab()
    found, problems = [], []
    for audio in audio_files(split):
        rel = audio.relative_to(split / "audio")
        utt = audio.stem
        if utt not in texts:
            problems.append(f"{utt}: no line in {split / 'transcripts.txt'}")
            continue
        try:
            found.append(
                _utterance(
                    audio,
                    rel,
                    textgrid_root=tg_root,
                    tier=tier,
                    vocab=vocab,
                    sample_rate=sample_rate,
                    hop=hop,
                    stress=True,
                    espeak_clusters=True,
                    text=texts[utt],
                )
            )
        except (ValueError, OSError) as exc:  # as for LibriTTS: missing TextGrid, unmappable phone, bad audio
            problems.append(problem_line(utt, exc))
    return sorted(found, key=lambda u: u.id), sorted(problems)


def write_mfa_corpus(split: str | os.PathLike, corpus: str | os.PathLike) -> int:
    """The MFA input of an MLS split: `<corpus>/<speaker>/<utt>.<ext>` symlinks and `<utt>.lab` transcripts;
    returns the utterances written (those with a transcript line)."""
    split, corpus = Path(split), Path(corpus)
    texts = read_transcripts(split)
    written = 0
    for audio in audio_files(split):
        text = texts.get(audio.stem)
        if text is None:
            continue
        folder = corpus / audio.relative_to(split / "audio").parts[0]
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / audio.name
        if not link.exists():
            link.symlink_to(audio.resolve())
        (folder / f"{audio.stem}.lab").write_text(text + "\n", encoding="utf-8")
        written += 1
    return written
