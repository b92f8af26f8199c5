"""EDM latent diffusion training (the NaturalSpeech 2-style baseline), as small pure functions.

The baseline is the FlashSpeech network trained with a denoising objective; its preconditioning is the
consistency parametrisation with sigma_min = 0 (see `flashspeech.consistency`). It is sampled by
integrating the probability-flow ODE from sigma_max to 0 (see `flashspeech.sampling`).
"""

from __future__ import annotations

import torch
from torch import Tensor

P_MEAN = -1.2  # EDM training sigma distribution: ln(sigma) ~ N(P_MEAN, P_STD^2)
P_STD = 1.2


def edm_training_sigmas(
    batch: int, generator: torch.Generator | None = None, p_mean: float = P_MEAN, p_std: float = P_STD
) -> Tensor:
    """(batch,) float32 log-normal noise levels: sigma = exp(p_mean + p_std * n), n ~ N(0, 1)."""
    n = torch.randn(batch, generator=generator, dtype=torch.float32)
    return torch.exp(p_mean + p_std * n)
