"""Speaker similarity suite: UniSpeech key mapping, padding invariance, resemblyzer on real speech, SIM arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flashspeech.foundation.audio import write_wav
from flashspeech.foundation.unispeech import CheckpointMappingError, load_into, map_state_dict
from suites.base import SUITES, Sample
from suites.item import EvalItem
from suites.similarity import (
    FEW_SPEAKERS,
    NO_RECONSTRUCTION,
    NO_TARGET,
    AudioRejected,
    EmbeddingBackend,
    SimilaritySuite,
)
from suites.similarity.ecapa import HeadConfig
from suites.similarity.wavlm_tdnn import WavLMConfig, WavLMTDNN, WavLMTDNNConfig

SR = 16_000
SMALL = WavLMTDNNConfig(
    wavlm=WavLMConfig(
        conv_layers=((16, 10, 5), (16, 3, 2), (16, 2, 2)),
        embed_dim=32,
        num_layers=2,
        num_heads=4,
        ff_dim=48,
        pos_conv_kernel=16,
        pos_conv_groups=4,
        num_buckets=16,
        max_distance=64,
    ),
    head=HeadConfig(
        feat_dim=32, channels=16, aggregate_channels=24, embedding_dim=8, se_bottleneck=8, attention_channels=8
    ),
)


pytestmark = pytest.mark.usefixtures("one_thread")


def unispeech_shapes(cfg: WavLMTDNNConfig, n_speakers: int = 5994) -> dict[str, tuple[int, ...]]:
    """UniSpeech `ECAPA_TDNN_SMALL(feat_type='wavlm_large')` state-dict names and shapes, from its structure."""
    w, h = cfg.wavlm, cfg.head
    e, b = w.embed_dim, "feature_extract.model."
    out: dict[str, tuple[int, ...]] = {b + "mask_emb": (e,)}
    c_in = 1
    for i, (dim, kernel, _) in enumerate(w.conv_layers):
        out[f"{b}feature_extractor.conv_layers.{i}.0.weight"] = (dim, c_in, kernel)
        out[f"{b}feature_extractor.conv_layers.{i}.2.1.weight"] = (dim,)
        out[f"{b}feature_extractor.conv_layers.{i}.2.1.bias"] = (dim,)
        c_in = dim
    out |= {b + "layer_norm.weight": (c_in,), b + "layer_norm.bias": (c_in,)}
    out |= {b + "post_extract_proj.weight": (e, c_in), b + "post_extract_proj.bias": (e,)}
    k = w.pos_conv_kernel
    out |= {b + "encoder.pos_conv.0.bias": (e,), b + "encoder.pos_conv.0.weight_g": (1, 1, k)}
    out |= {b + "encoder.pos_conv.0.weight_v": (e, e // w.pos_conv_groups, k)}
    for i in range(w.num_layers):
        p = f"{b}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out |= {f"{p}self_attn.{proj}.weight": (e, e), f"{p}self_attn.{proj}.bias": (e,)}
        if i == 0:
            out[p + "self_attn.relative_attention_bias.weight"] = (w.num_buckets, w.num_heads)
        out |= {p + "self_attn.grep_linear.weight": (8, e // w.num_heads), p + "self_attn.grep_linear.bias": (8,)}
        out[p + "self_attn.grep_a"] = (1, w.num_heads, 1, 1)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            out |= {f"{p}{norm}.weight": (e,), f"{p}{norm}.bias": (e,)}
        out |= {p + "fc1.weight": (w.ff_dim, e), p + "fc1.bias": (w.ff_dim,)}
        out |= {p + "fc2.weight": (e, w.ff_dim), p + "fc2.bias": (e,)}
    out |= {b + "encoder.layer_norm.weight": (e,), b + "encoder.layer_norm.bias": (e,)}

    def conv_bn(prefix: str, c_out: int, c_in: int, kernel: int) -> None:
        out.update({prefix + "conv.weight": (c_out, c_in, kernel), prefix + "conv.bias": (c_out,)})
        bn(prefix + "bn.", c_out)

    def bn(prefix: str, c: int) -> None:
        out.update({prefix + n: (c,) for n in ("weight", "bias", "running_mean", "running_var")})
        out[prefix + "num_batches_tracked"] = ()

    c, width = h.channels, h.channels // h.res2_scale
    out["feature_weight"] = (w.num_layers + 1,)
    conv_bn("layer1.", c, h.feat_dim, 5)
    for n in (2, 3, 4):
        conv_bn(f"layer{n}.Conv1dReluBn1.", c, c, 1)
        for i in range(h.res2_scale - 1):
            r = f"layer{n}.Res2Conv1dReluBn."
            out |= {f"{r}convs.{i}.weight": (width, width, 3), f"{r}convs.{i}.bias": (width,)}
            bn(f"{r}bns.{i}.", width)
        conv_bn(f"layer{n}.Conv1dReluBn2.", c, c, 1)
        s = f"layer{n}.SE_Connect."
        out |= {s + "linear1.weight": (h.se_bottleneck, c), s + "linear1.bias": (h.se_bottleneck,)}
        out |= {s + "linear2.weight": (c, h.se_bottleneck), s + "linear2.bias": (c,)}
    a = h.aggregate_channels
    out |= {"conv.weight": (a, 3 * c, 1), "conv.bias": (a,)}
    out |= {"pooling.linear1.weight": (h.attention_channels, a, 1), "pooling.linear1.bias": (h.attention_channels,)}
    out |= {"pooling.linear2.weight": (a, h.attention_channels, 1), "pooling.linear2.bias": (a,)}
    bn("bn.", 2 * a)
    out |= {"linear.weight": (h.embedding_dim, 2 * a), "linear.bias": (h.embedding_dim,)}
    out["loss_calculator.projection.weight"] = (n_speakers, h.embedding_dim)
    return out


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(100)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g) * 0.2
    return state


# ---- key mapping -------------------------------------------------------------------------------------


def test_full_size_mapping_covers_every_key_with_matching_shapes():
    with torch.device("meta"):
        model = WavLMTDNN()
        source = {k: torch.empty(s) for k, s in unispeech_shapes(WavLMTDNNConfig()).items()}
    assert len(source) == 711  # the released checkpoint's count: 488 backbone + head + feature_weight + classifier
    assert sum(k.startswith("feature_extract.model.") for k in source) == 488
    targets = {k: v.shape for k, v in model.state_dict().items()}
    mapped, report = map_state_dict(source, targets)
    assert set(mapped) == set(targets)
    assert all(tuple(mapped[k].shape) == tuple(s) for k, s in targets.items())
    assert set(report.ignored) == {"feature_extract.model.mask_emb", "loss_calculator.projection.weight"}
    assert len(model.layer_weights) == 25
    assert source["linear.weight"].shape[0] == 256 == model.head.embed.out_features  # 256-d embeddings


def test_mapping_failures_list_every_problem():
    with torch.device("meta"):
        model = WavLMTDNN(SMALL)
        source = {k: torch.empty(s) for k, s in unispeech_shapes(SMALL).items()}
    targets = {k: v.shape for k, v in model.state_dict().items()}
    broken = dict(source)
    del broken["layer3.SE_Connect.linear1.bias"]
    del broken["feature_extract.model.encoder.layers.1.self_attn.k_proj.weight"]
    broken["layer2.shortcut.weight"] = torch.empty(1)
    broken["linear.weight"] = torch.empty(3, 3)
    with pytest.raises(CheckpointMappingError) as err:
        map_state_dict(broken, targets)
    msg = str(err.value)
    assert "layer2.shortcut.weight" in msg  # no rule maps it
    assert "head.blocks.1.se.squeeze.bias" in msg  # not filled
    assert "layers.1.attention.attention.in_proj_weight (has qv" in msg  # incomplete q/k/v
    assert "linear.weight -> head.embed.weight: checkpoint (3, 3)" in msg  # shape


def test_small_checkpoint_loads_strictly_end_to_end(tmp_path):
    from suites.similarity.backends import WavLMTDNNBackend

    source = random_state(unispeech_shapes(SMALL, n_speakers=7))
    path = tmp_path / "wavlm_large_finetune.pth"
    torch.save({"model": source, "best_valid_eer": 0.43}, path)
    backend = WavLMTDNNBackend(path, config=SMALL)
    params = backend.model.state_dict()
    layer = "wavlm.encoder.transformer.layers.1.attention.attention."
    qkv = [source[f"feature_extract.model.encoder.layers.1.self_attn.{p}_proj.weight"] for p in "qkv"]
    assert torch.equal(params[layer + "in_proj_weight"], torch.cat(qkv))
    assert torch.equal(params["layer_weights"], source["feature_weight"])
    assert torch.equal(
        params["head.blocks.2.res2.norms.6.running_var"], source["layer4.Res2Conv1dReluBn.bns.6.running_var"]
    )
    info = backend.describe()
    assert info["comparable_to_papers"] is True and info["checkpoint"]["sha256_pinned"] is False
    assert len(info["checkpoint"]["sha256"]) == 64
    emb = backend.embed([np.random.default_rng(0).standard_normal(SR).astype(np.float32)])
    assert emb.shape == (1, 8) and torch.allclose(emb.norm(dim=1), torch.ones(1))
    # a partial file fails loudly instead of leaving a random head
    del source["pooling.linear2.bias"]
    torch.save({"model": source}, path)
    with pytest.raises(CheckpointMappingError, match=r"head\.pool\.attention_out\.bias"):
        WavLMTDNNBackend(path, config=SMALL)


def test_missing_checkpoint_is_an_asset_error(tmp_path):
    from flashspeech.foundation.assets import AssetError
    from suites.similarity.backends import WavLMTDNNBackend

    with pytest.raises(AssetError, match=r"wavlm_large_finetune\.pth"):
        WavLMTDNNBackend(tmp_path / "nope.pth", config=SMALL)


# ---- padding invariance ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = WavLMTDNN(SMALL).eval()
    load_into(model, random_state(unispeech_shapes(SMALL)))
    return model


def _embed(model, clips):
    lengths = torch.tensor([len(c) for c in clips])
    batch = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        batch[i, : len(c)] = torch.from_numpy(c)
    with torch.no_grad():
        return model(batch, lengths)


def test_hidden_states_follow_s3prl_layout(small_model):
    """25 states for Large: each layer's input (the first is features + position conv), then the final-LN output."""
    wav = torch.from_numpy(np.random.default_rng(4).standard_normal(12000).astype(np.float32))
    with torch.no_grad():
        states, frames = small_model.hidden_states(wav[None], torch.tensor([wav.numel()]))
        normed = torch.nn.functional.layer_norm(wav, wav.shape)[None]
        outputs, _ = small_model.wavlm.extract_features(normed)  # torchaudio: every layer's output, no final LN
        final, _ = small_model.wavlm(normed)  # torchaudio: encoder output after the final layer norm
    assert len(states) == SMALL.num_states == len(outputs) + 1 and int(frames) == states[0].shape[1]
    for mine, theirs in zip(states[1:-1], outputs[:-1], strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5)
    assert torch.allclose(states[-1], final, atol=1e-5)


def test_batched_equals_one_by_one(small_model):
    rng = np.random.default_rng(1)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (5000, 12345, 8000, 16000)]
    batched = _embed(small_model, clips)
    single = torch.cat([_embed(small_model, [c]) for c in clips])
    assert torch.allclose(batched, single, atol=1e-4, rtol=1e-4)


def test_trailing_zeros_on_another_item_change_nothing(small_model):
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal(n).astype(np.float32) for n in (9000, 7000))
    before = _embed(small_model, [a, b])[0]
    after = _embed(small_model, [a, np.concatenate([b, np.zeros(20000, np.float32)])])[0]
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


# ---- resemblyzer on real speech ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def resemblyzer_backend():
    pytest.importorskip("resemblyzer")
    from suites.similarity.backends import ResemblyzerBackend

    return ResemblyzerBackend("cpu")


def test_resemblyzer_same_speaker_beats_cross_speaker_on_real_speech(resemblyzer_backend):
    from bench.testsets.embedded import embedded_manifest

    items = embedded_manifest("real", progress=False).items
    assert len({i.speaker for i in items}) == 3
    samples = [Sample(i, "gt", np.zeros(1, np.float32), SR) for i in items]
    targets = resemblyzer_backend.embed([s.target_audio(SR) for s in samples])
    prompts = resemblyzer_backend.embed([s.prompt_audio(SR) for s in samples])
    sims = targets @ prompts.T
    speaker = np.array([i.speaker for i in items])
    # a prompt may be another item's target file: leave identical recordings out of the same-speaker pairs
    identical = np.array([[Path(a.target_audio).samefile(b.prompt_audio) for b in items] for a in items])
    same = torch.from_numpy((speaker[:, None] == speaker[None, :]) & ~identical)
    cross = torch.from_numpy(speaker[:, None] != speaker[None, :])
    same_mean, cross_mean = sims[same].mean().item(), sims[cross].mean().item()
    # measured (resemblyzer 0.1.4): same speaker 0.82, cross speaker 0.60
    assert same_mean > 0.7 and cross_mean < same_mean - 0.15


def test_resemblyzer_batched_matches_embed_utterance(resemblyzer_backend):
    from resemblyzer import preprocess_wav

    from bench.testsets.embedded import embedded_manifest
    from flashspeech.foundation.audio import read_audio

    items = embedded_manifest("real", progress=False).items[4:8]
    clips = [read_audio(i.target_audio, SR).samples for i in items]
    batched = resemblyzer_backend.embed(clips)
    for row, clip in zip(batched, clips, strict=True):
        ref = resemblyzer_backend.encoder.embed_utterance(preprocess_wav(clip))
        assert np.allclose(row.numpy(), ref, atol=1e-5)
    info = resemblyzer_backend.describe()
    assert info["label"] == "resemblyzer (GE2E d-vector, not WavLM-TDNN)" and info["comparable_to_papers"] is False


# ---- suite arithmetic with a fake backend ------------------------------------------------------------

CODES = {1: [1.0, 0.0, 0.0], 2: [0.6, 0.8, 0.0], 3: [0.0, 1.0, 0.0], 4: [0.0, 0.0, 1.0], 5: [0.8, 0.0, 0.6]}


class FakeBackend(EmbeddingBackend):
    """Vector chosen by the clip's constant level (level 0.1 * code); code 9 is rejected like a VAD would."""

    name, label, comparable_to_papers = "fake", "fake (test vectors)", False

    def __init__(self):
        self.calls: list[int] = []

    def embed(self, clips):
        codes = [round(float(np.mean(c)) * 10) for c in clips]
        bad = {i: "no speech" for i, code in enumerate(codes) if code == 9}
        if bad:
            raise AudioRejected(bad)
        self.calls.extend(codes)
        return torch.tensor([CODES[code] for code in codes])


def tone(code: int, seconds: float = 1.0) -> np.ndarray:
    return np.full(int(SR * seconds), 0.1 * code, np.float32)


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    for code in (1, 2, 3, 4, 5):
        write_wav(root / f"c{code}.wav", tone(code), SR, subtype="FLOAT")
    return root


def sample(root, gen, prompt=2, recon=None, target=None, item_id="i", system="sys", speaker="s"):
    item = EvalItem(
        id=item_id,
        text="t",
        prompt_audio=str(root / f"c{prompt}.wav"),
        speaker=speaker,
        target_audio=str(root / f"c{target}.wav") if target else None,
    )
    return Sample(item, system, gen, SR, reconstructed_prompt=recon)


def test_suite_is_registered_and_labels_its_backend():
    assert SUITES["similarity"] is SimilaritySuite
    suite = SimilaritySuite()
    assert suite.describe()["comparable_to_papers"] is False
    assert all("resemblyzer (GE2E d-vector, not WavLM-TDNN)" in m.description for m in suite.metrics.values())
    assert SimilaritySuite(backend="wavlm-tdnn").describe()["comparable_to_papers"] is True


def test_sim_o_sim_r_target_arithmetic_and_missing_sim_r(clips_dir):
    fake = FakeBackend()
    suite = SimilaritySuite(embedder=fake, batch_size=4)
    rows = suite.score(
        [
            sample(clips_dir, tone(1), recon=tone(3), target=4, item_id="a"),
            sample(clips_dir, tone(5), item_id="b"),
            sample(clips_dir, tone(2), prompt=5, recon=tone(4), target=5, item_id="c"),
        ]
    )
    a, b, c = rows
    assert a.metrics == pytest.approx({"sim_o": 0.6, "sim_r": 0.0, "sim_target": 0.0}, abs=1e-6)
    assert b.metrics == pytest.approx({"sim_o": 0.48}, abs=1e-6)
    assert b.details["sim_r"] == NO_RECONSTRUCTION and b.details["sim_target"] == NO_TARGET
    assert c.metrics == pytest.approx({"sim_o": 0.48, "sim_r": 0.0, "sim_target": 0.48}, abs=1e-6)
    assert a.details["backend"] == "fake"
    agg = suite.aggregate(rows)
    assert agg["sim_o"] == pytest.approx((0.6 + 0.48 + 0.48) / 3, abs=1e-6)
    assert agg["sim_r_n"] == 2 and agg["sim_target_n"] == 2 and agg["failed"] == 0
    single = FEW_SPEAKERS.format(n=1)  # every item has speaker "s": no speaker identification
    assert suite.aggregate_notes(rows) == {"spk_id_acc": single, "spk_id_margin": single}
    assert suite.aggregate_notes(rows[1:2]) == {
        "sim_r": NO_RECONSTRUCTION,
        "sim_target": NO_TARGET,
        "spk_id_acc": single,
        "spk_id_margin": single,
    }


def test_prompt_embeddings_are_cached_across_batches(clips_dir):
    fake = FakeBackend()
    suite = SimilaritySuite(embedder=fake, batch_size=2)
    suite.score([sample(clips_dir, tone(1), item_id=str(i)) for i in range(5)])
    assert fake.calls.count(2) == 1 and fake.calls.count(1) == 5


def test_unscoreable_samples_become_error_rows(clips_dir, tmp_path):
    suite = SimilaritySuite(embedder=FakeBackend(), batch_size=8)
    rows = suite.score(
        [
            sample(clips_dir, np.zeros(0, np.float32), item_id="empty"),
            sample(clips_dir, tone(1, 0.1), item_id="short"),
            sample(clips_dir, tone(9), item_id="rejected"),
            sample(clips_dir, tone(1), item_id="ok", recon=np.zeros(0, np.float32)),
            sample(tmp_path, tone(1), item_id="no-prompt"),
        ]
    )
    by_id = {r.item_id: r for r in rows}
    assert "empty (0 samples)" in by_id["empty"].error
    assert "too short: 0.100 s < 0.3 s" in by_id["short"].error
    assert by_id["rejected"].error == "ValueError: generated audio: no speech"
    assert "prompt audio" in by_id["no-prompt"].error
    ok = by_id["ok"]
    assert ok.ok and ok.metrics == pytest.approx({"sim_o": 0.6}, abs=1e-6)
    assert ok.details["sim_r"].startswith("reconstructed prompt unusable: ValueError: reconstructed prompt is empty")


# ---- zero-shot speaker identification ------------------------------------------------------------------

# speaker -> prompt clips; centroids: A (c1, c2) [2, 1, 0] / sqrt 5, B (c3, c4) [0, 1, 1] / sqrt 2, C (c5) [0.8, 0, 0.6]
PROMPTS = {"A": (1, 2), "B": (3, 4), "C": (5,)}
R, S = 0.5**0.5, 5**-0.5


def spk_items(root, gens: dict[str, int], system: str = "sys") -> list[Sample]:
    """One item per (speaker, prompt clip); `gens`: item id -> generated code (default: the prompt's own)."""
    return [
        sample(root, tone(gens.get(f"{spk}{c}", c)), prompt=c, item_id=f"{spk}{c}", system=system, speaker=spk)
        for spk, codes in PROMPTS.items()
        for c in codes
    ]


def test_speaker_reference_centroids(clips_dir):
    ref = SimilaritySuite(embedder=FakeBackend()).speaker_reference(spk_items(clips_dir, {}))
    assert ref.speakers == ("A", "B", "C") and ref.prompts == 5 and ref.unusable == 0
    expected = torch.tensor([[2 * S, S, 0.0], [0.0, R, R], [0.8, 0.0, 0.6]])
    assert torch.allclose(ref.centroids, expected, atol=1e-6)


def test_speaker_id_correct_and_margin_by_hand(clips_dir):
    suite = SimilaritySuite(embedder=FakeBackend(), batch_size=2)
    # A1 sounds like B's c4, A2 like C's c5, C5 like A's c2; B3 and B4 like themselves
    rows = {r.item_id: r for r in suite.score(spk_items(clips_dir, {"A1": 4, "A2": 5, "C5": 2}))}
    assert all(r.ok and r.details["spk_id_speakers"] == 3 for r in rows.values())

    def check(item_id: str, correct: float, margin: float, nearest: str) -> None:
        row = rows[item_id]
        assert row.metrics["spk_id_correct"] == correct and row.details["spk_id_nearest"] == nearest
        assert row.metrics["spk_id_margin"] == pytest.approx(margin, abs=1e-6)

    check("A1", 0.0, 0.0 - R, "B")  # [0, 0, 1]: A 0, B R, C 0.6
    check("A2", 0.0, 1.6 * S - 1.0, "C")  # [0.8, 0, 0.6]: A 1.6 S, B 0.6 R, C 1
    check("B3", 1.0, R - S, "B")  # [0, 1, 0]: A S, B R, C 0
    check("B4", 1.0, R - 0.6, "B")  # [0, 0, 1]: A 0, B R, C 0.6
    check("C5", 0.0, 0.48 - 2 * S, "A")  # [0.6, 0.8, 0]: A 2 S, B 0.8 R, C 0.48
    agg = suite.aggregate(list(rows.values()))
    assert agg["spk_id_acc"] == pytest.approx(0.4) and agg["spk_id_acc_n"] == 5 and agg["spk_id_speakers"] == 3
    assert agg["spk_id_margin"] == pytest.approx((-R + 1.6 * S - 1 + R - S + R - 0.6 + 0.48 - 2 * S) / 5, abs=1e-6)
    assert "spk_id_correct" not in agg
    assert suite.aggregate_notes(list(rows.values())).keys() == {"sim_r", "sim_target"}


def test_ground_truth_like_speech_is_always_identified(clips_dir):
    suite = SimilaritySuite(embedder=FakeBackend())
    rows = suite.score(spk_items(clips_dir, {}))  # every sample sounds exactly like its own prompt
    assert [r.metrics["spk_id_correct"] for r in rows] == [1.0] * 5
    assert rows[0].metrics["spk_id_margin"] == pytest.approx(2 * S - 0.8, abs=1e-6)  # A1 [1, 0, 0]: A 2 S, C 0.8
    assert suite.aggregate(rows)["spk_id_acc"] == 1.0


def test_single_speaker_is_reported_not_skipped(clips_dir):
    suite = SimilaritySuite(embedder=FakeBackend())
    rows = suite.score([sample(clips_dir, tone(c), prompt=c, item_id=str(c)) for c in (2, 4)])
    reason = FEW_SPEAKERS.format(n=1)
    assert "at least 2 candidate speakers" in reason
    for row in rows:
        assert row.ok and "sim_o" in row.metrics and "spk_id_correct" not in row.metrics
        assert row.details["spk_id_correct"] == row.details["spk_id_margin"] == reason
    agg = suite.aggregate(rows)
    assert np.isnan(agg["spk_id_acc"]) and agg["spk_id_acc_n"] == 0 and agg["spk_id_speakers"] == 1
    assert suite.aggregate_notes(rows)["spk_id_acc"] == reason


def test_reference_is_the_same_for_every_system_and_order(clips_dir):
    good = spk_items(clips_dir, {"A1": 4}, system="good")
    bad = spk_items(clips_dir, {"A1": 5, "C5": 1}, system="bad")
    bad[1] = sample(clips_dir, np.zeros(0, np.float32), prompt=2, item_id="A2", system="bad", speaker="A")
    alone = SimilaritySuite(embedder=FakeBackend()).score(good)
    together = SimilaritySuite(embedder=FakeBackend(), batch_size=3).score(bad[::-1] + good[::-1])
    by_key = {(r.system, r.item_id): r for r in together}
    for row in alone:
        assert by_key[("good", row.item_id)].metrics == pytest.approx(row.metrics, abs=1e-6)
    # an unusable generation is an error row; its prompt c2 still counts in A's centroid
    assert not by_key[("bad", "A2")].ok
    assert by_key[("bad", "C5")].metrics["spk_id_margin"] == pytest.approx(0.8 - 2 * S, abs=1e-6)  # [1, 0, 0]


def test_spk_id_acc_aggregate_direction_and_ci(clips_dir):
    from bench.results import aggregates_table

    suite = SimilaritySuite(embedder=FakeBackend())
    rows = suite.score(spk_items(clips_dir, {"A1": 4}))
    table = aggregates_table([suite], {"similarity": rows}, resamples=200).set_index("metric")
    acc = table.loc["spk_id_acc"]
    assert acc["value"] == pytest.approx(0.8) and acc["higher_is_better"] is True and acc["unit"] == "fraction"
    assert 0.0 <= acc["ci_low"] <= acc["value"] <= acc["ci_high"] <= 1.0 and acc["ci_low"] < acc["ci_high"]
    assert table.loc["spk_id_margin", "higher_is_better"] is True and table.loc["spk_id_speakers", "value"] == 3
    assert SUITES["similarity"].metrics["spk_id_correct"].higher_is_better is True
    assert "spk_id_reference" in suite.describe()


def test_score_batch_alone_uses_its_own_prompts(clips_dir):
    suite = SimilaritySuite(embedder=FakeBackend())
    rows = suite.score_batch(spk_items(clips_dir, {})[2:])  # B3, B4, C5: two candidate speakers
    assert [r.details["spk_id_speakers"] for r in rows] == [2, 2, 2]
    assert rows[0].metrics["spk_id_margin"] == pytest.approx(R, abs=1e-6)  # [0, 1, 0]: B R, C 0


def test_resemblyzer_identifies_ground_truth_speakers_on_real_speech(resemblyzer_backend):
    from bench.testsets.embedded import embedded_manifest

    items = embedded_manifest("real", progress=False).items
    suite = SimilaritySuite(embedder=resemblyzer_backend)
    rows = suite.score(
        [Sample(i, "gt", Sample(i, "gt", np.zeros(1, np.float32), SR).target_audio(SR), SR) for i in items]
    )
    agg = suite.aggregate(rows)
    # measured (resemblyzer 0.1.4): accuracy 1.0 among 3 speakers, mean margin 0.25
    assert agg["spk_id_speakers"] == 3 and agg["spk_id_acc"] == 1.0 and agg["spk_id_margin"] > 0.1


def test_each_test_set_is_its_own_reference(clips_dir):
    """Speakers of another test set scored in the same call are not candidates."""
    suite = SimilaritySuite(embedder=FakeBackend())
    first = spk_items(clips_dir, {"A1": 5})  # A1 sounds like C's only prompt
    for s in first:
        s.meta["testset"] = "one"
    second = [s for s in spk_items(clips_dir, {}) if s.item.speaker in ("A", "B")]
    for s in second:
        s.meta["testset"] = "two"
    rows = {(r.system, r.item_id, r.details.get("spk_id_speakers")) for r in suite.score(first + second)}
    assert {n for _, _, n in rows} == {3, 2}
    alone = suite.score(second)
    assert [r.metrics["spk_id_margin"] for r in alone] == pytest.approx(
        [r.metrics["spk_id_margin"] for r in suite.score(first + second)][len(first) :]
    )


def test_a_subset_scored_in_context_matches_scoring_everything(clips_dir):
    """The runner scores only new systems, passing every sample as context: rows must not change."""
    suite = SimilaritySuite(embedder=FakeBackend())
    old = spk_items(clips_dir, {"A1": 5}, system="old")
    new = spk_items(clips_dir, {"B3": 2}, system="new")
    together = [r for r in suite.score(old + new) if r.system == "new"]
    in_context = suite.score(new, context=old + new)
    assert [r.metrics for r in in_context] == [r.metrics for r in together]
    assert [r.details["spk_id_speakers"] for r in suite.score(new[:2])] == [1, 1]  # without context: A only


def test_context_key_is_the_prompt_set_not_the_systems(clips_dir):
    suite = SimilaritySuite(embedder=FakeBackend())
    one = spk_items(clips_dir, {}, system="one")
    two = spk_items(clips_dir, {"A1": 5}, system="two")
    assert suite.context_key(one) == suite.context_key(one + two)  # another system, same prompts
    assert suite.context_key(one) != suite.context_key(one[:-1])  # a prompt (speaker C) fewer
