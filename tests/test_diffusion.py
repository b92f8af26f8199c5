"""The EDM latent diffusion baseline: sigma grids, ODE samplers, loss weighting, config, synthesis, systems."""

from __future__ import annotations

import hashlib
import itertools
import json
import math

import pytest
import torch

from bench.config import SystemConfig
from bench.data.audio import read_audio
from bench.data.embedded import EMBEDDED
from bench.data.manifest import load_manifest
from bench.systems import build_systems
from flashspeech import consistency as cm
from flashspeech import diffusion as dm
from flashspeech.checkpoint import CONFIG
from flashspeech.codec import MelCodec
from flashspeech.config import PRESETS, FlashSpeechConfig, paper_diffusion, preset, tiny, tiny_diffusion
from flashspeech.synthesis import FlashSpeech

# -- sigma grids ---------------------------------------------------------------------------------------


def test_sampling_grid_is_karras_then_zero():
    for steps in (2, 4, 18):
        grid = dm.edm_sampling_sigmas(steps)
        assert len(grid) == steps + 1 and grid[-1] == 0.0
        assert grid[0] == pytest.approx(80.0) and grid[-2] == pytest.approx(0.002)
        assert all(a > b for a, b in itertools.pairwise(grid))
        assert grid[:-1] == cm.karras_sigmas(steps)
    assert dm.edm_sampling_sigmas(3)[1] == pytest.approx(2.5152, abs=1e-4)  # the rho = 7 midpoint
    assert dm.edm_sampling_sigmas(1) == [80.0, 0.0]
    assert dm.edm_sampling_sigmas(2, sigma_min=0.5, sigma_max=10.0, rho=1.0) == [10.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        dm.edm_sampling_sigmas(0)


def test_explicit_ode_sigmas_get_a_final_zero_and_are_validated():
    assert dm.ode_sigmas(4) == dm.edm_sampling_sigmas(4)
    assert dm.ode_sigmas(4, sigmas=[80, 1]) == [80.0, 1.0, 0.0]  # explicit sigmas win over steps
    for bad in ([], [1, 2], [100.0], [5.0, 0.0], [float("nan")]):
        with pytest.raises(ValueError):
            dm.ode_sigmas(sigmas=bad)


# -- samplers ------------------------------------------------------------------------------------------


def _recording(calls: list[float], denoiser):
    def denoise(x, sigma):
        calls.append(sigma)
        return denoiser(x, sigma)

    return denoise


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_zero_denoiser_makes_x_scale_with_sigma(name):
    eps = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sampler = dm.SAMPLERS[name]
    out = sampler(lambda x, s: torch.zeros_like(x), lambda: eps, [80.0, 10.0, 1.0])
    torch.testing.assert_close(out, eps * 1.0)
    assert torch.equal(sampler(lambda x, s: torch.zeros_like(x), lambda: eps, [80.0, 10.0, 0.0]), torch.zeros_like(eps))


def test_calls_match_function_evaluations():
    grid = dm.edm_sampling_sigmas(4)
    for name in dm.SAMPLERS:
        calls: list[float] = []
        dm.SAMPLERS[name](_recording(calls, lambda x, s: 0.5 * x), lambda: torch.ones(2), grid)
        assert len(calls) == dm.function_evaluations(name, 4)
        assert 0.0 not in calls  # the slope at sigma 0 is never needed
    calls = []
    dm.heun_sample(_recording(calls, lambda x, s: 0.5 * x), lambda: torch.ones(2), grid)
    assert calls == [grid[0], grid[1], grid[1], grid[2], grid[2], grid[3], grid[3]]
    assert dm.function_evaluations("euler", 8) == 8 and dm.function_evaluations("heun", 8) == 15
    with pytest.raises(ValueError, match="unknown sampler"):
        dm.function_evaluations("dpm", 4)


def test_heun_solves_the_gaussian_ode_better_than_euler():
    """Data N(0, sd^2): the ideal denoiser is x sd^2 / (s^2 + sd^2), and the flow maps x_T at sigma_max to
    x_T sd / sqrt(sigma_max^2 + sd^2) at 0. Heun is second order, Euler first order."""
    sd = cm.SIGMA_DATA
    eps = torch.linspace(-3.0, 3.0, 7, dtype=torch.float64)

    def ideal(x, sigma):
        return x * sd**2 / (sigma**2 + sd**2)

    exact = eps * 80.0 * sd / math.sqrt(80.0**2 + sd**2)

    def error(name: str, steps: int) -> float:
        out = dm.SAMPLERS[name](ideal, lambda: eps, dm.edm_sampling_sigmas(steps))
        return float((out - exact).abs().max() / exact.abs().max())

    # the empirical order of convergence: doubling the steps halves Euler's error, quarters Heun's
    assert 1.7 < error("euler", 40) / error("euler", 80) < 2.3
    assert 3.4 < error("heun", 40) / error("heun", 80) < 4.6
    for steps in (18, 40):  # EDM's 18 steps and more
        assert error("heun", steps) < error("euler", steps) / 2.5
        assert error("heun", steps) < error("euler", 2 * steps - 1) / 1.3  # also at equal function evaluations
    assert error("heun", 40) < 0.015


def test_samplers_need_two_sigmas():
    for sampler in dm.SAMPLERS.values():
        with pytest.raises(ValueError, match="at least 2 sigmas"):
            sampler(lambda x, s: x, lambda: torch.ones(1), [80.0])


# -- training objective --------------------------------------------------------------------------------


def test_loss_weight_values_and_unit_output_variance():
    sigma = torch.tensor([0.5, 1.0, 80.0])
    torch.testing.assert_close(dm.edm_loss_weight(sigma), torch.tensor([8.0, 5.0, (6400.25) / (1600.0)]))
    # lambda(sigma) * c_out(sigma)^2 = 1 with the EDM (sigma_min = 0) preconditioning
    torch.testing.assert_close(dm.edm_loss_weight(sigma) * cm.c_out(sigma, sigma_min=0.0) ** 2, torch.ones(3))


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
    assert heun.schedule.name == "heun" and heun.schedule.sigmas == tuple(dm.edm_sampling_sigmas(4)[:-1])
    assert heun.schedule.steps == 4
    euler = tts.synthesize([text], [prompt], steps=4, sampler="euler", seed=3)
    assert euler.schedule.name == "euler" and euler.schedule.sigmas == heun.schedule.sigmas
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
    assert explicit.schedule.name == "euler" and explicit.schedule.sigmas == (80.0, 5.0, 0.5)


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
        tts.synthesize([text], [prompt], steps=steps, sampler=name)
        assert len(calls) == dm.function_evaluations(name, steps)


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
    assert consistency.synthesize([text], [prompt], steps=1, sampler="consistency").schedule.name == "one-step"
    with pytest.raises(ValueError, match="'consistency' is not an ODE sampler"):
        diffusion.synthesize([text], [prompt], sampler="consistency")
    with pytest.raises(ValueError, match=r"'dpm' is not an ODE sampler.*euler, heun"):
        diffusion.synthesize([text], [prompt], sampler="dpm")
    with pytest.raises(ValueError, match="start_latents are not supported for a diffusion model"):
        diffusion.synthesize([text], [prompt], start_latents=[torch.zeros(diffusion.config.latent_dim, 10)])


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


def _system_config(checkpoint: str, steps: list[int], sampler: str | None = None) -> SystemConfig:
    cfg = SystemConfig(kind="flashspeech", checkpoint=checkpoint, steps=steps)
    if sampler is not None:
        cfg.sampler = sampler  # the TOML key `sampler` of a [[systems]] table
    return cfg


def test_random_diffusion_systems_record_sampler_and_evaluations():
    systems = build_systems([_system_config("random:tiny-diffusion", [2, 8], "euler")], "cpu")
    assert [s.name for s in systems] == ["diffusion-euler@2", "diffusion-euler@8"]
    described = systems[1].describe()
    assert described["sampler"] == "euler" and described["function_evaluations"] == 8
    assert described["preset"] == "tiny-diffusion" and described["steps"] == 8 and not described["trained"]
    (default,) = build_systems([_system_config("random:tiny-diffusion", [4])], "cpu")
    assert default.name == "diffusion-heun@4"
    assert default.describe()["sampler"] == "heun" and default.describe()["function_evaluations"] == 7
    manifest = load_manifest(EMBEDDED["real"].manifest_path(None))
    (generated,) = systems[0].generate(manifest.items[:1], [0])
    assert generated.error is None and generated.audio is not None and len(generated.audio) > 0
    assert generated.meta["sampler"] == "euler" and generated.meta["function_evaluations"] == 2
    assert len(generated.meta["schedule"]) == 2


def test_consistency_systems_describe_their_sampler_and_reject_another():
    """Cache keys carry a version (bench.cache), not compatibility code: a consistency system names its sampler and
    denoiser calls like the diffusion baseline, and random weights are identified by their whole config."""
    (system,) = build_systems([_system_config("random:tiny", [2])], "cpu")
    assert system.name == "flashspeech@2"
    described = system.describe()
    assert (described["sampler"], described["function_evaluations"]) == ("consistency", 2)
    config = tiny(latent_dim=MelCodec().latent_dim).to_dict()
    assert described["checkpoint_sha256"] == hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    with pytest.raises(ValueError, match="sampler 'heun' needs a diffusion model"):
        build_systems([_system_config("random:tiny", [2], "heun")], "cpu")
