"""The EDM latent diffusion baseline: loss weighting, config, synthesis, systems (sampling: test_sampling)."""

from __future__ import annotations

import json

import pytest
import torch

from bench.testsets.embedded import EMBEDDED
from bench.testsets.manifest import load_manifest
from flashspeech import consistency as cm
from flashspeech import diffusion as dm
from flashspeech import sampling as sm
from flashspeech.checkpoint import CONFIG
from flashspeech.codecs import MelCodec
from flashspeech.config import (
    PRESETS,
    FlashSpeechConfig,
    paper_diffusion,
    preset,
    tiny,
    tiny_diffusion,
    with_overrides,
)
from flashspeech.foundation.audio import read_audio
from flashspeech.synthesis import FlashSpeech

# -- training objective --------------------------------------------------------------------------------


def test_diffusion_loss_is_edm_weighted_mse_for_both_parametrisations():
    """lambda(sigma) = (sigma^2 + s^2) / (sigma s)^2 = 1 / c_out^2: the network's target has unit variance.
    With the EDM preconditioning s is sigma_data; with the anchored one it is the anchor's scale per element."""
    from types import SimpleNamespace

    from flashspeech.model import FlashSpeechModel
    from flashspeech.training.losses import Conditioning, diffusion_loss

    for parametrisation in ("edm", "anchored"):
        cfg = with_overrides(tiny_diffusion(latent_dim=6), {"consistency": {"parametrisation": parametrisation}})
        torch.manual_seed(0)
        model = FlashSpeechModel(cfg).eval()
        x0 = torch.randn(2, 6, 20)
        mask = torch.ones(2, 20, dtype=torch.bool)
        mask[1, 15:] = False
        x0 = x0 * mask[:, None]
        cond, tokens, z = torch.randn(2, 20, cfg.hidden), torch.randn(2, cfg.query_tokens, cfg.hidden), torch.zeros(1)
        anchor = model.latent_anchor(cond, mask)
        c = Conditioning(cond, tokens, mask, z, z, z, z, z, z, anchor, None)
        loss = diffusion_loss(model, SimpleNamespace(latent=x0), c, torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)  # the same draws, by hand
        sigma = dm.edm_training_sigmas(2, g)
        noise = torch.randn(x0.shape, generator=g) * mask[:, None]
        d = model.denoise(x0 + sigma.view(-1, 1, 1) * noise, sigma, cond, mask, tokens, anchor)
        s = 0.5 if anchor is None else anchor[1]
        lam = (sigma.view(-1, 1, 1) ** 2 + s**2) / (sigma.view(-1, 1, 1) * s) ** 2
        m = mask[:, None].expand_as(x0).float()
        expected = ((lam * (d - x0) ** 2 * m).sum((1, 2)) / m.sum((1, 2))).mean()
        torch.testing.assert_close(loss, expected)
        assert (anchor is None) == (parametrisation == "edm")


def test_training_sigmas_are_log_normal():
    sigmas = dm.edm_training_sigmas(20_000, generator=torch.Generator().manual_seed(0))
    assert sigmas.shape == (20_000,) and sigmas.dtype == torch.float32 and (sigmas > 0).all()
    log = sigmas.log()
    assert abs(float(log.mean()) - dm.P_MEAN) < 0.03 and abs(float(log.std()) - dm.P_STD) < 0.03
    again = dm.edm_training_sigmas(20_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sigmas, again)
    shifted = dm.edm_training_sigmas(20_000, torch.Generator().manual_seed(1), p_mean=0.0, p_std=0.5).log()
    assert abs(float(shifted.mean())) < 0.02 and abs(float(shifted.std()) - 0.5) < 0.02


# -- config --------------------------------------------------------------------------------------------


def test_objective_config_and_presets():
    assert FlashSpeechConfig().objective == "consistency" and tiny().objective == "consistency"
    with pytest.raises(ValueError, match="objective must be one of 'consistency', 'diffusion', got 'ddpm'"):
        FlashSpeechConfig(objective="ddpm")
    small = tiny_diffusion(latent_dim=80, vocab_size=50)
    assert (small.name, small.objective, small.latent_dim, small.vocab_size) == ("tiny-diffusion", "diffusion", 80, 50)
    assert small.wavenet == tiny().wavenet and small.prosody == tiny().prosody
    big = paper_diffusion()
    assert (big.name, big.objective) == ("paper-diffusion", "diffusion") and big.wavenet == FlashSpeechConfig().wavenet
    assert {"tiny-diffusion", "paper-diffusion"} <= set(PRESETS)
    assert preset("tiny-diffusion", latent_dim=80) == tiny_diffusion(latent_dim=80)
    assert FlashSpeechConfig.from_dict(small.to_dict()) == small
    legacy = tiny().to_dict()
    del legacy["objective"]
    assert FlashSpeechConfig.from_dict(legacy) == tiny()
    with pytest.raises(ValueError, match="objective"):
        FlashSpeechConfig.from_dict({**legacy, "objective": "flow"})


# -- the model and synthesis ---------------------------------------------------------------------------


def _with_output_weights(tts: FlashSpeech) -> FlashSpeech:
    """The output projections start at zero; give them weights so the networks shape the output."""
    torch.manual_seed(1)
    for net in (tts.model.lcm, tts.model.duration_refiner, tts.model.pitch_refiner):
        torch.nn.init.normal_(net.out_proj.weight, std=0.05)
    return tts


@pytest.fixture(scope="module")
def pair() -> tuple[FlashSpeech, FlashSpeech]:
    """A diffusion and a consistency model with identical weights."""
    codec = MelCodec(n_iter=8)
    diffusion = _with_output_weights(FlashSpeech.from_config(tiny_diffusion(latent_dim=codec.latent_dim), codec))
    consistency = _with_output_weights(FlashSpeech.from_config(tiny(latent_dim=codec.latent_dim), codec))
    return diffusion, consistency


@pytest.fixture(scope="module")
def item():
    manifest = load_manifest(EMBEDDED["real"].manifest_path(None))
    first = manifest.items[0]
    return first.text, read_audio(first.prompt_audio, 16_000).samples


def test_diffusion_denoiser_uses_edm_preconditioning(pair):
    diffusion, consistency = pair
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, diffusion.config.latent_dim, 9, generator=g)
    cond, tokens = torch.randn(2, 9, 128, generator=g), torch.randn(2, 8, 128, generator=g)
    mask = torch.ones(2, 9, dtype=torch.bool)

    def both(sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.full((2,), sigma)
        with torch.no_grad():
            return tuple(m.model.denoise(x, s, cond, mask, tokens) for m in (diffusion, consistency))

    d, c = both(cm.SIGMA_MIN)
    assert torch.equal(c, x) and not torch.allclose(d, x, atol=1e-5)  # only the consistency model is pinned
    torch.testing.assert_close(both(1e-6)[0], x, atol=1e-5, rtol=0)  # c_skip -> 1, c_out -> 0 as sigma -> 0
    # same network output F: D = c_skip x + c_out F with sigma_min = 0
    sigma = torch.tensor(1.3)
    d, c = both(1.3)
    F = (c - cm.c_skip(sigma) * x) / cm.c_out(sigma)
    torch.testing.assert_close(d, cm.c_skip(sigma, sigma_min=0.0) * x + cm.c_out(sigma, sigma_min=0.0) * F)


def test_diffusion_synthesis_with_euler_and_heun(pair, item):
    tts, _ = pair
    text, prompt = item
    heun = tts.synthesize([text], [prompt], steps=4, seed=3)
    assert (heun.plan.sampler, heun.plan.schedule) == ("heun", "karras")
    assert heun.plan.sigmas == tuple(sm.ode_sigmas(4)) and heun.plan.steps == 4
    euler = tts.synthesize([text], [prompt], steps=4, sampler="euler", seed=3)
    assert euler.plan.sampler == "euler" and euler.plan.sigmas == heun.plan.sigmas
    for out in (heun, euler):
        wav = out.waveforms[0]
        assert len(wav) == tts.codec.num_samples(int(out.durations[0].sum())) and torch.isfinite(wav).all()
    assert torch.equal(euler.durations[0], heun.durations[0])
    assert not torch.allclose(euler.latents[0], heun.latents[0])
    again = tts.synthesize([text], [prompt], steps=4, seed=3)
    assert torch.equal(again.waveforms[0], heun.waveforms[0]) and torch.equal(again.latents[0], heun.latents[0])
    other = tts.synthesize([text], [prompt], steps=4, seed=4)
    assert not (other.latents[0].shape == heun.latents[0].shape and torch.equal(other.latents[0], heun.latents[0]))
    explicit = tts.synthesize([text], [prompt], sigmas=[80.0, 5.0, 0.5], sampler="euler", seed=3)
    assert explicit.plan.sampler == "euler" and explicit.plan.schedule == "explicit"
    assert explicit.plan.sigmas == (80.0, 5.0, 0.5, 0.0)
    planned = tts.synthesize([text], [prompt], plan=tts.plan(4, "euler"), seed=3)
    assert planned.plan == euler.plan and torch.equal(planned.waveforms[0], euler.waveforms[0])


def test_diffusion_calls_the_network_once_per_function_evaluation(pair, item, monkeypatch):
    tts, _ = pair
    text, prompt = item
    calls: list[float] = []
    denoise = tts.model.denoise

    def counting(x, sigma, *args):
        calls.append(float(sigma[0]))
        return denoise(x, sigma, *args)

    monkeypatch.setattr(tts.model, "denoise", counting)
    for name, steps in (("heun", 3), ("euler", 5)):
        calls.clear()
        out = tts.synthesize([text], [prompt], steps=steps, sampler=name)
        assert len(calls) == out.plan.nfe == (steps if name == "euler" else 2 * steps - 1)


def test_noise_is_drawn_as_for_the_consistency_model(pair, item):
    """Same weights and seed: identical prosody, and one Euler step to 0 is one denoiser call at sigma_max."""
    diffusion, consistency = pair
    text, prompt = item
    d = diffusion.synthesize([text], [prompt], steps=1, sampler="euler", seed=7)
    c = consistency.synthesize([text], [prompt], steps=1, seed=7)
    assert torch.equal(d.durations[0], c.durations[0]) and torch.equal(d.f0[0], c.f0[0])
    torch.testing.assert_close(d.latents[0], c.latents[0], atol=1e-4, rtol=1e-4)  # c_out differs by 0.002 / 80


def test_sampler_errors_are_clear(pair, item):
    diffusion, consistency = pair
    text, prompt = item
    with pytest.raises(ValueError, match="sampler 'heun' needs a diffusion model"):
        consistency.synthesize([text], [prompt], sampler="heun")
    assert consistency.synthesize([text], [prompt], steps=1, sampler="consistency").plan.schedule == "one-step"
    with pytest.raises(ValueError, match="'consistency' is not an ODE sampler"):
        diffusion.synthesize([text], [prompt], sampler="consistency")
    with pytest.raises(ValueError, match=r"'dpm' is not an ODE sampler.*euler, heun"):
        diffusion.synthesize([text], [prompt], sampler="dpm")
    with pytest.raises(ValueError, match="start_latents are not supported for a diffusion model"):
        diffusion.synthesize([text], [prompt], start_latents=[torch.zeros(diffusion.config.latent_dim, 10)])
    with pytest.raises(ValueError, match="a consistency sampling plan cannot sample a diffusion model"):
        diffusion.synthesize([text], [prompt], plan=consistency.plan(2))
    with pytest.raises(ValueError, match="either a plan or steps"):
        diffusion.synthesize([text], [prompt], plan=diffusion.plan(2), steps=2)


def test_checkpoint_round_trip_keeps_the_objective(pair, item, tmp_path):
    tts, _ = pair
    text, prompt = item
    path = tts.save_pretrained(tmp_path / "diffusion")
    assert json.loads((path / CONFIG).read_text())["model"]["objective"] == "diffusion"
    loaded = FlashSpeech.from_pretrained(path)
    assert loaded.config == tts.config and loaded.config.objective == "diffusion"
    a = tts.synthesize([text], [prompt], steps=4, seed=5)
    b = loaded.synthesize([text], [prompt], steps=4, seed=5)
    assert torch.equal(a.waveforms[0], b.waveforms[0])
    # a checkpoint written before the objective existed loads as a consistency model
    description = json.loads((path / CONFIG).read_text())
    del description["model"]["objective"]
    description["model"]["name"] = "tiny"
    (path / CONFIG).write_text(json.dumps(description))
    assert FlashSpeech.from_pretrained(path).config == tiny(latent_dim=tts.config.latent_dim)


# -- benchmark systems ---------------------------------------------------------------------------------
