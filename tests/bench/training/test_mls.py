"""MLS English with MFA TextGrids as a training source, on a fake split in the real layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from bench.cli import main
from bench.training.mls import mls_utterances
from tests.bench.training.test_libritts import HELLO, HELLO_WORDS, long_textgrid

SR = 16_000
UTTS = {"4800_10003_000000": "hello", "4800_10003_000001": "hello again", "12_34_000000": "no alignment here"}


def make_split(root: Path) -> Path:
    """transcripts.txt, audio/<speaker>/<book>/<utt>.flac, and MFA TextGrids for two of the three utterances."""
    lines = []
    for utt, text in UTTS.items():
        speaker, book, _ = utt.split("_")
        audio = root / "audio" / speaker / book / f"{utt}.flac"
        audio.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(audio), np.zeros(int(1.3 * SR), dtype=np.float32), SR, format="FLAC")
        lines.append(f"{utt}\t{text}")
    lines.append("9999_1_000000\tan utterance whose audio is missing")
    (root / "transcripts.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for utt in list(UTTS)[:2]:
        tg = root / "textgrids" / utt.split("_")[0] / f"{utt}.TextGrid"
        tg.parent.mkdir(parents=True, exist_ok=True)
        tg.write_text(long_textgrid({"words": HELLO_WORDS, "phones": HELLO}), encoding="utf-8")
    return root


def test_mls_split_with_mfa_textgrids(tmp_path: Path) -> None:
    split = make_split(tmp_path / "mls_english" / "train")
    utterances, problems = mls_utterances(split)
    assert [u.id for u in utterances] == ["4800_10003_000000", "4800_10003_000001"]
    first = utterances[0]
    assert first.speaker == "4800" and first.text == "hello" and first.phonemes[0] == "<s>"
    assert sum(first.durations) == round(1.3 * SR / 200)
    assert len(problems) == 1 and problems[0].startswith("12_34_000000: no TextGrid (looked for ")
    assert str(split / "textgrids" / "12" / "12_34_000000.TextGrid") in problems[0]


def test_mls_mfa_corpus_through_the_cli(tmp_path: Path, capsys) -> None:
    split = make_split(tmp_path / "train")
    corpus = tmp_path / "mfa"
    assert main(["data", "mls-mfa", str(split), str(corpus)]) == 0
    assert (corpus / "4800" / "4800_10003_000001.lab").read_text() == "hello again\n"
    assert (corpus / "12" / "12_34_000000.flac").resolve() == (split / "audio/12/34/12_34_000000.flac").resolve()
    assert "3 utterances" in capsys.readouterr().out
    assert main(["data", "mls-mfa", str(tmp_path / "nowhere"), str(corpus)]) == 2
    assert "transcripts.txt: not found" in capsys.readouterr().err
