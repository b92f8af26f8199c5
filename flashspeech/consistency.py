"""Consistency-model parametrisation, as small pure functions (sampling lives in `flashspeech.sampling`).

f(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma), cond), with the
sigma_min shift that makes f(x, sigma_min) = x hold exactly (c_skip = 1 and c_out = 0 there).
Constants: sigma_data 0.5, sigma in [0.002, 80], Karras rho 7.
"""

from __future__ import annotations

import torch
from torch import Tensor

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
SIGMA_DATA = 0.5
RHO = 7.0


def c_skip(sigma: Tensor, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN) -> Tensor:
    return sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)


def c_out(sigma: Tensor, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN) -> Tensor:
    return (sigma - sigma_min) * sigma_data / torch.sqrt(sigma**2 + sigma_data**2)


def c_in(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> Tensor:
    return 1.0 / torch.sqrt(sigma**2 + sigma_data**2)


def c_noise(sigma: Tensor) -> Tensor:
    return torch.log(sigma) / 4.0
