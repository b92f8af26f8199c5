"""MOS suite: DistillMOS and DNSMOS rank real speech above noisy and espeak speech, provenance, UTMOS strict loading."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flashspeech.foundation.assets import AssetError
from flashspeech.foundation.audio import read_audio, resample
from flashspeech.foundation.hashing import sha256_file
from suites.base import CANNOT_RUN, SUITES, Sample, evaluator_fingerprint
from suites.item import EvalItem
from suites.mos import DistillMOSBackend, DNSMOSBackend, MosBackend, MosSuite, UTMOSBackend
from suites.mos.utmos import IGNORED, UTMOS22Strong, UTMOSCheckpointError, UTMOSConfig, load_into, map_state_dict

SR = 16_000
REAL = Path(__file__).resolve().parents[3] / "bench" / "testsets" / "assets" / "real"
CLIPS = ("cmu_goforward.wav", "cards_005.wav", "librivox_0920.wav")
SMALL = UTMOSConfig(
    conv_layers=((16, 10, 5), (16, 3, 2), (16, 2, 2)),
    embed_dim=32,
    num_layers=2,
    num_heads=4,
    ff_dim=48,
    pos_conv_kernel=16,
    pos_conv_groups=4,
    domain_dim=8,
    judge_dim=8,
    lstm_hidden=12,
    projection_hidden=20,
)


def sample(audio: np.ndarray, item_id: str = "i", system: str = "sys", sample_rate: int = SR) -> Sample:
    item = EvalItem(id=item_id, text="t", prompt_audio="unused.wav", speaker="s")
    return Sample(item, system, np.asarray(audio, dtype=np.float32), sample_rate)


# ---- registration, options, unusable audio ---------------------------------------------------------------


class ConstantBackend(MosBackend):
    """Scores every clip 3.0 and counts the clips it saw."""

    name, predictor, paper_comparable = "constant", "constant (test)", False

    def __init__(self) -> None:
        self.seen = 0

    def load(self) -> None:
        pass

    def predict(self, clips):
        self.seen += len(clips)
        return [{"mos": 3.0} for _ in clips]


def test_suite_is_registered_with_its_backends_and_options():
    assert SUITES["mos"] is MosSuite
    assert MosSuite().backend.name == "distillmos"  # the offline default
    assert set(MosSuite(backend="dnsmos").metrics) == {"mos", "sig", "bak", "ovrl", "p808"}
    assert set(MosSuite().metrics) == {"mos"}
    assert all("[DistillMOS (offline, not UTMOS)]" in m.description for m in MosSuite().metrics.values())
    assert all(m.higher_is_better and m.unit == "MOS 1-5" for m in MosSuite(backend="dnsmos").metrics.values())
    assert MosSuite(backend="dnsmos", personalized=True).backend.options.personalized is True
    assert MosSuite(backend="distillmos", crops_per_batch=4).backend.options.crops_per_batch == 4
    with pytest.raises(ValueError, match=r"beam_size: unknown key of the distillmos mos backend \(known: crops_per"):
        MosSuite(backend="distillmos", beam_size=5)
    with pytest.raises(ValueError, match="unknown mos backend 'nisqa'; known: distillmos, dnsmos, utmos"):
        MosSuite(backend="nisqa")
    with pytest.raises(ValueError, match=r"checkpoint: unknown key of the dnsmos mos backend \(known: personalized\)"):
        MosSuite(backend="dnsmos", checkpoint="x.pt")


def test_unusable_audio_becomes_error_rows_and_the_rest_is_scored():
    backend = ConstantBackend()
    suite = MosSuite(backend=backend, min_seconds=0.3)
    rng = np.random.default_rng(0)
    speech = 0.1 * rng.standard_normal(SR).astype(np.float32)
    nan = speech.copy()
    nan[5] = np.nan
    samples = [
        sample(speech, "ok"),
        sample(np.zeros(0), "empty"),
        sample(nan, "nan"),
        sample(np.zeros(SR), "silent"),
        sample(speech[: SR // 10], "short"),
        sample(resample(speech, SR, 24_000), "resampled", sample_rate=24_000),
    ]
    rows = {r.item_id: r for r in suite.score(samples)}
    assert rows["ok"].metrics == {"mos": 3.0} and rows["resampled"].ok and backend.seen == 2
    assert "empty" in rows["empty"].error and "NaN" in rows["nan"].error
    assert "silent" in rows["silent"].error and "too short" in rows["short"].error
    agg = suite.aggregate(list(rows.values()))
    assert agg["mos"] == 3.0 and agg["failed"] == 4.0 and agg["items"] == 6.0


# ---- provenance ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["distillmos", "dnsmos"])
def test_offline_describe_names_the_predictor_and_the_shipped_weights(backend):
    info = MosSuite(backend=backend).describe()  # before any model is loaded: the runner's cache key
    assert info["suite"] == "mos" and info["backend"] == backend
    assert info["paper_comparable"] is False and "not UTMOS" in info["predictor"] and info["label"] == info["predictor"]
    assert info["sample_rate"] == SR and "torchaudio.functional.resample" in info["resampler"]
    package = {"distillmos": "distillmos==0.9.1", "dnsmos": "speechmos==0.0.1.1"}[backend]
    assert info["package"] == package
    assert Path(info["weights"]).is_file() and "site-packages" in info["weights"]
    assert info["weights_sha256"] == sha256_file(info["weights"])
    parts = evaluator_fingerprint(info)["parts"]
    assert "weights_sha256" in parts and "weights" not in parts  # machine paths do not change the fingerprint
    if backend == "dnsmos":
        assert Path(info["p808_weights_path"]).name == "model_v8.onnx" and info["mos_is"].startswith("ovrl")
        assert info["p808_weights_sha256"] == sha256_file(info["p808_weights_path"])
        assert "p808_weights_path" not in parts and "p808_weights_sha256" in parts


# ---- ranking on real speech (the models themselves) ----------------------------------------------------------


@pytest.fixture(scope="module")
def conditions() -> dict[str, list[np.ndarray]]:
    """Clean real clips, the same clips with white noise at 5 dB SNR, and espeak-ng reading their transcripts."""
    from flashspeech.text.espeak import Espeak, VoiceSettings

    texts = {r["file"]: r["text"] for r in csv.DictReader((REAL / "transcripts.tsv").open(), delimiter="\t")}
    rng = np.random.default_rng(0)
    out: dict[str, list[np.ndarray]] = {"clean": [], "noisy": [], "espeak": []}
    for name in CLIPS:
        clean = read_audio(REAL / name, SR).samples
        noise = rng.standard_normal(len(clean)).astype(np.float32)
        noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (5 / 10))
        spoken = Espeak.get().synthesize(texts[name], VoiceSettings("en-us"), seed=0)
        out["clean"].append(clean)
        out["noisy"].append(clean + noise)
        out["espeak"].append(resample(spoken.samples, spoken.sample_rate, SR))
    return out


def _ranked(suite: MosSuite, conditions: dict[str, list[np.ndarray]]) -> dict[str, list[dict[str, float]]]:
    """Every condition's rows' metrics, after checking clean > noisy and clean > espeak clip by clip."""
    samples = [sample(a, f"{c}{i}", c) for c, clips in conditions.items() for i, a in enumerate(clips)]
    rows = suite.score(samples)
    assert all(r.ok for r in rows), [r.error for r in rows if not r.ok]
    scores = {c: [r.metrics for r in rows if r.system == c] for c in conditions}
    mos = {c: np.array([m["mos"] for m in ms]) for c, ms in scores.items()}
    assert (mos["clean"] > mos["noisy"]).all() and (mos["clean"] > mos["espeak"]).all(), mos
    assert all(((m >= 1) & (m <= 5)).all() for m in mos.values())
    again = suite.score(samples[:2])
    # deterministic up to float summation order: scored alone, a clip's crops are batched differently (measured
    # differences ~5e-7 on 2 CPU threads)
    for a, b in zip(again, rows[:2], strict=True):
        assert a.metrics == pytest.approx(b.metrics, rel=1e-6, abs=1e-5)
    return scores


@pytest.mark.slow
def test_distillmos_ranks_clean_speech_above_noisy_and_espeak(conditions):
    suite = MosSuite(backend="distillmos", batch_size=4)
    mos = {c: np.mean([m["mos"] for m in ms]) for c, ms in _ranked(suite, conditions).items()}
    assert mos["clean"] > 3.8 and mos["noisy"] < 2.8
    # batching the crops of several clips gives what the model's own segmenting forward gives clip by clip
    from distillmos import ConvTransformerSQAModel

    reference = ConvTransformerSQAModel(load_weights=False)
    reference.load_state_dict(suite.backend.model.state_dict())
    long = np.concatenate([conditions["clean"][2], conditions["clean"][0]])  # 8.8 s > 7.68 s: 3 crops
    clips = [long, conditions["espeak"][1]]
    assert len(DistillMOSBackend.crops(long)) > 1
    with torch.inference_mode():
        want = [float(reference.eval()(torch.from_numpy(c)[None])[0, 0]) for c in clips]
    got = [s["mos"] for s in suite.backend.predict(clips)]
    assert got == pytest.approx(want, abs=1e-4)


@pytest.mark.slow
def test_dnsmos_ranks_clean_speech_above_noisy_and_espeak(conditions):
    suite = MosSuite(backend="dnsmos", batch_size=9)
    scores = _ranked(suite, conditions)
    for clean, noisy in zip(scores["clean"], scores["noisy"], strict=True):
        assert set(clean) == {"mos", "sig", "bak", "ovrl", "p808"} and clean["mos"] == clean["ovrl"]
        assert clean["bak"] > noisy["bak"] + 1 and clean["p808"] > noisy["p808"]  # the noise is in the background
    # windows of several clips in one ONNX call give what speechmos gives clip by clip
    backend: DNSMOSBackend = suite.backend
    long = np.concatenate([conditions["clean"][2], conditions["clean"][1], conditions["clean"][0]])  # 12.3 s
    assert len(backend.windows(long)) == 3
    got = backend.predict([long, conditions["espeak"][0]])
    for scores, clip in zip(got, [long, conditions["espeak"][0]], strict=True):
        want = backend._dnsmos(clip, SR, False)
        for ours, theirs in (("sig", "sig_mos"), ("bak", "bak_mos"), ("ovrl", "ovrl_mos"), ("p808", "p808_mos")):
            assert scores[ours] == pytest.approx(float(want[theirs]), abs=1e-4)


# ---- UTMOS22 strong: local checkpoint, strict loading ------------------------------------------------------


def speechmos_shapes(cfg: UTMOSConfig) -> dict[str, tuple[int, ...]]:
    """tarepan/SpeechMOS `UTMOS22Strong` state-dict names and shapes, from its structure (fairseq wav2vec 2.0)."""
    e, b = cfg.embed_dim, "wav2vec2."
    out: dict[str, tuple[int, ...]] = {b + "mask_emb": (e,)}
    c_in = 1
    for i, (dim, kernel, _) in enumerate(cfg.conv_layers):
        out[f"{b}feature_extractor.conv_layers.{i}.0.weight"] = (dim, c_in, kernel)
        c_in = dim
    c0 = cfg.conv_layers[0][0]
    out |= {b + "feature_extractor.conv_layers.0.2.weight": (c0,), b + "feature_extractor.conv_layers.0.2.bias": (c0,)}
    out |= {b + "layer_norm.weight": (c_in,), b + "layer_norm.bias": (c_in,)}
    out |= {b + "post_extract_proj.weight": (e, c_in), b + "post_extract_proj.bias": (e,)}
    k = cfg.pos_conv_kernel
    out |= {b + "encoder.pos_conv.0.bias": (e,), b + "encoder.pos_conv.0.weight_g": (1, 1, k)}
    out |= {b + "encoder.pos_conv.0.weight_v": (e, e // cfg.pos_conv_groups, k)}
    out |= {b + "encoder.layer_norm.weight": (e,), b + "encoder.layer_norm.bias": (e,)}
    for i in range(cfg.num_layers):
        p = f"{b}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out |= {f"{p}self_attn.{proj}.weight": (e, e), f"{p}self_attn.{proj}.bias": (e,)}
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            out |= {f"{p}{norm}.weight": (e,), f"{p}{norm}.bias": (e,)}
        out |= {p + "fc1.weight": (cfg.ff_dim, e), p + "fc1.bias": (cfg.ff_dim,)}
        out |= {p + "fc2.weight": (e, cfg.ff_dim), p + "fc2.bias": (e,)}
    out |= {"domain_emb": (1, cfg.domain_dim), "judge_emb": (1, cfg.judge_dim)}
    h, width = cfg.lstm_hidden, e + cfg.domain_dim + cfg.judge_dim
    for suffix in ("", "_reverse"):
        out |= {f"blstm.weight_ih_l0{suffix}": (4 * h, width), f"blstm.weight_hh_l0{suffix}": (4 * h, h)}
        out |= {f"blstm.bias_ih_l0{suffix}": (4 * h,), f"blstm.bias_hh_l0{suffix}": (4 * h,)}
    out |= {"projection.0.weight": (cfg.projection_hidden, 2 * h), "projection.0.bias": (cfg.projection_hidden,)}
    out |= {"projection.2.weight": (1, cfg.projection_hidden), "projection.2.bias": (1,)}
    return out


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        scale = 1.0 if name.endswith(("layer_norm.weight", "0.2.weight", "weight_g")) else 0.2
        state[name] = torch.randn(shape, generator=g) * scale
    return state


def fairseq_reference(sd: dict[str, torch.Tensor], cfg: UTMOSConfig, wave: torch.Tensor) -> torch.Tensor:
    """UTMOS22 strong computed directly from SpeechMOS-named tensors: fairseq's post-LN wav2vec 2.0 (group norm
    in the first conv, weight-normed position conv, post-LN layers), then embeddings, BLSTM, MLP, 3 + 2 x mean."""
    b = "wav2vec2."
    x = wave[:, None]
    for i, (dim, _, stride) in enumerate(cfg.conv_layers):
        x = F.conv1d(x, sd[f"{b}feature_extractor.conv_layers.{i}.0.weight"], stride=stride)
        if i == 0:
            gn = f"{b}feature_extractor.conv_layers.0.2."
            x = F.group_norm(x, dim, sd[gn + "weight"], sd[gn + "bias"])
        x = F.gelu(x)
    x = x.transpose(1, 2)
    x = F.layer_norm(x, x.shape[-1:], sd[b + "layer_norm.weight"], sd[b + "layer_norm.bias"])
    x = F.linear(x, sd[b + "post_extract_proj.weight"], sd[b + "post_extract_proj.bias"])
    g, v = sd[b + "encoder.pos_conv.0.weight_g"], sd[b + "encoder.pos_conv.0.weight_v"]
    weight = g * v / v.norm(dim=(0, 1), keepdim=True)  # weight norm over every dim but the kernel's (dim=2)
    k = cfg.pos_conv_kernel
    conv = F.conv1d(
        x.transpose(1, 2), weight, sd[b + "encoder.pos_conv.0.bias"], padding=k // 2, groups=cfg.pos_conv_groups
    )
    x = x + F.gelu(conv[:, :, :-1] if k % 2 == 0 else conv).transpose(1, 2)
    e, heads = cfg.embed_dim, cfg.num_heads
    x = F.layer_norm(x, (e,), sd[b + "encoder.layer_norm.weight"], sd[b + "encoder.layer_norm.bias"])
    for i in range(cfg.num_layers):
        p = f"{b}encoder.layers.{i}."

        def lin(name: str, t: torch.Tensor, p: str = p) -> torch.Tensor:
            return F.linear(t, sd[p + name + ".weight"], sd[p + name + ".bias"])

        q, kk, vv = (lin(f"self_attn.{n}_proj", x).unflatten(-1, (heads, -1)).transpose(1, 2) for n in "qkv")
        attn = F.softmax(q @ kk.transpose(-1, -2) / (e // heads) ** 0.5, dim=-1) @ vv
        x = x + lin("self_attn.out_proj", attn.transpose(1, 2).flatten(2))
        x = F.layer_norm(x, (e,), sd[p + "self_attn_layer_norm.weight"], sd[p + "self_attn_layer_norm.bias"])
        x = x + lin("fc2", F.gelu(lin("fc1", x)))
        x = F.layer_norm(x, (e,), sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"])
    frames = x.shape[1]
    x = torch.cat([x, sd["domain_emb"].expand(1, frames, -1), sd["judge_emb"].expand(1, frames, -1)], dim=2)
    lstm = torch.nn.LSTM(x.shape[-1], cfg.lstm_hidden, batch_first=True, bidirectional=True)
    lstm.load_state_dict({k[len("blstm.") :]: t for k, t in sd.items() if k.startswith("blstm.")})
    h = lstm(x)[0]
    h = F.linear(F.relu(F.linear(h, sd["projection.0.weight"], sd["projection.0.bias"])), sd["projection.2.weight"])
    return (h + sd["projection.2.bias"]).mean(dim=1).squeeze(-1) * 2 + 3


def test_full_size_mapping_covers_every_key_with_matching_shapes():
    with torch.device("meta"):
        model = UTMOS22Strong()
        source = {k: torch.empty(s) for k, s in speechmos_shapes(UTMOSConfig()).items()}
    assert len(source) == 225 and sum(k.startswith("wav2vec2.") for k in source) == 211
    targets = {k: v.shape for k, v in model.state_dict().items()}
    mapped, report = map_state_dict(source, targets)
    assert set(mapped) == set(targets) and len(targets) == 224
    assert all(tuple(mapped[k].shape) == tuple(s) for k, s in targets.items())
    assert set(report.ignored) == set(IGNORED) == {"wav2vec2.mask_emb"}
    params = sum(t.numel() for t in source.values())
    assert 95e6 < params < 110e6  # wav2vec 2.0 Base (~94 M) + BLSTM + MLP


@pytest.fixture
def small_checkpoint(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    source = random_state(speechmos_shapes(SMALL))
    path = tmp_path / "utmos22_strong_step7459_v1.pt"
    torch.save(source, path)
    return path, source


def test_small_random_checkpoint_round_trips_strictly(small_checkpoint):
    path, source = small_checkpoint
    backend = UTMOSBackend(path, config=SMALL)
    info = backend.describe()  # before loading: the file's identity
    assert info["checkpoint"]["sha256"] == sha256_file(path) and info["paper_comparable"] is True
    backend.load()
    params = backend.model.state_dict()
    layer = "ssl.encoder.transformer.layers.1."
    assert torch.equal(
        params[layer + "attention.k_proj.weight"], source["wav2vec2.encoder.layers.1.self_attn.k_proj.weight"]
    )
    assert torch.equal(params["blstm.weight_hh_l0_reverse"], source["blstm.weight_hh_l0_reverse"])
    assert torch.equal(
        params["ssl.encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1"],
        source["wav2vec2.encoder.pos_conv.0.weight_v"],
    )
    assert backend.describe() == info  # the same identity before and after loading (the score cache's key)
    assert info["checkpoint"]["ignored_keys"] == ["wav2vec2.mask_emb"]
    report = backend.loaded.report
    assert report.source_keys == len(source) and report.mapped_targets == len(source) - 1
    wave = 0.1 * torch.from_numpy(np.random.default_rng(3).standard_normal(SR).astype(np.float32))
    with torch.inference_mode():
        ours = backend.model(wave[None])
    assert torch.allclose(ours, fairseq_reference(source, SMALL, wave[None]), atol=1e-4)
    scores = backend.predict([wave.numpy(), wave.numpy()[: SR // 2]])
    assert scores[0]["mos"] == pytest.approx(float(ours[0]), abs=1e-5) and np.isfinite(scores[1]["mos"])


def test_corrupted_key_set_fails_listing_every_key(small_checkpoint, tmp_path):
    path, source = small_checkpoint
    broken = dict(source)
    del broken["judge_emb"]
    del broken["wav2vec2.encoder.layers.1.fc2.bias"]
    broken["wav2vec2.encoder.layers.0.self_attn.rel_bias"] = torch.zeros(3)
    broken["projection.2.weight"] = torch.zeros(2, SMALL.projection_hidden)
    torch.save(broken, path)
    with pytest.raises(UTMOSCheckpointError) as err:
        UTMOSBackend(path, config=SMALL).load()
    msg = str(err.value)
    assert "wav2vec2.encoder.layers.0.self_attn.rel_bias" in msg  # no rule maps it
    assert "judge_emb" in msg and "ssl.encoder.transformer.layers.1.feed_forward.output_dense.bias" in msg  # unfilled
    assert "projection.2.weight -> projection.2.weight: checkpoint (2, 20), model (1, 20)" in msg
    with torch.device("meta"):
        model = UTMOS22Strong(SMALL)
    with pytest.raises(UTMOSCheckpointError, match="judge_emb"):
        load_into(model, {k: v for k, v in source.items() if k != "judge_emb"})


def test_missing_or_unreadable_checkpoint_is_an_asset_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FLASHSPEECH_BENCH_MODELS", str(tmp_path / "models"))
    missing = tmp_path / "nope.pt"
    with pytest.raises(AssetError, match=r"nope\.pt not found.*tarepan/SpeechMOS"):
        UTMOSBackend(missing, config=SMALL).load()
    with pytest.raises(AssetError, match=r"models/utmos/utmos22_strong_step7459_v1\.pt"):
        UTMOSBackend(config=SMALL).load()  # the model directory's copy
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(AssetError, match=r"cannot read .*garbage\.pt"):
        UTMOSBackend(garbage, config=SMALL).load()
    # a suite whose checkpoint is missing describes itself and stops as a whole when scoring
    suite = MosSuite(backend="utmos", checkpoint=str(missing))
    assert "not found" in suite.describe()["checkpoint"]["error"]
    with pytest.raises(CANNOT_RUN):
        suite.score([sample(np.full(SR, 0.1, np.float32))])
