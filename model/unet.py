"""The 1D U-Net feature extractor of DiffGMM.

A Demucs-style waveform U-Net: each encoder level is a strided convolution
(kernel ``kernel_size``, stride ``stride``) followed by a 1x1 convolution with
a GLU; the decoder mirrors it with transposed convolutions and skip
connections. The bottleneck holds dilated residual convolutions for context
(about half a second at the default settings) and receives the reverse-process
step embedding. The network returns per-sample features at full resolution;
the mixture heads live in :mod:`model.diffgmm`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _Encoder(nn.Module):
    def __init__(self, chin: int, chout: int, kernel_size: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(chin, chout, kernel_size, stride, groups=groups)
        self.mix = nn.Conv1d(chout, 2 * chout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.mix(F.relu(self.conv(x))), dim=1)


class _Decoder(nn.Module):
    def __init__(self, chin: int, chout: int, kernel_size: int, stride: int, last: bool, groups: int = 1) -> None:
        super().__init__()
        self.mix = nn.Conv1d(chin, 2 * chin, 1)
        self.conv = nn.ConvTranspose1d(chin, chout, kernel_size, stride, groups=groups)
        self.last = last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.glu(self.mix(x), dim=1))
        return x if self.last else F.relu(x)


class _DilatedBlock(nn.Module):
    def __init__(self, channels: int, dilation: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation, groups=groups)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(F.glu(self.conv(x), dim=1))


class UNet1d(nn.Module):
    """Waveform ``(batch, in_channels, samples)`` → features ``(batch, out_channels, samples)``.

    Any length works: the input is right-padded to the next valid length and
    the output cropped back, so output length equals input length.

    ``groups`` > 1 makes the strided, transposed and dilated convolutions grouped
    (subband convolutions when the channels are ordered band by band); the 1x1
    convolutions stay dense, so the groups still exchange information at every level.
    Every channel count must then be divisible by ``groups``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        depth: int,
        growth: float,
        kernel_size: int,
        stride: int,
        bottleneck_blocks: int,
        num_steps: int,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.kernel_size = kernel_size
        self.stride = stride
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        chin, ch = in_channels, hidden_channels
        widths = []
        for level in range(depth):
            self.encoders.append(_Encoder(chin, ch, kernel_size, stride, groups))
            # Decoders are built outermost-first and applied in reverse.
            self.decoders.insert(
                0,
                _Decoder(ch, out_channels if level == 0 else chin, kernel_size, stride, last=level == 0, groups=groups),
            )
            widths.append(ch)
            chin, ch = ch, int(round(ch * growth))
        bottom = widths[-1]
        self.step_embedding = nn.Embedding(num_steps, bottom)
        self.bottleneck = nn.Sequential(*[_DilatedBlock(bottom, 2**i, groups) for i in range(bottleneck_blocks)])

    def valid_length(self, length: int) -> int:
        """Smallest length ≥ ``length`` that the strided stack maps back exactly."""
        for _ in range(self.depth):
            length = max(1, -(-(length - self.kernel_size) // self.stride) + 1)
        for _ in range(self.depth):
            length = (length - 1) * self.stride + self.kernel_size
        return int(length)

    def forward(self, x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        x = F.pad(x, (0, self.valid_length(length) - length))
        skips = []
        for encode in self.encoders:
            x = encode(x)
            skips.append(x)
        x = x + self.step_embedding(step).unsqueeze(-1)
        x = self.bottleneck(x)
        for decode in self.decoders:
            skip = skips.pop()
            x = decode(x + skip[..., : x.shape[-1]])
        return x[..., :length]
