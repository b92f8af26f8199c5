"""Held-out validation during training: the denoiser's health by noise level, and the prosody losses.

The denoiser's error at sigma_max is the error of a one-step sample's starting estimate, the quantity
that decides whether 1-2 step synthesis is intelligible (docs/training.md relates latent MSE to WER).
Two checks say whether the network uses its noisy input, which an error at sigma_max alone cannot show:

- `val_mse_sigma<s>` by sigma, and `val_mse_rise`: the largest increase of the error from one sigma to a
  smaller one (0 for a healthy denoiser, whose error never grows as the noise shrinks; a conditional-mean
  predictor that passes the skip connection's share of the noise through is worse at sigma 0.5-1 than at 80).
- `val_gain_sigma<s>`: the mean diagonal of dD/dx (a central difference along a random +-1 direction), against
  `val_wiener_gain_sigma<s>`, the gain v / (v + sigma^2) of the optimal linear denoiser of what the
  conditioning leaves unexplained, v being the per-channel error of D at sigma_max. A network that ignores
  its input sits at c_skip; one that over-trusts it above the Wiener gain.

Also `val_gate_saturation` (share of the latent network's tanh inputs beyond +-2, over every position of the
batch, padding included), and with the "anchored" parametrisation `val_anchor_mse` (error of mu) and
`val_anchor_scale` (root mean square of s). The batches are built once with fixed prompt splits and each
call draws the same noise, so the curve compares the model with itself across steps. Nothing here touches
the global RNG: validating does not change the training run it is part of.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from flashspeech.modules.wavenet import GatedTanh
from flashspeech.training.batch import Batch, TrainingItem, collate
from flashspeech.training.data import frame_budget_batches
from flashspeech.training.losses import conditioning

VALIDATION_SIGMAS = (80.0, 5.0, 1.0, 0.5, 0.3, 0.1)
GAIN_SIGMAS = (1.0, 0.5, 0.3, 0.1)
GAIN_STEP = 0.05  # central-difference step, as a fraction of sigma
SATURATION = 2.0  # |tanh input| beyond which the gated unit's small-signal gain is below 0.07


def validation_batches(items: Sequence[TrainingItem], batch_frames: int, seed: int = 0) -> list[Batch]:
    """Frame-budget batches of `items` with prompt splits drawn once from `seed`."""
    if not items:
        raise ValueError("no validation items")
    order = frame_budget_batches([int(item.latent.shape[-1]) for item in items], batch_frames, seed)
    rng = random.Random(seed)
    return [collate([items[i] for i in indices], rng) for indices in order]


def metric_name(sigma: float) -> str:
    return f"val_mse_sigma{sigma:g}"


def mse_rise(errors: dict[float, float]) -> float:
    """Largest error increase from a sigma to any smaller one (0 when the error never grows as sigma falls)."""
    ordered = [errors[s] for s in sorted(errors, reverse=True)]
    return max([0.0] + [low - high for i, high in enumerate(ordered) for low in ordered[i + 1 :]])


class _GateWatch:
    """Counts the latent network's tanh inputs beyond +-SATURATION while installed."""

    def __init__(self, net: torch.nn.Module):
        self.beyond = self.total = 0
        self.handles = [m.register_forward_hook(self._hook) for m in net.modules() if isinstance(m, GatedTanh)]

    def _hook(self, module: torch.nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        gate = inputs[0].chunk(2, dim=1)[0]
        self.beyond += int((gate.abs() > SATURATION).sum())
        self.total += gate.numel()

    def remove(self) -> float:
        for handle in self.handles:
            handle.remove()
        return self.beyond / max(1, self.total)


class DenoiserHealth:
    """Accumulates the denoiser metrics of the module doc over batches: `add` per batch, then `metrics`.

    `denoise(x, sigma)` is the model's denoiser for the batch's conditioning; the same seed gives the same
    noise and probes, so successive calls compare a model with itself."""

    def __init__(
        self, sigmas: Sequence[float] = VALIDATION_SIGMAS, gain_sigmas: Sequence[float] = GAIN_SIGMAS, seed: int = 0
    ):
        self.sigmas = sorted({*sigmas, 80.0}, reverse=True)  # sigma_max is always measured: the gains need it
        self.gain_sigmas = tuple(gain_sigmas)
        self.generator = torch.Generator().manual_seed(seed)
        self.gain_generator = torch.Generator().manual_seed(seed + 1)  # leaves the MSE draws as they are
        self.errors = dict.fromkeys(self.sigmas, 0.0)
        self.gains = dict.fromkeys(self.gain_sigmas, 0.0)
        self.channel_error: Tensor | None = None  # per-channel squared error at sigma 80, over valid frames
        self.elements = self.frames = 0

    @torch.no_grad()
    def add(self, denoise: Callable[[Tensor, float], Tensor], x0: Tensor, frame_mask: Tensor) -> None:
        """x0 (B, D, T) clean latents, frame_mask (B, T)."""
        mask = frame_mask[:, None, :].to(x0.dtype)
        device = x0.device
        self.elements += int(mask.expand_as(x0).sum())
        self.frames += int(frame_mask.sum())
        for sigma in self.sigmas:
            noise = torch.randn(x0.shape, generator=self.generator).to(device) * mask
            squared = ((denoise(x0 + sigma * noise, sigma) - x0) ** 2) * mask
            self.errors[sigma] += float(squared.sum())
            if sigma == 80.0:
                per_channel = squared.sum(dim=(0, 2)).cpu()
                self.channel_error = per_channel if self.channel_error is None else self.channel_error + per_channel
        for sigma in self.gain_sigmas:
            noise = torch.randn(x0.shape, generator=self.gain_generator).to(device) * mask
            probe = (torch.randint(0, 2, x0.shape, generator=self.gain_generator).to(device) * 2.0 - 1.0) * mask
            x, step = x0 + sigma * noise, GAIN_STEP * sigma
            diff = denoise(x + step * probe, sigma) - denoise(x - step * probe, sigma)
            self.gains[sigma] += float((probe * diff).sum()) / (2 * step)

    def metrics(self) -> dict[str, float]:
        n = max(1, self.elements)
        errors = {s: e / n for s, e in self.errors.items()}
        out = {metric_name(s): e for s, e in errors.items()}
        out["val_mse_rise"] = mse_rise(errors)
        variance = self.channel_error / max(1, self.frames)  # (D,) unexplained variance per latent channel
        for sigma in self.gain_sigmas:
            out[f"val_gain_sigma{sigma:g}"] = self.gains[sigma] / n
            out[f"val_wiener_gain_sigma{sigma:g}"] = float((variance / (variance + sigma**2)).mean())
        return out


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    batches: Sequence[Batch],
    sigmas: Sequence[float] = VALIDATION_SIGMAS,
    seed: int = 0,
    gain_sigmas: Sequence[float] = GAIN_SIGMAS,
) -> dict[str, float]:
    """The metrics of the module doc over `batches`, plus the duration / pitch regression L1 losses
    (`val_loss_duration`, `val_loss_pitch`, weighted by phones and frames). Model in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    health = DenoiserHealth(sigmas, gain_sigmas, seed)
    phones = frames = 0
    duration = pitch = anchor_error = anchor_scale = 0.0
    watch = _GateWatch(model.lcm)
    try:
        for batch in batches:
            batch = batch.to(device)
            c = conditioning(model, batch)
            n_phones, n_frames = int(batch.phone_mask.sum()), int(c.frame_mask.sum())
            duration += float(c.loss_duration) * n_phones
            pitch += float(c.loss_pitch) * n_frames
            phones, frames = phones + n_phones, frames + n_frames

            def denoise(x: Tensor, sigma: float, c=c) -> Tensor:
                level = torch.full((x.shape[0],), float(sigma), device=device)
                return model.denoise(x, level, c.cond, c.frame_mask, c.tokens, c.anchor)

            health.add(denoise, batch.latent, c.frame_mask)
            if c.anchor is not None:
                mask = c.frame_mask[:, None, :].to(batch.latent.dtype)
                mean, scale = c.anchor
                anchor_error += float((((mean - batch.latent) ** 2) * mask).sum())
                anchor_scale += float(((scale**2) * mask).sum())
    finally:
        saturation = watch.remove()
        model.train(was_training)
    metrics = health.metrics()
    metrics["val_gate_saturation"] = saturation
    if model.anchor is not None:
        elements = max(1, health.elements)  # the same valid latent elements the denoiser metrics count
        metrics["val_anchor_mse"] = anchor_error / elements
        metrics["val_anchor_scale"] = (anchor_scale / elements) ** 0.5
    metrics["val_loss_duration"] = duration / max(1, phones)
    metrics["val_loss_pitch"] = pitch / max(1, frames)
    return metrics
