"""The FlashSpeech network: sizes of the paper preset, config round trips, module behaviour."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
import torch

from flashspeech.config import FlashSpeechConfig, paper, preset, tiny, with_overrides
from flashspeech.model import FlashSpeechModel, durations_from_log, pitch_bin_edges
from flashspeech.modules.common import length_regulate, lengths_to_mask

# Parameter counts computed from the official code's config and module definitions.
PAPER_TABLE = {
    "phoneme encoder + token embedding": (("phoneme_encoder", "token_embedding"), 76.06e6 + 0.05e6),
    "duration predictor": (("duration_predictor",), 34.16e6),
    "pitch predictor + pitch embedding": (("pitch_predictor", "pitch_embedding"), 49.88e6 + 0.26e6),
    "prompt encoder + input linear": (("prompt_encoder", "prompt_in"), 69.25e6 + 0.13e6),
    "query tokens + query attention": (("query_tokens", "query_attention"), 0.02e6 + 1.05e6),
    "LCM WaveNet": (("lcm",), 147.54e6),
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def paper_model() -> FlashSpeechModel:
    with torch.device("meta"):
        return FlashSpeechModel(paper())


@pytest.mark.parametrize("row", list(PAPER_TABLE))
def test_paper_preset_module_sizes_match_the_official_code(paper_model, row):
    names, expected = PAPER_TABLE[row]
    got = sum(_count(getattr(paper_model, n)) for n in names)
    assert abs(got - expected) / expected < 0.02, f"{row}: {got / 1e6:.2f} M vs {expected / 1e6:.2f} M"


def test_paper_preset_total_is_378m(paper_model):
    refiners = _count(paper_model.duration_refiner) + _count(paper_model.pitch_refiner)
    total = _count(paper_model) - refiners
    assert abs(total - 378.4e6) / 378.4e6 < 0.02
    assert sum(1 for layer in paper_model.lcm.layers if layer.film is not None) == 14  # every 3rd of 40


def test_tiny_preset_is_small_and_shares_the_architecture(paper_model):
    model = FlashSpeechModel(tiny())
    assert 1e6 < _count(model) < 10e6

    def shape_free(m: torch.nn.Module) -> set[str]:  # parameter names with layer indices wildcarded
        return {re.sub(r"\.\d+\.", ".*.", n) for n, _ in m.named_parameters()}

    # the same network, plus the anchor head of the "anchored" parametrisation (the paper's is "edm")
    assert shape_free(model) - shape_free(paper_model) == {
        f"anchor.{n}" for n in ("norm.weight", "norm.bias", "convs.*.weight", "convs.*.bias", "out.weight", "out.bias")
    }
    assert shape_free(paper_model) <= shape_free(model)
    assert paper_model.anchor is None and paper().consistency.parametrisation == "edm"
    edm = FlashSpeechModel(with_overrides(tiny(), {"consistency": {"parametrisation": "edm"}}))
    assert shape_free(edm) == shape_free(paper_model)


def test_anchored_denoiser_starts_as_the_edm_one_and_keeps_the_boundary_condition():
    """At init the anchor is (0, sigma_data), so both parametrisations give the same function; f(x, sigma_min)
    = x holds for any anchor."""
    torch.manual_seed(0)
    anchored = FlashSpeechModel(tiny(latent_dim=6)).eval()
    edm = FlashSpeechModel(with_overrides(tiny(latent_dim=6), {"consistency": {"parametrisation": "edm"}})).eval()
    state = {k: v for k, v in anchored.state_dict().items() if not k.startswith("anchor.")}
    edm.load_state_dict(state, strict=True)
    torch.nn.init.normal_(anchored.lcm.out_proj.weight, std=0.1)  # F != 0
    edm.lcm.out_proj.weight.data.copy_(anchored.lcm.out_proj.weight)
    x, cond = torch.randn(2, 6, 30), torch.randn(2, 30, 128)
    tokens, mask = torch.randn(2, 8, 128), torch.ones(2, 30, dtype=torch.bool)
    sigma = torch.tensor([0.3, 5.0])
    with torch.no_grad():
        torch.testing.assert_close(
            anchored.denoise(x, sigma, cond, mask, tokens), edm.denoise(x, sigma, cond, mask, tokens)
        )
        torch.nn.init.normal_(anchored.anchor.out.weight, std=0.5)  # a trained-looking anchor
        mean, scale = anchored.latent_anchor(cond, mask)
        assert mean.abs().mean() > 0.1 and not torch.allclose(scale, torch.full_like(scale, 0.5))
        at_min = anchored.denoise(x, torch.full((2,), 0.002), cond, mask, tokens)
        torch.testing.assert_close(at_min, x)


def test_config_dict_round_trip_and_unknown_keys():
    for cfg in (paper(), tiny()):
        assert FlashSpeechConfig.from_dict(cfg.to_dict()) == cfg
    data = tiny().to_dict()
    data["wavenet"]["layerz"] = 3
    with pytest.raises(ValueError, match="unknown config keys"):
        FlashSpeechConfig.from_dict(data)
    with pytest.raises(KeyError, match="known: paper, tiny"):
        preset("huge")


def test_pitch_bins_are_log_spaced_50_to_1100():
    edges = pitch_bin_edges(paper())
    assert edges.shape == (511,)
    assert edges[0].item() == pytest.approx(50.0) and edges[-1].item() == pytest.approx(1100.0)
    ratios = edges[1:] / edges[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-4)
    bins = torch.bucketize(torch.tensor([0.0, 49.0, 50.5, 1099.0, 5000.0]), edges)
    assert bins.tolist()[0] == 0 and bins.tolist()[1] == 0 and bins.tolist()[-1] == 511


def test_duration_rounding_follows_log1p_convention():
    log_d = torch.log1p(torch.tensor([[0.0, 2.4, 2.6, 7.0]]))
    mask = torch.tensor([[True, True, True, False]])
    assert durations_from_log(log_d, mask).tolist() == [[0, 2, 3, 0]]
    assert durations_from_log(torch.tensor([[-5.0]]), torch.tensor([[True]])).tolist() == [[0]]


def test_length_regulate_expands_and_masks():
    x = torch.arange(2 * 3 * 1, dtype=torch.float32).view(2, 3, 1)
    d = torch.tensor([[1, 2, 0], [3, 0, 9]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    frames, fmask = length_regulate(x, d, mask)
    assert frames.shape == (2, 3, 1)
    assert frames[0, :, 0].tolist() == [0, 1, 1] and frames[1, :, 0].tolist() == [3, 3, 3]
    assert fmask.tolist() == [[True, True, True], [True, True, True]]
    assert lengths_to_mask(torch.tensor([1, 3])).tolist() == [[True, False, False], [True, True, True]]


def test_network_outputs_ignore_padding():
    """Each module's output for an item is the same alone and padded in a batch with a longer item."""
    torch.manual_seed(0)
    model = FlashSpeechModel(tiny()).eval()
    h, d = model.cfg.hidden, model.cfg.latent_dim
    prompt_a, prompt_b = torch.randn(1, d, 30), torch.randn(1, d, 50)
    phones_a, phones_b = torch.randint(5, 100, (1, 7)), torch.randint(5, 100, (1, 12))
    with torch.no_grad():
        spk_a, style_a, tok_a = model.encode_prompt(prompt_a, torch.ones(1, 30, dtype=torch.bool))
        hid_a = model.encode_phonemes(phones_a, torch.ones(1, 7, dtype=torch.bool), style_a)
        prompts = torch.zeros(2, d, 50)
        prompts[0, :, :30], prompts[1] = prompt_a[0], prompt_b[0]
        pmask = lengths_to_mask(torch.tensor([30, 50]))
        phones = torch.zeros(2, 12, dtype=torch.long)
        phones[0, :7], phones[1] = phones_a[0], phones_b[0]
        mask = lengths_to_mask(torch.tensor([7, 12]))
        spk, style, tok = model.encode_prompt(prompts, pmask)
        hid = model.encode_phonemes(phones, mask, style)
        torch.testing.assert_close(style[0], style_a[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(tok[0], tok_a[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(hid[0, :7], hid_a[0], atol=1e-5, rtol=1e-5)
        dur, _ = model.duration_predictor(hid, mask, spk, pmask)
        dur_a, _ = model.duration_predictor(
            hid_a, torch.ones(1, 7, dtype=torch.bool), spk_a, torch.ones(1, 30, dtype=torch.bool)
        )
        torch.testing.assert_close(dur[0, :7], dur_a[0], atol=1e-5, rtol=1e-5)
        x = torch.randn(2, d, 40)
        fmask = lengths_to_mask(torch.tensor([25, 40]))
        cond = torch.randn(2, 40, h)
        sigma = torch.tensor([3.0, 3.0])
        out = model.denoise(x, sigma, cond, fmask, tok)
        out_a = model.denoise(x[:1, :, :25], sigma[:1], cond[:1, :25], fmask[:1, :25], tok_a)
        torch.testing.assert_close(out[0, :, :25], out_a[0], atol=1e-5, rtol=1e-5)


# -- compatibility settings (flashspeech.config): each changes one computation, defaults change nothing -----------
def test_compat_settings_are_left_out_of_config_dicts_at_their_default():
    """Configs written before the settings existed read back equal, and their JSON is unchanged: the shipped
    checkpoints' config.json "model" entries are exactly what to_dict writes for them today."""
    from flashspeech.checkpoint import read_description

    for name in ("flashspeech-tiny", "diffusion-tiny", "consistency-only-tiny"):
        stored = read_description(f"pretrained:{name}")["model"]
        cfg = FlashSpeechConfig.from_dict(stored)
        assert cfg.to_dict() == stored and cfg.compat_settings() == {}
        assert cfg.wavenet.film_query == "input" and cfg.phoneme_encoder.positions == "sinusoidal"
    for cfg in (paper(), tiny()):
        data = cfg.to_dict()
        assert "positions" not in data["prompt_encoder"] and "attn_residual" not in data["pitch_predictor"]
        assert not {"film_query", "noise_embed_exponent"} & set(data["wavenet"])
    official = with_overrides(
        tiny(), {"wavenet": {"film_query": "noisy-input"}, "duration_predictor": {"attn_residual": "before-attention"}}
    )
    assert official.compat_settings() == {
        "duration_predictor.attn_residual": "before-attention",
        "wavenet.film_query": "noisy-input",
    }
    assert official.to_dict()["wavenet"]["film_query"] == "noisy-input"
    assert FlashSpeechConfig.from_dict(official.to_dict()) == official
    with pytest.raises(ValueError, match="positions must be one of 'sinusoidal', 'constant', got 'learned'"):
        with_overrides(tiny(), {"phoneme_encoder": {"positions": "learned"}})
    with pytest.raises(ValueError, match="noise_embed_exponent must be one of"):
        with_overrides(tiny(), {"wavenet": {"noise_embed_exponent": "i/d"}})


def test_position_tables_follow_their_formulas():
    from flashspeech.modules.common import interleaved_sinusoidal_positions, sinusoidal_positions
    from flashspeech.modules.encoder import encoder_positions

    dim, length = 8, 5
    ours, official = sinusoidal_positions(length, dim), interleaved_sinusoidal_positions(length, dim)
    for p in range(length):
        for i in range(dim // 2):
            # ours: [sin, cos] halves at 10000^(-i/half); official: sin at channel 2i, cos at 2i + 1, 10000^(-2i/dim)
            arg = p * 10_000 ** (-i / (dim // 2))
            assert ours[p, i].item() == pytest.approx(math.sin(arg), abs=1e-6)
            assert ours[p, dim // 2 + i].item() == pytest.approx(math.cos(arg), abs=1e-6)
            arg = p * 10_000 ** (-2 * i / dim)
            assert official[p, 2 * i].item() == pytest.approx(math.sin(arg), abs=1e-6)
            assert official[p, 2 * i + 1].item() == pytest.approx(math.cos(arg), abs=1e-6)
    assert official[0].tolist() == [0.0, 1.0] * (dim // 2)
    assert torch.equal(encoder_positions("sinusoidal", length, dim), ours)
    assert encoder_positions("constant", length, dim).tolist() == [[0.0, 1.0] * (dim // 2)]


@pytest.mark.parametrize("positions", ["sinusoidal", "constant"])
def test_encoder_adds_its_positions(positions):
    """With no layers an encoder is LayerNorm(x + positions) on valid frames: every frame gets row 0,
    [0, 1, 0, 1, ...], for "constant", whatever its item's index in the batch."""
    from flashspeech.config import EncoderConfig
    from flashspeech.modules.common import sinusoidal_positions
    from flashspeech.modules.encoder import TransformerEncoder

    torch.manual_seed(0)
    enc = TransformerEncoder(EncoderConfig(layers=0, hidden=6, heads=2, positions=positions)).eval()
    x, mask = torch.randn(3, 4, 6), lengths_to_mask(torch.tensor([4, 2, 3]))
    table = torch.tensor([0.0, 1.0] * 3).expand(4, 6) if positions == "constant" else sinusoidal_positions(4, 6)
    want = torch.nn.functional.layer_norm(x + table, (6,)) * mask.unsqueeze(-1)
    want = enc.final_norm.norm.weight * want + enc.final_norm.norm.bias * mask.unsqueeze(-1)
    torch.testing.assert_close(enc(x, mask), want)


def test_noise_embedding_frequencies_follow_the_exponent_setting():
    from flashspeech.config import WaveNetConfig
    from flashspeech.modules.common import sinusoid_frequencies
    from flashspeech.modules.wavenet import WaveNet

    half = 4
    for divisor in (half, half - 1):
        want = [10_000 ** (-i / divisor) for i in range(half)]
        assert sinusoid_frequencies(half, divisor).tolist() == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="divisor must be positive"):
        sinusoid_frequencies(1, 0)
    c_noise = torch.tensor([0.3, -1.2])
    for exponent, divisor in (("i/half", half), ("i/(half-1)", half - 1)):
        torch.manual_seed(0)
        cfg = WaveNetConfig(layers=1, hidden=4, heads=2, noise_embed_dim=2 * half, noise_mlp_hidden=8)
        net = WaveNet(replace(cfg, noise_embed_exponent=exponent), 2, cond_dim=4, noise_scale=10.0)
        freqs = torch.tensor([10_000 ** (-i / divisor) for i in range(half)])
        args = 10.0 * c_noise[:, None] * freqs[None, :]
        want = net.noise_embed.mlp(torch.cat([args.sin(), args.cos()], dim=-1))
        torch.testing.assert_close(net.noise_embed(c_noise), want)


@pytest.mark.parametrize("attn_residual", ["after-attention", "before-attention"])
def test_predictor_residual_is_taken_where_the_setting_says(attn_residual):
    """Two blocks, both with cross-attention: block 1's residual is its input before or after the attention."""
    from flashspeech.config import PredictorConfig
    from flashspeech.modules.predictor import ProsodyPredictor

    torch.manual_seed(0)
    cfg = PredictorConfig(layers=2, hidden=6, heads=2, attn_every=1, attn_residual=attn_residual)
    pred = ProsodyPredictor(cfg).eval()
    x, mask = torch.randn(1, 5, 6), torch.ones(1, 5, dtype=torch.bool)
    prompt, prompt_mask = torch.randn(1, 7, 6), torch.ones(1, 7, dtype=torch.bool)

    def attend(j, h):
        block = pred.attns[j]
        a, _ = block.attn(block.norm(h), prompt, prompt, need_weights=False)
        return (a + h) / math.sqrt(2.0)

    def conv_block(i, h):
        return pred.norms[i](torch.relu(pred.convs[i](h.transpose(1, 2))).transpose(1, 2))

    with torch.no_grad():
        h1 = conv_block(0, attend(0, x))  # block 0 has no residual
        a1 = attend(1, h1)
        h2 = conv_block(1, a1) + (h1 if attn_residual == "before-attention" else a1)
        out, feature = pred(x, mask, prompt, prompt_mask)
    torch.testing.assert_close(feature, h2)
    torch.testing.assert_close(out, pred.proj(h2).squeeze(-1))


@pytest.mark.parametrize("film_query", ["input", "noisy-input"])
def test_film_query_is_the_layer_input_or_the_noisy_input(film_query):
    from flashspeech.config import WaveNetConfig
    from flashspeech.modules.wavenet import ResidualLayer

    torch.manual_seed(0)
    cfg = WaveNetConfig(layers=1, hidden=4, heads=2, film_query=film_query)
    layer = ResidualLayer(cfg, cond_dim=4, dilation=1, film=True).eval()
    x, noise, cond = torch.randn(1, 4, 6), torch.randn(1, 4), torch.randn(1, 4, 6)
    mask, tokens = torch.ones(1, 1, 6), torch.randn(1, 3, 4)
    with torch.no_grad():
        noisy = x + layer.noise_proj(noise).unsqueeze(-1)
        query = layer.film.norm((noisy if film_query == "noisy-input" else x).transpose(1, 2))
        a, _ = layer.film.attn(query, tokens, tokens, need_weights=False)
        gain, bias = layer.film.gain(a).transpose(1, 2), layer.film.bias(a).transpose(1, 2)
        y = (layer.dilated(noisy) + layer.cond_proj(cond)) * (1.0 + gain) + bias
        first, second = y.chunk(2, dim=1)
        residual, skip = layer.out_proj(torch.tanh(first) * torch.sigmoid(second)).chunk(2, dim=1)
        out, out_skip = layer(x, noise, cond, mask, tokens)
    torch.testing.assert_close(out, (x + residual) / math.sqrt(2.0))
    torch.testing.assert_close(out_skip, skip)
