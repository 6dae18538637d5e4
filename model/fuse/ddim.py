"""DDIM sampling with η = 0 (Song et al. 2021): deterministic given the starting noise.

The only random draw is x_T ~ N(0, I), from the caller's generator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# predict(x_t (batch, C, T), t (batch,) int64) -> ε̂ (batch, C, T)
NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddim_timesteps(train_timesteps: int, num_steps: int) -> list[int]:
    """``num_steps`` timesteps from T−1 down, evenly spaced ("trailing": the first is always T−1)."""
    steps = [round(train_timesteps - i * train_timesteps / num_steps) - 1 for i in range(num_steps)]
    return sorted(set(steps), reverse=True)


def ddim_step(
    x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float | torch.Tensor, alpha_bar_prev: float | torch.Tensor
):
    """One η = 0 step: (x_{t'}, x̂0) with x̂0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t and x_{t'} = √ᾱ_{t'} x̂0 + √(1−ᾱ_{t'}) ε̂.

    ``alpha_bar_prev`` = 1 for the last step, which returns x̂0 itself.
    """
    a_t = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    a_p = torch.as_tensor(alpha_bar_prev, dtype=torch.float64)
    x0 = (x_t - (1 - a_t).sqrt().to(x_t.dtype) * eps) / a_t.sqrt().to(x_t.dtype)
    return a_p.sqrt().to(x_t.dtype) * x0 + (1 - a_p).sqrt().to(x_t.dtype) * eps, x0


class DDIMSampler:
    """η = 0 DDIM over ``alpha_bars`` (train_timesteps,) float64 in ``num_steps`` steps."""

    def __init__(self, alpha_bars: torch.Tensor, num_steps: int) -> None:
        self.alpha_bars = alpha_bars
        self.timesteps = ddim_timesteps(len(alpha_bars), num_steps)

    def run(self, x: torch.Tensor, predict: NoisePredictor) -> tuple[torch.Tensor, torch.Tensor]:
        """From x = x_{T−1} (batch, C, T) to x̂0; returns (x̂0, the last step's ε̂)."""
        eps = torch.zeros_like(x)
        for i, t in enumerate(self.timesteps):
            t_prev = self.timesteps[i + 1] if i + 1 < len(self.timesteps) else -1
            eps = predict(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
            x, _ = ddim_step(x, eps, self.alpha_bars[t], self.alpha_bars[t_prev] if t_prev >= 0 else 1.0)
        return x, eps

    def sample(
        self,
        shape: tuple[int, ...],
        predict: NoisePredictor,
        generator: torch.Generator | None,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_T ~ N(0, I) of ``shape`` drawn from ``generator`` (on its own device), then :meth:`run`."""
        where = generator.device if generator is not None else device
        x = torch.randn(shape, generator=generator, device=where, dtype=dtype).to(device)
        return self.run(x, predict)
