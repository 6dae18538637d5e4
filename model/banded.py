"""A compute-efficient DiffGMM backbone: the same 1D U-Net over frames, run on ERB bands.

The paper's shape is kept: a 1D U-Net over STFT frames gives per-frame features,
linear layers turn them into a Gaussian mixture per time-frequency bin, and the
reverse process subtracts the mixture mean. What changes is the cost, with the
levers GTCRN uses:

* band compression: a fixed linear map (:func:`band_matrices`) averages the 257
  bins into ``bands`` bands spaced on the ERB scale (never closer than one bin),
  so the U-Net's first layer sees ``3 · bands`` channels (compressed real,
  imaginary and magnitude per band) instead of ``2 · bins``;
* subband convolutions: channels are ordered band by band and the U-Net's
  strided, transposed and dilated convolutions are grouped (``groups``), each
  group a contiguous run of bands; the 1x1 convolutions stay dense;
* expansion: the U-Net returns ``band_channels`` features per band, which the
  fixed interpolation map (the compression's partner) spreads back to bins;
* per-bin head: two 1x1 layers see each bin's expanded features and its own
  compressed input and give its mixture parameters, so harmonics are still
  resolved bin by bin although the U-Net never saw single bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from model.unet import UNet1d
from model.validation import require_at_least_one

# Features per band into the U-Net: mean compressed real part, imaginary part and magnitude.
BAND_FEATURES = 3


@dataclass(frozen=True)
class BandedConfig:
    """Sizes of :class:`BandedBackbone`; only used when ``DiffGMMConfig.backbone == "banded"``.

    ``bands``: ERB bands the STFT bins are compressed to (2 ≤ bands ≤ bins; a
    multiple of ``groups``). ``channels``: U-Net width at the first level
    (multiplied by ``growth`` per level); ``depth``, ``kernel_size``, ``stride``,
    ``bottleneck_blocks``: as for the plain U-Net, in frames. ``groups``:
    subband groups of the grouped convolutions. ``band_channels``: features per
    band expanded to bins. ``bin_hidden``: width of the per-bin head's hidden
    layer.
    """

    bands: int = 32
    channels: int = 64
    growth: float = 2.0
    depth: int = 2
    kernel_size: int = 4
    stride: int = 2
    bottleneck_blocks: int = 3
    groups: int = 4
    band_channels: int = 4
    bin_hidden: int = 12

    def __post_init__(self) -> None:
        require_at_least_one(
            self, ("channels", "depth", "kernel_size", "stride", "groups", "band_channels", "bin_hidden"), "banded."
        )
        if self.bottleneck_blocks < 0:
            raise ValueError(f"banded.bottleneck_blocks must be >= 0, got {self.bottleneck_blocks}")
        if self.bands < 2:
            raise ValueError(f"banded.bands must be >= 2, got {self.bands}")
        if self.bands % self.groups:
            raise ValueError(f"banded.bands ({self.bands}) must be a multiple of banded.groups ({self.groups})")
        if self.kernel_size < self.stride:
            raise ValueError("banded.kernel_size must be >= banded.stride so that every frame is covered")
        if self.growth <= 0:
            raise ValueError(f"banded.growth must be > 0, got {self.growth}")
        for level in range(self.depth):
            width = self.level_width(level)
            if width % self.groups:
                raise ValueError(
                    f"banded: level {level} has {width} channels, not a multiple of groups={self.groups}; "
                    "change channels, growth or groups"
                )

    def level_width(self, level: int) -> int:
        """Channels at U-Net level ``level`` (0 = the first), as :class:`model.unet.UNet1d` builds them."""
        width = self.channels
        for _ in range(level):
            width = int(round(width * self.growth))
        return width

    def check_bins(self, bins: int) -> None:
        """Raises ValueError when ``bands`` does not fit an STFT with ``bins`` bins."""
        if self.bands > bins:
            raise ValueError(f"banded.bands ({self.bands}) must be at most the STFT's {bins} bins")


def _erb_rate(hz: float) -> float:
    """Glasberg & Moore's ERB-number scale (Cams) of a frequency in Hz."""
    return 21.4 * math.log10(1.0 + 0.00437 * hz)


def _erb_rate_inverse(cams: float) -> float:
    return (10.0 ** (cams / 21.4) - 1.0) / 0.00437


def band_centres(bins: int, bands: int, sample_rate: int) -> list[float]:
    """``bands`` centre positions, in (fractional) bin indices from 0 to ``bins − 1``.

    Spaced evenly on the ERB scale, except that no two centres are closer than
    one bin: at low frequencies the ERB is narrower than a bin, and a band
    between two bins would duplicate its neighbour. The ERB step is found by
    bisection so that the last centre is the last bin.
    """
    if not 2 <= bands <= bins:
        raise ValueError(f"need 2 <= bands <= bins, got bands={bands}, bins={bins}")
    hz_per_bin = sample_rate / 2 / (bins - 1)

    def walk(step_cams: float) -> list[float]:
        centres = [0.0]
        for _ in range(bands - 1):
            c = centres[-1]
            nxt = _erb_rate_inverse(_erb_rate(c * hz_per_bin) + step_cams) / hz_per_bin
            centres.append(c + max(1.0, nxt - c))
        return centres

    low, high = 0.0, _erb_rate(sample_rate / 2)
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if walk(mid)[-1] < bins - 1 else (low, mid)
    centres = walk(high)
    # The bisection leaves the last centre a hair off the last bin; stretch to hit it exactly.
    return [c * (bins - 1) / centres[-1] for c in centres]


def band_matrices(bins: int, bands: int, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed maps between bins and bands: (compress (bands, bins), expand (bins, bands)) float32.

    ``expand`` is piecewise-linear interpolation between the band centres of
    :func:`band_centres`: each bin's row has at most two non-zeros and sums to 1,
    so a constant over bands expands to the same constant over bins.
    ``compress`` is its transpose with each band's row normalised to sum to 1: a
    triangular weighted mean over the bins around the band's centre, so a
    constant over bins compresses to the same constant. No band is empty: the bin
    nearest a band's centre has interpolation weight ≥ 1/2 for it.
    """
    centres = torch.tensor(band_centres(bins, bands, sample_rate), dtype=torch.float64)
    positions = torch.arange(bins, dtype=torch.float64)
    right = torch.searchsorted(centres, positions, right=True).clamp(1, bands - 1)
    left = right - 1
    t = ((positions - centres[left]) / (centres[right] - centres[left])).clamp(0.0, 1.0)
    expand = torch.zeros(bins, bands, dtype=torch.float64)
    expand[torch.arange(bins), left] = 1.0 - t
    expand[torch.arange(bins), right] += t
    compress = expand.T / expand.T.sum(dim=1, keepdim=True)
    return compress.float(), expand.float()


class BandedBackbone(nn.Module):
    """Compressed spectrum features → raw per-bin mixture parameters.

    Input: ``(batch, 2·bins, frames)`` float32, :func:`model.spectral.compressed_features`
    (real parts of every bin, then imaginary parts). Output: ``(batch, outputs, bins, frames)``
    float32, the raw parameters :func:`model.gmm.complex_params_from_raw` reads
    (``outputs`` = 4K). ``step`` (batch,) long: the reverse-process step, embedded at the
    U-Net's bottleneck. Any number of frames; output frames equal input frames.
    """

    def __init__(self, config: BandedConfig, bins: int, sample_rate: int, outputs: int, num_steps: int) -> None:
        super().__init__()
        config.check_bins(bins)
        self.config = config
        self.bins = bins
        compress, expand = band_matrices(bins, config.bands, sample_rate)
        # Buffers, not parameters: fixed maps, rebuilt from the config, kept out of the checkpoint.
        self.register_buffer("compress", compress, persistent=False)
        self.register_buffer("expand", expand, persistent=False)
        self.unet = UNet1d(
            in_channels=BAND_FEATURES * config.bands,
            out_channels=config.band_channels * config.bands,
            hidden_channels=config.channels,
            depth=config.depth,
            growth=config.growth,
            kernel_size=config.kernel_size,
            stride=config.stride,
            bottleneck_blocks=config.bottleneck_blocks,
            num_steps=num_steps,
            groups=config.groups,
        )
        self.head = nn.Sequential(
            nn.Conv2d(config.band_channels + 2, config.bin_hidden, 1),
            nn.ReLU(),
            nn.Conv2d(config.bin_hidden, outputs, 1),
        )

    @property
    def final(self) -> nn.Conv2d:
        """The layer that writes the raw parameters (one row per parameter): DiffGMM scales its mean rows at init."""
        return self.head[-1]

    def forward(self, inputs: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        batch, _, frames = inputs.shape
        c = self.config
        parts = inputs.view(batch, 2, self.bins, frames)
        magnitude = parts.square().sum(dim=1, keepdim=True).add(1e-12).sqrt()
        per_bin = torch.cat([parts, magnitude], dim=1)  # (B, 3, bins, frames)
        banded = torch.einsum("nk,bfkt->bnft", self.compress, per_bin)  # (B, bands, 3, frames): band-major
        features = self.unet(banded.reshape(batch, c.bands * BAND_FEATURES, frames), step)
        features = features.view(batch, c.bands, c.band_channels, frames)
        spread = torch.einsum("kn,bnct->bckt", self.expand, features)  # (B, band_channels, bins, frames)
        return self.head(torch.cat([spread, parts], dim=1))


class FrequencyMap(nn.Module):
    """A fixed linear map along the frequency axis: ``(..., n_in, frames)`` → ``(..., n_out, frames)`` float32.

    ``matrix`` (n_out, n_in) is one of :func:`band_matrices`' maps (bins → bands or
    bands → bins). Real and imaginary parts map alike, so it commutes with complex
    arithmetic. A module (not a bare einsum) so that per-module FLOP counts see it.
    """

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        # Not persistent: rebuilt from the config, never stored in a checkpoint.
        self.register_buffer("matrix", matrix, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nk,...kt->...nt", self.matrix, x)
