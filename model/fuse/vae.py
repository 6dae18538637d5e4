"""The VAE over the compressed spectrum: (batch, 2·bins, frames) ↔ latent (batch, latent_channels, frames).

Frequency is folded into channels and the convolutions run over frames, so the latent
keeps the frame rate (10 ms) and compresses each frame's 2·bins values into
``latent_channels``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from model.fuse.config import FUSEConfig
from model.fuse.layers import ResBlock1d


class SpectralVAE(nn.Module):
    def __init__(self, config: FUSEConfig) -> None:
        super().__init__()
        spec, hidden, latent, g = config.spectrum_channels, config.vae_channels, config.latent_channels, config.groups
        self.enc_in = nn.Conv1d(spec, hidden, 3, padding=1)
        self.enc_blocks = nn.ModuleList(ResBlock1d(hidden, g, 2**i) for i in range(config.vae_blocks))
        self.enc_out = nn.Conv1d(hidden, 2 * latent, 1)
        self.dec_in = nn.Conv1d(latent, hidden, 3, padding=1)
        self.dec_blocks = nn.ModuleList(ResBlock1d(hidden, g, 2**i) for i in range(config.vae_blocks))
        self.dec_out = nn.Conv1d(hidden, spec, 3, padding=1)

    def encode(self, spectrum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, 2·bins, frames) → (mean, log-variance), each (batch, latent_channels, frames)."""
        h = self.enc_in(spectrum)
        for block in self.enc_blocks:
            h = block(h)
        mean, logvar = self.enc_out(F.silu(h)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, latent_channels, frames) → (batch, 2·bins, frames)."""
        h = self.dec_in(z)
        for block in self.dec_blocks:
            h = block(h)
        return self.dec_out(F.silu(h))
