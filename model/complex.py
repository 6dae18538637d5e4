"""Complex-valued layers over real tensors, for STFT-domain members of the family.

A complex feature map with C channels is stored as one real tensor
``(batch, 2·C, height, width)`` float32: the C real parts, then the C imaginary
parts. Two modes, both from the AIGD paper (seed 003, Eqs. 9–10):

* ``complex``: complex arithmetic. A convolution with weight W = W_r + iW_i on
  X = A + iB gives (W_r∗A − W_i∗B) + i(W_r∗B + W_i∗A), the deep complex U-Net's
  layer (DCU-Net, DCCRN). It runs as one real convolution of the stacked input
  with the block weight [[W_r, −W_i], [W_i, W_r]].
* ``split``: the paper's literal Eq. 10, M(A) + iM(B): the same real layer on
  the real and on the imaginary image, with no cross terms.

Normalisation and activations act on the real and imaginary parts separately
with shared parameters (Eq. 9, O(T) = O(A) + iO(B)), in both modes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

MODES = ("complex", "split")


def to_parts(x: torch.Tensor) -> torch.Tensor:
    """(batch, C, H, W) complex → (batch, 2·C, H, W) float32 [real | imaginary]."""
    return torch.cat([x.real, x.imag], dim=1).float()


def from_parts(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_parts`."""
    real, imag = x.chunk(2, dim=1)
    return torch.complex(real.float(), imag.float())


def cat(*maps: torch.Tensor) -> torch.Tensor:
    """Channel concatenation of complex maps in the [real | imaginary] layout."""
    parts = [m.chunk(2, dim=1) for m in maps]
    return torch.cat([p[0] for p in parts] + [p[1] for p in parts], dim=1)


def _fold(x: torch.Tensor) -> torch.Tensor:
    """(batch, 2C, H, W) → (2·batch, C, H, W): real and imaginary images as separate examples."""
    b, c2, h, w = x.shape
    return x.reshape(b, 2, c2 // 2, h, w).transpose(0, 1).reshape(2 * b, c2 // 2, h, w)


def _unfold(x: torch.Tensor) -> torch.Tensor:
    b2, c, h, w = x.shape
    return x.reshape(2, b2 // 2, c, h, w).transpose(0, 1).reshape(b2 // 2, 2 * c, h, w)


class ComplexConv2d(nn.Module):
    """Complex 2D convolution, ``in_channels`` → ``out_channels`` complex channels (see the module docstring)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        mode: str = "complex",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"complex mode must be one of {MODES}, got {mode!r}")
        self.mode, self.stride, self.padding = mode, stride, padding
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        # Glorot-style for complex weights: the real and imaginary parts share the variance.
        bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size * (2 if mode == "complex" else 1))
        self.weight_real = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        self.bias_real = nn.Parameter(torch.zeros(out_channels))
        if mode == "complex":
            self.weight_imag = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
            self.bias_imag = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 2·in_channels, H, W) → (batch, 2·out_channels, H', W')."""
        if self.mode == "split":
            return _unfold(F.conv2d(_fold(x), self.weight_real, self.bias_real, self.stride, self.padding))
        wr, wi = self.weight_real, self.weight_imag
        weight = torch.cat([torch.cat([wr, -wi], dim=1), torch.cat([wi, wr], dim=1)], dim=0)
        bias = torch.cat([self.bias_real, self.bias_imag])
        return F.conv2d(x, weight, bias, self.stride, self.padding)


class SplitGroupNorm(nn.Module):
    """GroupNorm applied to the real and the imaginary parts separately, with shared affine parameters."""

    def __init__(self, groups: int, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(groups, channels), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _unfold(self.norm(_fold(x)))
