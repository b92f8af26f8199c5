"""The preflight every run does before generating, and `run --check` / `paper --check` through the CLI: every
missing piece is one line naming it, the exit is non-zero, nothing is generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.testsets.protocols import LibriSpeechOptions, load_librispeech
from tests.bench.testsets.test_import_record import COMPLETE
from tests.bench.testsets.test_protocols import make_librispeech

CHECKPOINT = "pretrained:flashspeech-tiny"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLASHSPEECH_BENCH_MODELS", str(tmp_path / "models"))  # empty: no evaluation weights
    return tmp_path


def test_run_check_names_every_missing_piece_on_one_line(workdir: Path, capsys) -> None:
    assert main(["run", "--config", "paper", "--device", "cpu", "--check"]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert all(line.startswith("missing: ") for line in lines), lines
    text = "\n".join(lines)
    assert "missing: test set librispeech-test-clean: manifest not found: librispeech.jsonl" in text
    assert "missing: system flashspeech: CheckpointError: checkpoints/flashspeech/config.json: not found" in text
    for weights in ("hubert-large-ls960-ft not found", "wavlm_large_finetune.pth not found", "utmos22_strong"):
        assert weights in text
    assert "ok: system ground_truth" in out and "paper: 5 missing piece(s)" in out


def test_a_run_with_a_missing_piece_stops_before_generating(workdir: Path, capsys) -> None:
    args = ["run", "--config", "paper", "--device", "cpu", "--no-mlflow", "--output-dir", str(workdir / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "paper: 5 missing piece(s), nothing generated:" in err and "Traceback" not in err
    assert not (workdir / "out").exists()


def test_a_manifest_imported_otherwise_than_the_config_says_is_named(workdir: Path, capsys) -> None:
    root = make_librispeech(workdir / "LibriSpeech" / "test-clean", COMPLETE)
    load_librispeech(root, LibriSpeechOptions(every_nth=1)).write(workdir / "librispeech.jsonl")
    sets = ["--set", 'systems=[{kind="ground_truth"}]', "--set", "suites={}"]
    assert main(["run", "--config", "paper", "--device", "cpu", "--check", *sets]) == 1
    err = capsys.readouterr().err
    assert "librispeech.jsonl was imported with min_s 4.0, max_s 10.0, prompt_s 3.0, seed 0, every_nth 1" in err
    assert "this config needs" in err and "every_nth 10" in err
    load_librispeech(root, LibriSpeechOptions(every_nth=10)).write(workdir / "librispeech.jsonl")
    assert main(["run", "--config", "paper", "--device", "cpu", "--check", *sets]) == 0
    assert "paper: ready" in capsys.readouterr().out


def test_paper_check_imports_then_checks_every_table_before_running(workdir: Path, capsys) -> None:
    root = make_librispeech(workdir / "LibriSpeech" / "test-clean", COMPLETE)
    args = ["paper", "--librispeech", str(root), "--checkpoint", CHECKPOINT, "--device", "cpu", "--check"]
    args += ["--output-dir", str(workdir / "tables")]
    assert main(args) == 2  # Table 2 needs its second checkpoint
    assert "--consistency-only" in capsys.readouterr().err
    args += ["--consistency-only", "pretrained:consistency-only-tiny"]
    assert main(args) == 1  # the fake tree is not the complete test-clean
    assert "found 10 utterances of 2 speakers" in capsys.readouterr().err
    assert main([*args, "--partial"]) == 1  # imported; the evaluation weights are missing
    out, err = capsys.readouterr()
    assert "imported" in out and (workdir / "tables" / "librispeech-test-clean.jsonl").is_file()
    assert "paper-ablation-adversarial: ok: system adversarial-wavlm" in out
    for config, piece in (
        ("paper", "suite wer"),
        ("paper", "suite mos"),
        ("paper-ablation-adversarial", "suite similarity"),
        ("paper-alpha", "suite wer"),
    ):
        assert f"{config}: {piece}: AssetError" in err
    assert "nothing was generated" in err and not (workdir / "tables" / "paper").exists()


def test_paper_runs_the_tables_and_writes_the_paper_report(workdir: Path, capsys, monkeypatch) -> None:
    """Tables 4 and 5 end to end on a fake test-clean (standing for the complete one) with the shipped tiny model;
    the prosody suite alone (the evaluation weights are not here), so the WER cells say they have no value."""
    from bench.testsets import provenance

    monkeypatch.setitem(provenance.SUBSETS, "test-clean", provenance.Subset("test-clean", 10, 2))
    root = make_librispeech(workdir / "LibriSpeech" / "test-clean", COMPLETE)
    out = workdir / "tables"
    args = ["paper", "--librispeech", str(root), "--checkpoint", CHECKPOINT, "--device", "cpu", "--tables", "4", "5"]
    args += ["--output-dir", str(out), "--no-mlflow", "--quiet", "--set", "suites={prosody={}}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "every 10 -> 1 items" in printed and "paper-alpha: 7 generated" in printed
    text = (out / "PAPER.md").read_text()
    assert "Table 4: the prosody refinement scale alpha for pitch" in text and "Table 5" in text
    assert "| α = 0.2 | Pitch JSD | 0.0670 |" in text and "## Table 2" not in text and "## Tables 1 and 3" not in text
    assert "no WER (%) in the run" in text
    assert (out / "paper-alpha" / "results.json").is_file()
    assert main([*args]) == 0  # a second run: everything from the cache, the same report
    assert "paper-alpha: 0 generated" in capsys.readouterr().out
