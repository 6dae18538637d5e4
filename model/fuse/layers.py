"""Small 1-D building blocks over frames: (batch, channels, frames) in, the same out."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class ResBlock1d(nn.Module):
    """GroupNorm → SiLU → dilated conv, twice, plus the input. Optional per-frame FiLM and a per-window bias.

    ``film_channels`` > 0: ``forward`` takes ``film`` (batch, film_channels, frames) that sets a
    scale and shift after the second norm; ``bias_channels`` > 0: ``bias`` (batch, bias_channels)
    is added after the first conv (the diffusion time embedding).
    """

    def __init__(
        self, channels: int, groups: int, dilation: int = 1, film_channels: int = 0, bias_channels: int = 0
    ) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(groups, channels), nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.film = nn.Conv1d(film_channels, 2 * channels, 1) if film_channels else None
        self.bias = nn.Linear(bias_channels, channels) if bias_channels else None

    def forward(
        self, x: torch.Tensor, film: torch.Tensor | None = None, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.bias is not None:
            h = h + self.bias(bias)[:, :, None]
        h = self.norm2(h)
        if self.film is not None:
            scale, shift = self.film(film).chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return x + self.conv2(F.silu(h))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps t (batch,) → (batch, dim) float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
