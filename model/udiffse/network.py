"""UDiffSE's score network: a small time-conditioned U-Net over the complex STFT image.

The paper's backbone is sgmse's NCSN++ (65.6 M parameters, about 4.5 s of CPU
per call per audio-second here). This is the CPU-sized stand-in: DDPM-style
residual blocks (GroupNorm, SiLU, 3×3 convolutions) whose first convolution
receives a projection of a sinusoidal embedding of t, strided-convolution
down- and nearest up-sampling with skip concatenation, no attention (it is
quadratic in the image size). Real convolutions over the (real, imag)
channels, as NCSN++ does; unlike :class:`model.aigd.ComplexUNet2d` (no time
input, complex arithmetic), hence a separate module.

It is unconditional: it sees only the diffused image x_t and t. Its output is
ε̂, the estimate of the standard complex noise in x_t = μ(t)s + σ(t)ε; the
score is −ε̂/σ(t) (:meth:`model.udiffse.UDiffSE.score`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def time_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t ∈ [0, 1], (batch,) → (batch, dim), frequencies log-spaced 1…1000 rad per unit t."""
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), dim // 2, device=t.device, dtype=torch.float32))
    angles = t.float().view(-1, 1) * freqs.view(1, -1)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class _ResBlock(nn.Module):
    def __init__(self, chin: int, chout: int, groups: int, temb: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, chin), nn.Conv2d(chin, chout, 3, 1, 1)
        self.time = nn.Linear(temb, chout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, chout), nn.Conv2d(chout, chout, 3, 1, 1)
        self.skip = nn.Conv2d(chin, chout, 1) if chin != chout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class ScoreUNet(nn.Module):
    """(batch, 2, bins, frames) float [real | imag] and t (batch,) → ε̂, same shape as the image.

    bins and frames must be multiples of :attr:`multiple` (the family pads).
    """

    def __init__(
        self, channels: int, channel_mults: tuple[int, ...], res_blocks: int, groups: int, time_dim: int
    ) -> None:
        super().__init__()
        c, temb = channels, 4 * channels
        self.time_dim = time_dim
        self.multiple = 2 ** (len(channel_mults) - 1)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.stem = nn.Conv2d(2, c, 3, 1, 1)
        self.down = nn.ModuleList()
        skips, ch = [c], c
        for level, mult in enumerate(channel_mults):
            for _ in range(res_blocks):
                self.down.append(_ResBlock(ch, c * mult, groups, temb))
                ch = c * mult
                skips.append(ch)
            if level < len(channel_mults) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, 2, 1))
                skips.append(ch)
        self.mid = nn.ModuleList([_ResBlock(ch, ch, groups, temb), _ResBlock(ch, ch, groups, temb)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(res_blocks + 1):
                self.up.append(_ResBlock(ch + skips.pop(), c * mult, groups, temb))
                ch = c * mult
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch, ch, 3, 1, 1)))
        self.out_norm = nn.GroupNorm(groups, ch)
        self.out = nn.Conv2d(ch, 2, 3, 1, 1)
        # Zero output layer: the untrained network predicts ε̂ = 0, a zero score (the sampler is then the bare SDE).
        for p in self.out.parameters():
            nn.init.zeros_(p)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(time_features(t, self.time_dim))
        h = self.stem(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, _ResBlock) else layer(h)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            h = layer(torch.cat([h, skips.pop()], dim=1), emb) if isinstance(layer, _ResBlock) else layer(h)
        return self.out(F.silu(self.out_norm(h)))
