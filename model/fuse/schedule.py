"""The forward noising schedule: ᾱ_t for t = 0 … T−1, a pure function of the config (not a parameter)."""

from __future__ import annotations

import math

import torch


def alpha_bars(schedule: str, timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """ᾱ_t = ∏_{s≤t} (1 − β_s), (timesteps,) float64, decreasing in (0, 1).

    ``linear``: β linear in [beta_start, beta_end] (DDPM); ``scaled_linear``: √β linear
    (latent diffusion's: ᾱ_T stays ≈ 5e-3 so a one-step DDIM is not an extrapolation by
    1/√ᾱ_T ≈ 150 as with DDPM's); ``cosine``: Nichol & Dhariwal's, β capped at 0.999.
    """
    if schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    elif schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=torch.float64) ** 2
    elif schedule == "cosine":
        s = 0.008
        f = torch.cos((torch.arange(timesteps + 1, dtype=torch.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    return torch.cumprod(1.0 - betas, dim=0)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε; x0, noise (batch, C, T), alpha_bar (batch,)."""
    a = _per_example(alpha_bar, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _per_example(alpha_bar: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return alpha_bar.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def velocity(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """v = √ᾱ_t ε − √(1 − ᾱ_t) x0 (Salimans & Ho 2022), the ``prediction: v`` target; shapes as :func:`add_noise`."""
    a = _per_example(alpha_bar, x0)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def noise_from_velocity(x_t: torch.Tensor, v: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """ε = √(1 − ᾱ_t) x_t + √ᾱ_t v: the noise a predicted velocity implies, so the DDIM step stays one formula."""
    a = _per_example(alpha_bar, x_t)
    return (1 - a).sqrt() * x_t + a.sqrt() * v
