"""The trainer: losses go down, resume is bit-exact, padding is irrelevant, stages train what they should."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import pytest
import torch

from flashspeech.config import tiny, tiny_diffusion
from flashspeech.model import FlashSpeechModel
from flashspeech.training.batch import collate
from flashspeech.training.losses import conditioning, consistency_loss, diffusion_loss
from flashspeech.training.trainer import TrainConfig, Trainer


@dataclass(frozen=True)
class Item:
    id: str
    speaker: str
    phonemes: torch.Tensor
    durations: torch.Tensor
    latent: torch.Tensor
    f0: torch.Tensor

    @property
    def n_frames(self) -> int:
        return int(self.latent.shape[-1])


def make_items(n: int = 6, seed: int = 0, latent_dim: int = 100) -> list[Item]:
    """Learnable toy data: each phoneme id has its own latent pattern; F0 depends on the speaker."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(40, latent_dim, generator=g) * 0.5
    items = []
    for i in range(n):
        p = int(torch.randint(6, 10, (1,), generator=g))
        ids = torch.cat([torch.tensor([2]), torch.randint(5, 40, (p,), generator=g), torch.tensor([3])])
        dur = torch.randint(2, 6, (p + 2,), generator=g)
        dur[0], dur[-1] = 1, 0
        latent = torch.repeat_interleave(table[ids], dur, dim=0).T.contiguous()
        f0 = torch.full((int(dur.sum()),), 100.0 + 20 * (i % 3))
        items.append(Item(f"u{i}", f"s{i % 3}", ids, dur, latent.half(), f0))
    return items


def make_trainer(tmp_path, stage="consistency", model=None, **overrides) -> Trainer:
    cfg = TrainConfig(
        stage=stage, steps=overrides.pop("steps", 20), lr=2e-3, warmup=0, batch_frames=400, log_every=5, **overrides
    )
    if model is None:
        torch.manual_seed(0)
        model = FlashSpeechModel(tiny_diffusion() if stage == "diffusion" else tiny())
    return Trainer(model, make_items(), cfg, tmp_path / stage)


def eval_loss(trainer: Trainer, objective: str) -> float:
    """A fixed-noise loss on the first batch, in eval mode (no dropout)."""
    model = trainer.model
    model.eval()
    batch = collate(make_items()[:4], random.Random(0))
    with torch.no_grad():
        c = conditioning(model, batch)
        gen = torch.Generator().manual_seed(0)
        if objective == "diffusion":
            main = diffusion_loss(model, batch, c, gen)
        else:
            main = consistency_loss(model, batch, c, 21, gen).loss
    return float(main + c.loss_duration + c.loss_pitch)


@pytest.mark.parametrize("stage", ["consistency", "diffusion"])
def test_a_few_steps_reduce_the_loss(tmp_path, stage):
    trainer = make_trainer(tmp_path, stage, steps=25)
    before = eval_loss(trainer, stage)
    trainer.run(progress=False)
    after = eval_loss(trainer, stage)
    assert after < 0.8 * before, (before, after)
    lines = (tmp_path / stage / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5  # every 5 steps


def test_resume_continues_bit_exactly(tmp_path):
    straight = make_trainer(tmp_path / "a", steps=6)
    straight.run(progress=False)

    first = make_trainer(tmp_path / "b", steps=6)
    for _ in range(3):
        first.train_step()
    first.save_state()
    resumed = make_trainer(tmp_path / "b", steps=6)
    resumed.load_state()
    assert resumed.step == 3
    resumed.run(progress=False)
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    state_a, state_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(state_a[i]["exp_avg"], state_b[i]["exp_avg"]) for i in state_a)


def test_resume_refuses_a_different_config(tmp_path):
    trainer = make_trainer(tmp_path, steps=2)
    trainer.run(progress=False)
    changed = Trainer(trainer.model, make_items(), replace(trainer.config, s1=640), tmp_path / "consistency")
    with pytest.raises(ValueError, match="different training config"):
        changed.load_state()


def test_padded_frames_do_not_change_loss_or_gradients(tmp_path):
    torch.manual_seed(0)
    model = FlashSpeechModel(tiny()).eval()
    items = make_items(4)
    batch = collate(items, random.Random(1))
    lengths = batch.frame_mask.sum(1)
    assert lengths.min() < lengths.max()  # some item is padded

    def loss_and_grads(b):
        model.zero_grad()
        c = conditioning(model, b)
        loss = consistency_loss(model, b, c, 41, torch.Generator().manual_seed(3)).loss + c.loss_pitch
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.lcm.parameters() if p.grad is not None]

    ref_loss, ref_grads = loss_and_grads(batch)
    garbage = replace(batch, latent=batch.latent.clone(), f0=batch.f0.clone())
    pad = ~batch.frame_mask
    garbage.latent[pad[:, None, :].expand_as(garbage.latent)] = 1e3
    garbage.f0[pad] = 777.0
    loss, grads = loss_and_grads(garbage)
    assert torch.allclose(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(ref_grads, grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_refinement_trains_only_the_refiners(tmp_path):
    trainer = make_trainer(tmp_path, "refinement", steps=4, s1=160)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run(progress=False)
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("duration_refiner.", "pitch_refiner.")) for k in changed)
    assert any(k.startswith("pitch_refiner.") for k in changed) and any(
        k.startswith("duration_refiner.") for k in changed
    )


def test_adversarial_stage_alternates_generator_and_discriminator(tmp_path):
    from whisper.model import AudioEncoder

    from flashspeech.codecs.mel import MelCodec
    from flashspeech.training.speech_encoders import WhisperEncoderFeatures

    torch.manual_seed(0)
    encoder = WhisperEncoderFeatures(AudioEncoder(n_mels=80, n_ctx=1500, n_state=16, n_head=2, n_layer=2), name="rnd")
    torch.manual_seed(0)
    model = FlashSpeechModel(tiny())
    cfg = TrainConfig(
        stage="adversarial",
        steps=2,
        lr=1e-3,
        warmup=0,
        batch_frames=400,
        fixed_sigmas=41,
        disc_widths=(8, 8, 8, 8),
        log_every=1,
    )
    trainer = Trainer(model, make_items(), cfg, tmp_path / "adv", codec=MelCodec(), speech_encoder=encoder)
    gen_before = {k: v.clone() for k, v in model.state_dict().items()}
    disc_before = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    g = trainer.train_step().metrics  # step 0: generator
    assert {"loss_ct", "loss_g", "adv_weight"} <= set(g) and 0.0 <= g["adv_weight"] <= 0.5e4
    assert all(torch.equal(v, trainer.discriminator.state_dict()[k]) for k, v in disc_before.items())
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in gen_before.items())
    gen_mid = {k: v.clone() for k, v in model.state_dict().items()}
    d = trainer.train_step().metrics  # step 1: discriminator
    assert "loss_d" in d
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in gen_mid.items())
    assert any(not torch.equal(v, trainer.discriminator.state_dict()[k]) for k, v in disc_before.items())
    trainer.save_state()
    state = torch.load(tmp_path / "adv" / "state.pt", weights_only=False)
    assert state["speech_encoder"] == "rnd" and "discriminator" in state


def test_stage_and_objective_must_agree(tmp_path):
    with pytest.raises(ValueError, match="objective='diffusion'"):
        make_trainer(tmp_path, "diffusion", model=FlashSpeechModel(tiny()))
    with pytest.raises(ValueError, match="not a diffusion one"):
        make_trainer(tmp_path, "consistency", model=FlashSpeechModel(tiny_diffusion()))
    with pytest.raises(ValueError, match="unknown stage"):
        TrainConfig(stage="ddpm")


def test_learning_rate_and_curriculum_schedule():
    cfg = TrainConfig(steps=1000, lr=1e-3, warmup=100, final_lr_fraction=0.1, s0=10, s1=80)
    assert cfg.lr_at(0) == pytest.approx(1e-5) and cfg.lr_at(99) == pytest.approx(1e-3)
    assert cfg.lr_at(1000) == pytest.approx(1e-4) and cfg.lr_at(550) == pytest.approx(5.5e-4)
    # K' = floor(1000 / (log2(8) + 1)) = 250: N = 11, 21, 41, 81, 81
    assert [cfg.n_sigmas(k) for k in (0, 250, 500, 750, 999)] == [11, 21, 41, 81, 81]
    assert replace(cfg, fixed_sigmas=1281).n_sigmas(3) == 1281
