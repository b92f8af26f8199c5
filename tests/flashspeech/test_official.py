"""Official FlashSpeech checkpoints -> our model: the strict key map, its transformations, reading, the CLI.

The official key names and shapes come from `tests/fixtures/official_flashspeech_keys.json` (the official modules
instantiated on the meta device; the file says how). Value checks use a small model: `to_official` below is an
independent inverse of the documented map, checked to produce exactly the fixture's names and shapes at paper
size, so converting its output must give back the original tensors.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench.cli import convert as cli_convert
from bench.cli.convert import add_convert_parser
from flashspeech import official
from flashspeech.checkpoint import load_checkpoint, read_description
from flashspeech.codecs import MelCodec
from flashspeech.config import (
    EncoderConfig,
    FlashSpeechConfig,
    PredictorConfig,
    ProsodyConfig,
    WaveNetConfig,
    paper,
)
from flashspeech.foundation.hashing import sha256_file
from flashspeech.model import FlashSpeechModel, f0_from_log, pitch_bin_edges
from flashspeech.modules.common import length_regulate, lengths_to_mask
from flashspeech.official import (
    OFFICIAL_COMPAT,
    OFFICIAL_PHONES,
    REFINERS,
    OfficialCheckpointError,
    convert_official,
    map_official_state_dict,
    official_target_config,
    official_vocab,
    read_official,
)
from flashspeech.sampling import sample_consistency

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "official_flashspeech_keys.json").read_text())

# Our key -> the official FlashSpeech key (before the Lightning `model.` prefix), written independently of
# flashspeech.official.RULES; `to_official` applies the tensor transformations' inverses.
INVERSE = (
    (r"token_embedding\.weight", "prior_encoder.enc_emb_tokens.weight"),
    (r"phoneme_encoder\.layers\.(\d+)\.norm([12])\.norm\.style\.", r"prior_encoder.encoder.layers.\1.ln_\2.style."),
    (r"phoneme_encoder\.layers\.(\d+)\.attn\.", r"prior_encoder.encoder.layers.\1.self_attn."),
    (r"phoneme_encoder\.layers\.(\d+)\.ffn\.conv\.", r"prior_encoder.encoder.layers.\1.ffn.ffn_1."),
    (r"phoneme_encoder\.layers\.(\d+)\.ffn\.out\.", r"prior_encoder.encoder.layers.\1.ffn.ffn_2."),
    (r"phoneme_encoder\.final_norm\.norm\.style\.", "prior_encoder.encoder.last_ln.style."),
    (r"prompt_encoder\.layers\.(\d+)\.norm([12])\.norm\.", r"prompt_encoder.layers.\1.ln_\2."),
    (r"prompt_encoder\.layers\.(\d+)\.attn\.", r"prompt_encoder.layers.\1.self_attn."),
    (r"prompt_encoder\.layers\.(\d+)\.ffn\.conv\.", r"prompt_encoder.layers.\1.ffn.ffn_1."),
    (r"prompt_encoder\.layers\.(\d+)\.ffn\.out\.", r"prompt_encoder.layers.\1.ffn.ffn_2."),
    (r"prompt_encoder\.final_norm\.norm\.", "prompt_encoder.last_ln."),
    (r"prompt_in\.", "prompt_lin."),
    (r"query_tokens\.", "query_emb."),
    (r"query_attention\.", "query_attn."),
    (r"(duration|pitch)_predictor\.convs\.(\d+)\.", r"prior_encoder.\1_predictor.conv.\2.0."),
    (r"(duration|pitch)_predictor\.norms\.(\d+)\.", r"prior_encoder.\1_predictor.conv.\2.2."),
    (r"(duration|pitch)_predictor\.attns\.(\d+)\.attn\.", r"prior_encoder.\1_predictor.cattn.\2.0."),
    (r"(duration|pitch)_predictor\.attns\.(\d+)\.norm\.", r"prior_encoder.\1_predictor.cattn.\2.1."),
    (r"(duration|pitch)_predictor\.proj\.", r"prior_encoder.\1_predictor.linear."),
    (r"pitch_embedding\.", "prior_encoder.pitch_embedding."),
    (r"lcm\.noise_embed\.mlp\.", "diffusion.diff_estimator.mlp."),
    (r"lcm\.cond_norm\.", "diffusion.diff_estimator.cond_ln."),
    (r"lcm\.layers\.(\d+)\.dilated\.", r"diffusion.diff_estimator.layers.\1.dilated_conv."),
    (r"lcm\.layers\.(\d+)\.noise_proj\.", r"diffusion.diff_estimator.layers.\1.diffusion_proj."),
    (r"lcm\.layers\.(\d+)\.film\.norm\.", r"diffusion.diff_estimator.layers.\1.ln."),
    (r"lcm\.layers\.(\d+)\.film\.attn\.", r"diffusion.diff_estimator.layers.\1.attn."),
    (r"lcm\.", "diffusion.diff_estimator."),  # in_proj, skip_proj, out_proj, layers.i.{cond_proj,out_proj,film.*}
)
SWAPPED = re.compile(r"lcm\.layers\.\d+\.(dilated|cond_proj|film\.gain|film\.bias)\.")


def swap(t):
    half = t.shape[0] // 2
    return torch.cat([t[half:], t[:half]])


def to_official(ours: dict, cfg: FlashSpeechConfig, pe_len: int = 5000) -> dict:
    """Our state dict (refiners excluded) -> the Lightning s1 state dict an official run would have saved."""
    out = {}
    for key, value in ours.items():
        if key.startswith(REFINERS):
            continue
        if re.fullmatch(r"lcm\.layers\.\d+\.film\.gain\.bias", key):
            value = value + 1.0
        if SWAPPED.match(key):
            value = swap(value)
        if key == "token_embedding.weight":
            vocab = official_vocab()
            rows = torch.randn(100, value.shape[1], device=value.device)  # rows 90-99: never used officially
            for i, phone in enumerate(OFFICIAL_PHONES):
                rows[i] = value[vocab.id(phone)]
            value = rows
        for pattern, repl in INVERSE:
            name, n = re.subn("^" + pattern, repl, key)
            if n:
                break
        out["model." + name] = value
    h = cfg.hidden
    out["model.prior_encoder.encoder.enc_emb_tokens.weight"] = out["model.prior_encoder.enc_emb_tokens.weight"]
    device = next(iter(ours.values())).device
    for enc in ("prior_encoder.encoder", "prompt_encoder"):
        out[f"model.{enc}.position_emb.pe"] = torch.zeros(pe_len, 1, h, device=device)
    out["model.prior_encoder.pitch_bins"] = pitch_bin_edges(cfg).to(device)
    return out


def small_config() -> FlashSpeechConfig:
    h = 16
    return FlashSpeechConfig(
        name="small",
        latent_dim=8,
        query_tokens=4,
        phoneme_encoder=EncoderConfig(layers=2, hidden=h, heads=2, ffn_hidden=32, ffn_kernel=3, style_adaptive=True),
        prompt_encoder=EncoderConfig(layers=1, hidden=h, heads=2, ffn_hidden=32, ffn_kernel=3),
        duration_predictor=PredictorConfig(layers=4, hidden=h, kernel=3, heads=2),
        pitch_predictor=PredictorConfig(layers=4, hidden=h, kernel=5, heads=2),
        wavenet=WaveNetConfig(layers=4, hidden=h, heads=2, noise_embed_dim=h, noise_mlp_hidden=32),
        prosody=ProsodyConfig(
            refine=WaveNetConfig(layers=2, hidden=8, attn_every=0, noise_embed_dim=8, noise_mlp_hidden=16)
        ),
    )


@pytest.fixture(scope="module")
def small():
    """(target config, our random tensors, the official Lightning state dict holding them)."""
    cfg = official_target_config(small_config())
    torch.manual_seed(3)
    model = FlashSpeechModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    ours = {k: v.clone() for k, v in model.state_dict().items()}
    return cfg, ours, to_official(ours, cfg, pe_len=8)


def shapes_of(cfg):
    with torch.device("meta"):
        model = FlashSpeechModel(cfg)
    return {k: v.shape for k, v in model.state_dict().items() if not k.startswith(REFINERS)}


def convert_map(state, cfg):
    return map_official_state_dict(state, cfg, shapes_of(cfg))


# -- the listing and the full-size map ---------------------------------------------------------------------------
def test_fixture_records_its_source_and_the_phone_map():
    source = FIXTURE["source"]
    assert source["commit"] == official.OFFICIAL_COMMIT and "exp_config_base_s1.json" in source["configs"][0]
    assert tuple(FIXTURE["phones"]) == OFFICIAL_PHONES
    vocab = official_vocab()
    assert len(vocab) == 93 and vocab.symbols[:5] == ("<pad>", "<unk>", "<s>", "</s>", "_")


def test_inverse_map_gives_exactly_the_official_names_and_shapes():
    """The test's own inverse, applied to our paper model, yields the official listing: so the round trip below
    exercises the real official names."""
    cfg = official_target_config()
    with torch.device("meta"):
        ours = FlashSpeechModel(cfg).state_dict()
    names = {k: list(v.shape) for k, v in to_official(ours, cfg).items()}
    assert names == FIXTURE["s1"]


def test_paper_listing_fills_every_tensor_of_ours():
    state = {k: torch.empty(v, device="meta") for k, v in FIXTURE["s1"].items()}
    cfg = official_target_config()
    mapped, report = convert_map(state, cfg)
    assert report.source_keys == 997 and report.mapped_targets == len(shapes_of(cfg)) == 993
    # the official generator's 378.4 M parameters, with 93 embedding rows (our vocabulary) instead of 100
    assert sum(v.numel() for v in mapped.values()) == 378_407_170 - 7 * 512
    assert set(report.ignored) == {
        "model.prior_encoder.pitch_bins",
        "model.prior_encoder.encoder.enc_emb_tokens.weight",
        "model.prior_encoder.encoder.position_emb.pe",
        "model.prompt_encoder.position_emb.pe",
        "model.prior_encoder.enc_emb_tokens.weight[90:100]",
    }


def test_s2_discriminator_wavlm_and_codec_are_ignored_with_reasons(tmp_path):
    state = {k: torch.empty(v, device="meta") for k, v in (FIXTURE["s1"] | FIXTURE["s2_extra"]).items()}
    state |= {f"wavlm.{k}": torch.empty(1, device="meta") for k in FIXTURE["wavlm_examples"]}
    state |= {f"model.soundstream.{k}": torch.empty(1, device="meta") for k in ("encoder.block.0.weight", "x.embed")}
    layout = official.detect_layout(state)
    assert official.detect_stage(state, layout) == "s2"
    _, report = convert_map(state, official_target_config())
    reasons = report.ignored
    assert reasons["discriminator.wd.conv_post.weight_g"] == official.DISCRIMINATOR_REASON
    assert reasons["discriminator.wd.pre.weight_v"] == official.DISCRIMINATOR_REASON
    assert sum(r == official.DISCRIMINATOR_REASON for r in reasons.values()) == 15
    assert reasons["wavlm.masked_spec_embed"] == official.WAVLM_REASON
    assert reasons["model.soundstream.x.embed"] == official.CODEC_REASON


# -- values -----------------------------------------------------------------------------------------------------
def test_round_trip_gives_back_every_tensor(small):
    cfg, ours, theirs = small
    mapped, _ = convert_map(theirs, cfg)
    vocab = official_vocab()
    used = [vocab.id(p) for p in OFFICIAL_PHONES]
    for key, value in mapped.items():
        if key == "token_embedding.weight":
            assert torch.equal(value[used], ours[key][used])
            assert not value[[vocab.id(s) for s in ("<pad>", "<unk>", "_")]].any()  # no official counterpart
        elif key.endswith("film.gain.bias"):  # (b + 1) - 1 rounds in float32
            torch.testing.assert_close(value, ours[key], rtol=0, atol=1e-6)
        else:
            assert torch.equal(value, ours[key]), key


def test_transformations_spot_checked_against_the_official_tensors(small):
    cfg, _, theirs = small
    mapped, _ = convert_map(theirs, cfg)
    h = cfg.hidden
    layer = "model.diffusion.diff_estimator.layers.3."
    # gate order: our first half (tanh) is the official second half (their tanh input)
    assert torch.equal(mapped["lcm.layers.3.dilated.weight"][:h], theirs[layer + "dilated_conv.weight"][h:])
    assert torch.equal(mapped["lcm.layers.3.cond_proj.bias"][h:], theirs[layer + "cond_proj.bias"][:h])
    # FiLM y * gain + bias -> y * (1 + gain) + bias, halves swapped
    assert torch.equal(mapped["lcm.layers.3.film.gain.bias"][:h], theirs[layer + "film.gain.bias"][h:] - 1)
    assert torch.equal(mapped["lcm.layers.3.film.gain.weight"][h:], theirs[layer + "film.gain.weight"][:h])
    assert torch.equal(mapped["lcm.layers.3.film.bias.bias"][:h], theirs[layer + "film.bias.bias"][h:])
    assert torch.equal(mapped["lcm.layers.3.out_proj.weight"], theirs[layer + "out_proj.weight"])  # not swapped
    # vocabulary: the official id of AA1 is 2; <s> is 87 there
    tokens, vocab = theirs["model.prior_encoder.enc_emb_tokens.weight"], official_vocab()
    assert torch.equal(mapped["token_embedding.weight"][vocab.id("AA1")], tokens[2])
    assert torch.equal(mapped["token_embedding.weight"][vocab.id("<s>")], tokens[OFFICIAL_PHONES.index("<s>")])
    assert torch.equal(
        mapped["pitch_predictor.attns.1.attn.in_proj_weight"],
        theirs["model.prior_encoder.pitch_predictor.cattn.1.0.in_proj_weight"],
    )


# -- errors name the keys --------------------------------------------------------------------------------------
def test_unknown_missing_and_misshaped_keys_are_named(small):
    cfg, _, theirs = small
    state = dict(theirs)
    state["model.prior_encoder.extra_head.weight"] = torch.zeros(3)
    del state["model.diffusion.diff_estimator.layers.2.diffusion_proj.bias"]
    state["model.query_emb.weight"] = torch.zeros(5, cfg.hidden)
    with pytest.raises(OfficialCheckpointError) as info:
        convert_map(state, cfg)
    text = str(info.value)
    assert "checkpoint keys no rule maps (1):\n    model.prior_encoder.extra_head.weight" in text
    assert "model keys the checkpoint does not fill (1):\n    lcm.layers.2.noise_proj.bias" in text
    assert "model.query_emb.weight -> query_tokens.weight: checkpoint (5, 16), model (4, 16)" in text


def test_tied_embedding_pitch_bins_and_vocabulary_rows_are_checked(small):
    cfg, _, theirs = small
    state = dict(theirs)
    state["model.prior_encoder.encoder.enc_emb_tokens.weight"] = torch.zeros_like(
        state["model.prior_encoder.enc_emb_tokens.weight"]
    )
    state["model.prior_encoder.pitch_bins"] = state["model.prior_encoder.pitch_bins"] * 1.1
    with pytest.raises(OfficialCheckpointError) as info:
        convert_map(state, cfg)
    text = str(info.value)
    assert "model.prior_encoder.encoder.enc_emb_tokens.weight: not identical" in text
    assert "model.prior_encoder.pitch_bins: edges differ from ours" in text
    state = dict(theirs)
    state["model.prior_encoder.enc_emb_tokens.weight"] = torch.zeros(90, cfg.hidden)
    state["model.prior_encoder.encoder.enc_emb_tokens.weight"] = state["model.prior_encoder.enc_emb_tokens.weight"]
    with pytest.raises(OfficialCheckpointError, match=r"enc_emb_tokens\.weight: shape \(90, 16\), the official"):
        convert_map(state, cfg)


def test_bare_generator_state_dict_maps_too(small):
    cfg, _, theirs = small
    bare = {k.removeprefix("model."): v for k, v in theirs.items()}
    layout = official.detect_layout(bare)
    assert not layout.lightning and official.detect_stage(bare, layout) is None
    mapped, report = convert_map(bare, cfg)
    assert report.mapped_targets == len(mapped) and "prior_encoder.pitch_bins" in report.ignored
    s2 = bare | {"discriminator.wd.pre.bias": torch.zeros(1), "soundstream.decoder_2.x": torch.zeros(1)}
    assert official.detect_stage(s2, layout) == "s2"
    _, report = convert_map(s2, cfg)
    assert report.ignored["discriminator.wd.pre.bias"] == official.DISCRIMINATOR_REASON
    assert report.ignored["soundstream.decoder_2.x"] == official.CODEC_REASON


def test_target_config_must_be_the_official_objective():
    anchored = replace(paper(), consistency=replace(paper().consistency, parametrisation="anchored"))
    with pytest.raises(OfficialCheckpointError, match="parametrisation 'anchored'"):
        official_target_config(anchored)
    cfg = official_target_config()
    assert cfg.consistency.noise_embed_scale == 1.0 and cfg.prosody.alpha == 0.0 and cfg.vocab_size == 93
    assert cfg.compat_settings() == {
        "phoneme_encoder.positions": "constant",
        "prompt_encoder.positions": "constant",
        "duration_predictor.attn_residual": "before-attention",
        "pitch_predictor.attn_residual": "before-attention",
        "wavenet.film_query": "noisy-input",
        "wavenet.noise_embed_exponent": "i/(half-1)",
    }
    assert cfg.compat_settings() == {f"{part}.{k}": v for part, kv in OFFICIAL_COMPAT.items() for k, v in kv.items()}
    assert cfg.prosody.refine == paper().prosody.refine  # ours: no official counterpart


# -- reading files ---------------------------------------------------------------------------------------------
@pytest.fixture
def official_pickles(monkeypatch):
    """The official trainer's pickled config class, `utils.util.JsonHParams`, importable while saving."""
    util = types.ModuleType("utils.util")

    class JsonHParams:
        def __init__(self, **kwargs):
            for k, v in kwargs.items():
                setattr(self, k, JsonHParams(**v) if isinstance(v, dict) else v)

    JsonHParams.__module__, JsonHParams.__qualname__ = "utils.util", "JsonHParams"
    util.JsonHParams = JsonHParams
    monkeypatch.setitem(sys.modules, "utils", types.ModuleType("utils"))
    monkeypatch.setitem(sys.modules, "utils.util", util)
    return JsonHParams


def lightning_ckpt(path, state, hparams):
    torch.save(
        {
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.2.0",
            "state_dict": state,
            "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 1e-4}]}],
            "hyper_parameters": {"cfg": hparams},
        },
        path,
    )
    return path


def released_settings(JsonHParams, **wavenet):
    return JsonHParams(
        model={
            "prior_encoder": {"encoder": {"encoder_head": 2}, "pitch_min": 50, "pitch_max": 1100},
            "diffusion": {"wavenet": {"attn_head": 2, "dilation_cycle": 2, **wavenet}, "is_fixed": False},
            "query_emb": {"head_num": 2},
        }
    )


def test_lightning_checkpoint_is_read_without_running_its_pickles(small, official_pickles, tmp_path):
    cfg, _, theirs = small
    path = lightning_ckpt(tmp_path / "last.ckpt", theirs, released_settings(official_pickles))
    checkpoint = read_official(path)
    assert checkpoint.stage == "s1" and checkpoint.lightning and checkpoint.sha256 == sha256_file(path)
    assert checkpoint.hparams.model.diffusion.wavenet.dilation_cycle == 2
    assert type(checkpoint.hparams) is not official_pickles  # a stub, not the pickled class
    assert official.setting_conflicts(cfg, checkpoint.hparams) == []
    other = lightning_ckpt(tmp_path / "other.ckpt", theirs, released_settings(official_pickles, attn_head=4))
    with pytest.raises(OfficialCheckpointError, match=r"model\.diffusion\.wavenet\.attn_head = 4 \(ours 2\)"):
        convert_official(other, tmp_path / "out", cfg=small_config())


def test_unknown_pickled_class_is_refused_with_an_extraction_recipe(small, monkeypatch, tmp_path):
    module = types.ModuleType("trainer_state")

    class Callback:
        pass

    Callback.__module__, Callback.__qualname__, module.Callback = "trainer_state", "Callback", Callback
    monkeypatch.setitem(sys.modules, "trainer_state", module)
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": small[2], "callbacks": Callback()}, path)
    with pytest.raises(OfficialCheckpointError) as info:
        read_official(path)
    text = str(info.value)
    assert "trainer_state.Callback" in text and "weights_only=False)['state_dict']" in text and "\n" not in text


def test_stage_and_file_errors(small, tmp_path):
    bare = tmp_path / "generator.pt"
    torch.save({k.removeprefix("model."): v for k, v in small[2].items()}, bare)
    assert read_official(bare).stage is None  # s1 and s2 generators have the same keys
    assert read_official(bare, "s2").stage == "s2"  # so the user says which
    path = tmp_path / "s1.pt"
    torch.save(small[2], path)
    with pytest.raises(OfficialCheckpointError, match="--stage s2, but the file has no s2 discriminator keys"):
        read_official(path, "s2")
    s2 = tmp_path / "s2.pt"
    torch.save(small[2] | {"discriminator.wd.pre.bias": torch.zeros(1)}, s2)
    with pytest.raises(OfficialCheckpointError, match="--stage s1, but the file has s2 discriminator keys"):
        read_official(s2, "s1")
    with pytest.raises(FileNotFoundError):
        read_official(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.pt"
    torch.save({"epoch": 1}, junk)
    with pytest.raises(OfficialCheckpointError, match="neither a Lightning checkpoint nor a state dict"):
        read_official(junk)


# -- converting --------------------------------------------------------------------------------------------------
@pytest.fixture
def small_file(small, tmp_path):
    path = tmp_path / "epoch=499-step=160000.ckpt"
    torch.save({"state_dict": small[2], "epoch": 499}, path)
    return path


@pytest.fixture
def codec_dir(tmp_path):
    path = tmp_path / "codec"
    MelCodec(n_mels=8, n_iter=2, latent_mean=0.0, latent_scale=3.0).save(path)
    return path


def test_writes_a_checkpoint_that_loads_strictly_with_the_official_compat_settings(small, small_file, codec_dir):
    out = small_file.parent / "converted"
    with pytest.raises(OfficialCheckpointError, match="--untrained-refinement"):
        convert_official(small_file, out, cfg=small_config(), codec=codec_dir)
    with pytest.raises(OfficialCheckpointError, match="pass the codec directory"):
        convert_official(small_file, out, cfg=small_config(), untrained_refinement=True)
    wrong = MelCodec(n_mels=8, latent_mean=0.0, latent_scale=1.0)
    with pytest.raises(OfficialCheckpointError, match=r"latent_scale 1\.0 \(official 3\.0\)"):
        convert_official(small_file, out, cfg=small_config(), codec=wrong, untrained_refinement=True)

    path = convert_official(small_file, out, cfg=small_config(), codec=codec_dir, untrained_refinement=True)
    model, codec, vocab = load_checkpoint(path)
    cfg, ours, _ = small
    loaded = model.state_dict()
    assert torch.equal(loaded["lcm.layers.1.dilated.weight"], ours["lcm.layers.1.dilated.weight"])
    assert torch.equal(loaded["pitch_predictor.proj.bias"], ours["pitch_predictor.proj.bias"])
    assert not loaded["duration_refiner.out_proj.weight"].any()  # as initialised: zero output projection
    assert model.cfg == cfg and model.cfg.prosody.alpha == 0.0 and vocab == official_vocab()
    assert codec.latent_scale == 3.0
    meta = read_description(path)["metadata"]
    assert meta["converted_from"]["sha256"] == sha256_file(small_file)
    assert meta["converted_from"]["stage"] == "s1" and meta["converted_from"]["lightning"]
    assert meta["mapping"]["source_keys"] == len(small[2]) and meta["mapping"]["mapped_targets"] == len(shapes_of(cfg))
    assert meta["mapping"]["ignored"][official.POSITIONS] == 2 and "untrained" in meta["refinement"]
    assert meta["compat"]["settings"] == cfg.compat_settings() == model.cfg.compat_settings()
    assert "batch size 1" in meta["compat"]["note"]
    assert read_description(path)["model"]["wavenet"]["film_query"] == "noisy-input"


def test_converted_model_synthesises_the_same_for_an_item_alone_or_in_a_batch(small_file, codec_dir):
    """A forward through every part and a 2-step consistency sample of the converted model: finite, and the
    same for an item alone as in a batch, padded or not first (constant positions: the official batch-size-1
    behaviour for every item, not the official batched forward's row b for item b)."""
    path = convert_official(
        small_file, small_file.parent / "c", cfg=small_config(), codec=codec_dir, untrained_refinement=True
    )
    model = load_checkpoint(path)[0].eval()
    d = model.cfg.latent_dim
    torch.manual_seed(0)
    prompt, phones = torch.randn(2, d, 12), torch.randint(5, 93, (2, 6))
    pmask, phone_mask = lengths_to_mask(torch.tensor([9, 12])), lengths_to_mask(torch.tensor([4, 6]))
    start, renoise = torch.randn(2, d, 12), torch.randn(2, d, 12)

    def synthesise(rows):
        with torch.no_grad():
            spk, style, tokens = model.encode_prompt(prompt[rows], pmask[rows])
            hidden = model.encode_phonemes(phones[rows], phone_mask[rows], style)
            log_dur, _ = model.prosody("duration", hidden, phone_mask[rows], spk, pmask[rows], 0.0, None)
            durations = torch.full_like(phones[rows], 2) * phone_mask[rows]  # fixed, to compare lengths
            frames, fmask = length_regulate(hidden, durations, phone_mask[rows])
            log_f0, _ = model.prosody("pitch", frames, fmask, spk, pmask[rows], 0.0, None)
            cond = model.frame_condition(frames, f0_from_log(log_f0, fmask))
            length = frames.shape[1]
            draws = iter([renoise[rows, :, :length]])

            def denoise(x, sigma):
                return model.denoise(x, torch.full((len(rows),), sigma), cond, fmask, tokens)

            x = sample_consistency(denoise, start[rows, :, :length] * 80.0, [80.0, 2.0, 0.0], lambda: next(draws))
            return log_dur, log_f0, x * fmask.unsqueeze(1)

    batch = synthesise([0, 1])
    assert all(torch.isfinite(t).all() for t in batch)
    for item in (0, 1):  # item 0 is padded in the batch; item 1 is second (officially: table row 1, not 0)
        for one, both in zip(synthesise([item]), batch, strict=True):
            torch.testing.assert_close(both[item : item + 1, ..., : one.shape[-1]], one, atol=1e-4, rtol=1e-4)


# -- CLI ---------------------------------------------------------------------------------------------------------
def cli(argv):
    parser = argparse.ArgumentParser(prog="flashspeech-bench")
    add_convert_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_stage_choices_are_the_converters():
    assert cli_convert.STAGES == official.STAGES


def test_cli_converts_end_to_end(small_file, codec_dir, monkeypatch, capsys):
    monkeypatch.setattr(official, "paper", small_config)  # the CLI targets the paper preset
    out = small_file.parent / "cli-out"
    argv = ["convert-official", str(small_file), "-o", str(out), "--codec", str(codec_dir), "--untrained-refinement"]
    assert cli(argv) == 0
    printed = capsys.readouterr().out
    assert f"converted {small_file.name} (stage s1" in printed and f"wrote {out}" in printed
    assert f"ignored 2: {official.POSITIONS}" in printed
    assert "official compatibility settings: phoneme_encoder.positions = constant, " in printed
    assert load_checkpoint(out)[0].cfg.name == "small-official"
