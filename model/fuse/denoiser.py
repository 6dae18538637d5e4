"""The conditional latent denoiser: ε̂(x_t, t | noisy latent, guidance), a dilated temporal conv stack over latent frames."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from model.fuse.config import FUSEConfig
from model.fuse.layers import ResBlock1d, timestep_embedding


class LatentDenoiser(nn.Module):
    """x_t, noisy latent (batch, latent, frames), t (batch,) int64, guidance (batch, guidance_channels, frames) or None → ε̂.

    The noisy latent is always concatenated to x_t. Guidance (already projected) is
    concatenated too (``conditioning: concat``) or sets a FiLM scale and shift in every block
    (``film``). Dilations 1, 2, 4, 8, … cycle over the blocks (receptive field of 6 blocks: ±61
    frames). The output layer starts at zero.
    """

    def __init__(self, config: FUSEConfig) -> None:
        super().__init__()
        c, latent, g = config.denoiser_channels, config.latent_channels, config.groups
        guided = config.guidance != "none"
        concat = guided and config.conditioning == "concat"
        film = config.guidance_channels if guided and config.conditioning == "film" else 0
        self.concat, self.time_dim = concat, config.time_embed_dim
        self.inp = nn.Conv1d(2 * latent + (config.guidance_channels if concat else 0), c, 3, padding=1)
        self.time = nn.Sequential(nn.Linear(config.time_embed_dim, c), nn.SiLU(), nn.Linear(c, c))
        self.blocks = nn.ModuleList(
            ResBlock1d(c, g, 2 ** (i % 4), film_channels=film, bias_channels=c) for i in range(config.denoiser_blocks)
        )
        self.norm = nn.GroupNorm(g, c)
        self.out = nn.Conv1d(c, latent, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, noisy_latent: torch.Tensor, guidance: torch.Tensor | None
    ) -> torch.Tensor:
        parts = [x_t, noisy_latent] + ([guidance] if self.concat else [])
        h = self.inp(torch.cat(parts, dim=1))
        temb = self.time(timestep_embedding(t, self.time_dim))
        for block in self.blocks:
            h = block(h, film=guidance, bias=temb)
        return self.out(F.silu(self.norm(h)))
