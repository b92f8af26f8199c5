"""One training step's forward pass and losses, per objective.

- `conditioning`: prompt and phoneme encoders, duration and pitch regression (teacher-forced with the
  ground-truth durations and F0) and their masked L1 losses on log(1 + value); for the "anchored"
  parametrisation also the anchor (mu, s) and its loss (`flashspeech.modules.anchor`).
- `consistency_loss`: Eq. 10 with the iCT discretisation: student at sigma_{i+1}, stop-gradient teacher
  (the same network, no EMA) at sigma_i, the same noise for both, weight 1 / (sigma_{i+1} - sigma_i),
  pseudo-Huber distance over valid frames only. The teacher's dropout draws repeat the student's.
- `diffusion_loss`: the EDM denoising objective of the diffusion baseline (weighted by 1 / c_out^2 per
  element, which is EDM's lambda(sigma) for a constant sigma_data).
- `refinement_loss`: the prosody refinement consistency models on the residual ground truth minus
  regression, conditioned on the predictor's pre-projection feature (stage 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flashspeech.consistency import c_out
from flashspeech.model import Anchor, FlashSpeechModel, length_regulate
from flashspeech.modules.anchor import anchor_loss
from flashspeech.training.batch import Batch
from flashspeech.training.ct import ct_sigmas, loss_weight, pseudo_huber, sample_intervals


@dataclass
class Conditioning:
    """Everything the latent model and the refiners are conditioned on, plus the regression losses."""

    cond: Tensor  # (B, T, H) LCM condition with ground-truth pitch
    tokens: Tensor  # (B, Q, H) prompt query tokens
    frame_mask: Tensor  # (B, T)
    log_duration: Tensor  # (B, P) regression prediction
    duration_feature: Tensor  # (B, P, H)
    log_f0: Tensor  # (B, T) regression prediction
    f0_feature: Tensor  # (B, T, H)
    loss_duration: Tensor
    loss_pitch: Tensor
    anchor: Anchor | None = None  # (mu, s) of the "anchored" parametrisation
    loss_anchor: Tensor | None = None

    @property
    def loss(self) -> Tensor:
        """The conditioning's own losses: duration + pitch regression (+ the anchor's)."""
        total = self.loss_duration + self.loss_pitch
        return total if self.loss_anchor is None else total + self.loss_anchor


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    m = mask.to(pred.dtype)
    return ((pred - target).abs() * m).sum() / m.sum().clamp_min(1.0)


def conditioning(model: FlashSpeechModel, batch: Batch) -> Conditioning:
    spk, style, tokens = model.encode_prompt(batch.prompt, batch.prompt_mask)
    hidden = model.encode_phonemes(batch.phonemes, batch.phone_mask, style)
    log_dur, dur_feat = model.duration_predictor(hidden, batch.phone_mask, spk, batch.prompt_mask)
    frames, frame_mask = length_regulate(hidden, batch.durations, batch.phone_mask)
    if frames.shape[1] != batch.latent.shape[-1] or not torch.equal(frame_mask, batch.frame_mask):
        raise ValueError("durations do not match the latent frames of the batch")
    log_f0, f0_feat = model.pitch_predictor(frames, frame_mask, spk, batch.prompt_mask)
    cond = model.frame_condition(frames, batch.f0)
    target_dur = torch.log1p(batch.durations.float())
    target_f0 = torch.log1p(batch.f0)
    anchor = model.latent_anchor(cond, frame_mask)
    loss_anchor = None
    if anchor is not None:
        loss_anchor = anchor_loss(*anchor, batch.latent, frame_mask, model.cfg.consistency.sigma_data)
    return Conditioning(
        cond=cond,
        tokens=tokens,
        frame_mask=frame_mask,
        log_duration=log_dur,
        duration_feature=dur_feat,
        log_f0=log_f0,
        f0_feature=f0_feat,
        loss_duration=masked_l1(log_dur, target_dur, batch.phone_mask),
        loss_pitch=masked_l1(log_f0, target_f0, frame_mask),
        anchor=anchor,
        loss_anchor=loss_anchor,
    )


@dataclass
class ConsistencyTerms:
    loss: Tensor  # weighted, averaged over the batch
    student: Tensor  # f_theta at sigma_{i+1} (the adversarial stage's fake sample)
    sigma_next: Tensor  # (B,)
    n_sigmas: int


def _teacher_student(
    denoise,
    x0: Tensor,
    mask: Tensor,
    n_sigmas: int,
    generator: torch.Generator,
    sigma_min: float,
    sigma_max: float,
    rho: float,
) -> ConsistencyTerms:
    sigmas = ct_sigmas(n_sigmas, sigma_min, sigma_max, rho)
    _, sigma_i, sigma_next = sample_intervals(sigmas, x0.shape[0], generator)
    sigma_i, sigma_next = sigma_i.to(x0.device), sigma_next.to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device) * mask[:, None, :]
    shape = (-1, *([1] * (x0.dim() - 1)))
    cuda = x0.device if x0.is_cuda else None
    rng_state = torch.get_rng_state(), (torch.cuda.get_rng_state(cuda) if cuda is not None else None)
    student = denoise(x0 + sigma_next.view(shape) * noise, sigma_next)
    torch.set_rng_state(rng_state[0])  # the teacher sees the same dropout draws as the student
    if cuda is not None:
        torch.cuda.set_rng_state(rng_state[1], cuda)
    with torch.no_grad():
        teacher = denoise(x0 + sigma_i.view(shape) * noise, sigma_i)
    weight = loss_weight(sigma_i, sigma_next)
    loss = (weight * pseudo_huber(student, teacher.detach(), mask)).mean()
    return ConsistencyTerms(loss, student, sigma_next, n_sigmas)


def consistency_loss(
    model: FlashSpeechModel, batch: Batch, c: Conditioning, n_sigmas: int, generator: torch.Generator
) -> ConsistencyTerms:
    cc = model.cfg.consistency

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        return model.denoise(x, sigma, c.cond, c.frame_mask, c.tokens, c.anchor)

    return _teacher_student(
        denoise, batch.latent, c.frame_mask, n_sigmas, generator, cc.sigma_min, cc.sigma_max, cc.rho
    )


def diffusion_loss(model: FlashSpeechModel, batch: Batch, c: Conditioning, generator: torch.Generator) -> Tensor:
    """EDM: E[||(D(x + sigma n, sigma) - x) / c_out(sigma)||^2] over valid elements, sigma log-normal.

    1 / c_out^2 = (sigma^2 + s^2) / (sigma s)^2 is EDM's lambda(sigma): the network's target has unit
    variance at every sigma. s is sigma_data, or per element the anchor's scale."""
    from flashspeech.diffusion import edm_training_sigmas

    x0 = batch.latent
    sigma = edm_training_sigmas(x0.shape[0], generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device) * c.frame_mask[:, None, :]
    level = sigma.view(-1, 1, 1)
    denoised = model.denoise(x0 + level * noise, sigma, c.cond, c.frame_mask, c.tokens, c.anchor)
    scale = model.cfg.consistency.sigma_data if c.anchor is None else c.anchor[1].detach()
    weight = c_out(level, scale, 0.0) ** -2
    m = c.frame_mask[:, None, :].expand_as(x0).to(x0.dtype)
    per_item = ((weight * (denoised - x0) ** 2) * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)
    return per_item.mean()


def refinement_loss(
    model: FlashSpeechModel, batch: Batch, c: Conditioning, n_sigmas: int, generator: torch.Generator
) -> dict[str, Tensor]:
    """Consistency training of both refiners on residual = log(1 + truth) - regression (detached)."""
    cc = model.cfg.consistency
    out = {}
    cases = {
        "duration": (torch.log1p(batch.durations.float()) - c.log_duration, c.duration_feature, batch.phone_mask),
        "pitch": (torch.log1p(batch.f0) - c.log_f0, c.f0_feature, c.frame_mask),
    }
    for which, (residual, feature, mask) in cases.items():
        x0 = (residual.detach() * mask)[:, None, :]
        feature = feature.detach()

        def denoise(x: Tensor, sigma: Tensor, which=which, feature=feature, mask=mask) -> Tensor:
            return model.refine(which, x, sigma, feature, mask)

        terms = _teacher_student(
            denoise, x0, mask, n_sigmas, generator, cc.sigma_min, model.cfg.prosody.refine_sigma_max, cc.rho
        )
        out[which] = terms.loss
    return out
