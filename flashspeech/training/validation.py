"""Held-out validation during training: one-step denoising error by noise level, and the prosody losses.

The denoiser's error at sigma_max is the error of a one-step sample's starting estimate, the quantity
that decides whether 1-2 step synthesis is intelligible (docs/training.md relates latent MSE to WER).
The batches are built once with fixed prompt splits and each call draws the same noise, so the curve
compares the model with itself across steps. Nothing here touches the global RNG: validating does not
change the training run it is part of.

`val_passthrough_sigma0.5` says whether the network uses its noisy input: the same latents are denoised
under two independent noise draws at sigma 0.5, and the variance of the difference is divided by what the
skip connection alone passes through (c_skip^2 sigma^2). About 1: the output moves with the noise exactly
as if F ignored its input (a conditional-mean predictor that cannot denoise; docs/training.md); towards
0: the noise is removed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from flashspeech.consistency import c_skip
from flashspeech.training.batch import Batch, TrainingItem, collate
from flashspeech.training.data import frame_budget_batches
from flashspeech.training.losses import conditioning

VALIDATION_SIGMAS = (80.0, 5.0, 1.0, 0.3)
PASSTHROUGH_SIGMA = 0.5


def validation_batches(items: Sequence[TrainingItem], batch_frames: int, seed: int = 0) -> list[Batch]:
    """Frame-budget batches of `items` with prompt splits drawn once from `seed`."""
    if not items:
        raise ValueError("no validation items")
    order = frame_budget_batches([int(item.latent.shape[-1]) for item in items], batch_frames, seed)
    rng = random.Random(seed)
    return [collate([items[i] for i in indices], rng) for indices in order]


def metric_name(sigma: float) -> str:
    return f"val_mse_sigma{sigma:g}"


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    batches: Sequence[Batch],
    sigmas: Sequence[float] = VALIDATION_SIGMAS,
    seed: int = 0,
) -> dict[str, float]:
    """Mean squared error of the one-step denoiser D(x0 + sigma n, sigma) against x0 over valid latent
    elements, per sigma (`val_mse_sigma<s>`), the noise pass-through ratio at sigma 0.5 (module doc), and
    the duration / pitch regression L1 losses (`val_loss_duration`, `val_loss_pitch`, weighted by phones
    and frames). Model in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    passthrough_generator = torch.Generator().manual_seed(seed + 1)  # leaves the MSE draws as they were
    passthrough = 0.0
    errors = dict.fromkeys(sigmas, 0.0)
    elements = phones = frames = 0
    duration = pitch = 0.0
    try:
        for batch in batches:
            batch = batch.to(device)
            c = conditioning(model, batch)
            n_phones, n_frames = int(batch.phone_mask.sum()), int(c.frame_mask.sum())
            duration += float(c.loss_duration) * n_phones
            pitch += float(c.loss_pitch) * n_frames
            phones, frames = phones + n_phones, frames + n_frames
            mask = c.frame_mask[:, None, :].to(batch.latent.dtype)
            elements += int(mask.expand_as(batch.latent).sum())
            for sigma in sigmas:
                noise = torch.randn(batch.latent.shape, generator=generator).to(device) * mask
                level = torch.full((batch.latent.shape[0],), float(sigma), device=device)
                out = model.denoise(batch.latent + sigma * noise, level, c.cond, c.frame_mask, c.tokens)
                errors[sigma] += float((((out - batch.latent) ** 2) * mask).sum())
            level = torch.full((batch.latent.shape[0],), PASSTHROUGH_SIGMA, device=device)
            pair = []
            for _ in range(2):
                noise = torch.randn(batch.latent.shape, generator=passthrough_generator).to(device) * mask
                x = batch.latent + PASSTHROUGH_SIGMA * noise
                pair.append(model.denoise(x, level, c.cond, c.frame_mask, c.tokens))
            passthrough += float((((pair[0] - pair[1]) ** 2) * mask).sum()) / 2
    finally:
        model.train(was_training)
    metrics = {metric_name(s): errors[s] / max(1, elements) for s in sigmas}
    sigma = torch.tensor(PASSTHROUGH_SIGMA)
    skip = float(c_skip(sigma, model.cfg.consistency.sigma_data, model.denoiser_sigma_min))
    metrics[f"val_passthrough_sigma{PASSTHROUGH_SIGMA:g}"] = (
        passthrough / max(1, elements) / (skip * PASSTHROUGH_SIGMA) ** 2
    )
    metrics["val_loss_duration"] = duration / max(1, phones)
    metrics["val_loss_pitch"] = pitch / max(1, frames)
    return metrics
