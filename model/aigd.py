"""AIGD: audio image generation for denoising (seed 003, Sections 3.4–4.1).

A waveform window becomes a complex STFT "image" (real and imaginary parts);
a complex U-Net maps the noisy image straight to the clean one in one step,
F(I_N, 1) → I⁰ (the paper drops the forward diffusion process, and its
training algorithm predicts F(I¹, 1) only); the inverse STFT gives the audio.

What the paper fixes, and what we kept:

* a 1000-point Hamming window in an FFT of 1023, so the image is 512 bins high;
* DDPM's U-Net (residual blocks, GroupNorm, SiLU, strided down- and nearest
  up-sampling, skip concatenation) with complex operations (Eq. 10);
* the loss of :mod:`model.image_losses`.

Choices the paper leaves open (all configurable; ``docs/model.md`` says what
each measured):

* geometry: the paper sets hop = length/512 so every clip is about 512 frames
  wide. That cannot stream (the hop would depend on the whole clip), so by
  default the hop is fixed in samples (``hop_length``) and a window of any
  length gives an image of proportional width. ``image_width`` > 0 restores the
  paper's rule per window (hop = ⌊length / image_width⌋, see :meth:`AIGDConfig.stft_for`);
* complex operations (``mode``): ``complex`` (complex arithmetic, the DCU-Net
  layer) or ``split`` (Eq. 10 literally: one real U-Net applied to the real
  and to the imaginary image);
* the image: each window is divided by its standard deviation, and the
  spectrogram is power-law compressed (``compress``; 1.0 is the paper's linear
  image) so that speech harmonics and quiet bins share a dynamic range. The
  output image is decompressed before the inverse STFT;
* the network predicts a correction to the noisy image (``residual``), so an
  untrained model is the identity rather than silence;
* no time-step embedding (one step) and no self-attention (it is quadratic in
  the image size, and the small configuration must train on 2 CPU cores);
* band compression (``bands`` > 0, off by default): the image's bins are
  averaged into ERB bands (:func:`model.banded.band_matrices`) before the
  U-Net, and its correction is interpolated back to bins and added to the
  noisy image, so the U-Net's cost falls with the image height
  (docs/benchmarks.md; measured for cost only, not trained).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from model.banded import FrequencyMap, band_matrices
from model.complex import MODES, ComplexConv2d, SplitGroupNorm, cat, from_parts, to_parts
from model.image_losses import complex_ssim
from model.spectral import WINDOWS, STFTConfig, istft, power_law, stft


@dataclass(frozen=True)
class AIGDConfig:
    """Hyper-parameters of :class:`AIGD`. Lengths are in samples at ``sample_rate`` Hz.

    The defaults are the small configuration that trains on 2 CPU cores; the
    paper's is ``jobs/configs/train-aigd-paper.yaml``.
    """

    sample_rate: int = 16000
    n_fft: int = 511
    win_length: int = 500
    hop_length: int = 125
    window: str = "hamming"
    image_width: int = 0
    compress: float = 0.5
    channels: int = 8
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)
    res_blocks: int = 1
    groups: int = 4
    mode: str = "complex"
    residual: bool = True
    norm_floor: float = 1e-3
    # 0: the U-Net sees every bin; > 0: it sees this many ERB bands (needs ``residual``).
    bands: int = 0

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {self.window!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.channel_mults or min(self.channel_mults) < 1 or self.channels < 1 or self.res_blocks < 1:
            raise ValueError("channels, res_blocks and every channel_mults entry must be >= 1")
        if self.image_width < 0:
            raise ValueError(f"image_width must be >= 0 (0: fixed hop_length), got {self.image_width}")
        self.stft_for(0)  # validates the STFT fields
        bins = self.n_fft // 2 + 1
        if self.bands and not 2 <= self.bands <= bins:
            raise ValueError(f"bands must be 0 (every bin) or in [2, {bins}] (the STFT's bins), got {self.bands}")
        if self.bands and not self.residual:
            raise ValueError("bands > 0 needs residual: true (the band correction is added to the noisy image's bins)")

    def stft_for(self, length: int) -> STFTConfig:
        """The STFT of a window of ``length`` samples (the hop depends on it only when ``image_width`` > 0).

        The paper's hop ⌊length / image_width⌋ is capped at half the window,
        where the inverse stops being exact: windows longer than
        image_width · win_length / 2 samples give wider images.
        """
        if self.image_width:
            hop = min(max(1, length // self.image_width), (self.win_length or self.n_fft) // 2)
        else:
            hop = self.hop_length
        return STFTConfig(
            n_fft=self.n_fft, hop_length=hop, compress=self.compress, window=self.window, win_length=self.win_length
        )


@dataclass
class AIGDOutput:
    """One forward pass. ``enhanced`` (batch, samples) float32 in input units; ``final`` the same in
    normalised units; ``scale`` (batch, 1); ``image_in`` / ``image_out`` (batch, bins, frames) complex64,
    the compressed noisy and generated images; ``stft`` the geometry used."""

    enhanced: torch.Tensor
    final: torch.Tensor
    scale: torch.Tensor
    image_in: torch.Tensor
    image_out: torch.Tensor
    stft: STFTConfig

    def image_of(self, waveform: torch.Tensor) -> torch.Tensor:
        """The image of a normalised waveform (batch, samples) in this pass's geometry (e.g. the clean target)."""
        return power_law(stft(waveform, self.stft), self.stft.compress)


class _ResBlock(nn.Module):
    def __init__(self, chin: int, chout: int, groups: int, mode: str) -> None:
        super().__init__()
        self.norm1, self.conv1 = SplitGroupNorm(groups, chin), ComplexConv2d(chin, chout, 3, 1, 1, mode)
        self.norm2, self.conv2 = SplitGroupNorm(groups, chout), ComplexConv2d(chout, chout, 3, 1, 1, mode)
        self.skip = ComplexConv2d(chin, chout, 1, mode=mode) if chin != chout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class _Upsample(nn.Module):
    def __init__(self, channels: int, mode: str) -> None:
        super().__init__()
        self.conv = ComplexConv2d(channels, channels, 3, 1, 1, mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Nearest-neighbour upsampling is linear and acts on each part alike, so it commutes with complex arithmetic.
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ComplexUNet2d(nn.Module):
    """DDPM's U-Net with complex layers: (batch, 2, H, W) [real | imag] → the same shape.

    H and W must be multiples of 2^(levels − 1) (:class:`AIGD` pads).
    """

    def __init__(self, config: AIGDConfig) -> None:
        super().__init__()
        c, mode, g = config.channels, config.mode, config.groups
        self.stem = ComplexConv2d(1, c, 3, 1, 1, mode)
        self.down = nn.ModuleList()
        skips, ch = [c], c
        for level, mult in enumerate(config.channel_mults):
            for _ in range(config.res_blocks):
                self.down.append(_ResBlock(ch, c * mult, g, mode))
                ch = c * mult
                skips.append(ch)
            if level < len(config.channel_mults) - 1:
                self.down.append(ComplexConv2d(ch, ch, 3, 2, 1, mode))
                skips.append(ch)
        self.mid = nn.Sequential(_ResBlock(ch, ch, g, mode), _ResBlock(ch, ch, g, mode))
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mults))):
            for _ in range(config.res_blocks + 1):
                self.up.append(_ResBlock(ch + skips.pop(), c * mult, g, mode))
                ch = c * mult
            if level > 0:
                self.up.append(_Upsample(ch, mode))
        self.out_norm = SplitGroupNorm(g, ch)
        self.out = ComplexConv2d(ch, 1, 3, 1, 1, mode)
        # Zero output layer: with the residual connection the untrained model is the identity.
        for p in self.out.parameters():
            nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        skips = [h]
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.mid(h)
        for layer in self.up:
            h = layer(cat(h, skips.pop())) if isinstance(layer, _ResBlock) else layer(h)
        return self.out(F.silu(self.out_norm(h)))


class AIGD(nn.Module):
    """Waveform windows ``(batch, samples)`` float32 at 16 kHz → enhanced windows, same shape."""

    name = "aigd"
    input_unit: ClassVar[str] = "windows"

    def __init__(self, config: AIGDConfig | None = None) -> None:
        super().__init__()
        self.config = config or AIGDConfig()
        self.unet = ComplexUNet2d(self.config)
        self.multiple = 2 ** (len(self.config.channel_mults) - 1)
        self.to_bands = self.to_bins = None
        if self.config.bands:
            compress, expand = band_matrices(self.config.n_fft // 2 + 1, self.config.bands, self.config.sample_rate)
            self.to_bands, self.to_bins = FrequencyMap(compress), FrequencyMap(expand)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter: AIGD has no frozen part."""
        return self.parameters()

    def forward(self, noisy: torch.Tensor) -> AIGDOutput:
        if noisy.dim() != 2:
            raise ValueError(f"expected (batch, samples), got shape {tuple(noisy.shape)}")
        c, length = self.config, noisy.shape[-1]
        geometry = c.stft_for(length)
        scale = noisy.std(dim=-1, keepdim=True, unbiased=False) + c.norm_floor
        image_in = power_law(stft(noisy / scale, geometry), c.compress)  # (B, bins, frames)
        bins, frames = image_in.shape[-2:]
        x = to_parts(image_in.unsqueeze(1))  # (B, 2, bins, frames)
        if self.to_bands is not None:
            banded = self.to_bands(x)  # (B, 2, bands, frames)
            rows = banded.shape[-2]
            correction = self.unet(F.pad(banded, (0, -frames % self.multiple, 0, -rows % self.multiple)))
            y = x + self.to_bins(correction[..., :rows, :frames])
        else:
            x = F.pad(x, (0, -frames % self.multiple, 0, -bins % self.multiple))
            y = self.unet(x)
            if c.residual:
                y = y + x
        image_out = from_parts(y[..., :bins, :frames]).squeeze(1)
        final = istft(power_law(image_out, 1.0 / c.compress), geometry, length)
        # Digital silence has nothing to remove: pass it through exactly (biases would leave a floor).
        silent = (noisy == 0).all(dim=-1, keepdim=True)
        final = torch.where(silent, torch.zeros_like(final), final)
        return AIGDOutput(
            enhanced=final * scale, final=final, scale=scale, image_in=image_in, image_out=image_out, stft=geometry
        )

    @torch.inference_mode()
    def enhance(
        self, windows: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model-family interface (:class:`model.family.WindowFamily`): windows (batch, samples) → (windows, stats).

        AIGD is deterministic: ``generator`` is accepted and unused.

        ``stats["image_ssim"]`` (batch,): mean |SSIM| of the generated image
        against the noisy one over the real and imaginary parts (1: nothing
        changed; low: the model redrew the image).
        """
        out = self.forward(windows)
        return out.enhanced, {"image_ssim": complex_ssim(out.image_out, out.image_in)}
