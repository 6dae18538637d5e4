"""Training objective of AIGD (seed 003, Sections 3.4–3.6): image losses on complex spectrograms plus a bounded SDR.

L = α·(CL2 + L_S) + (1 − α)·L_SDR  (Eq. 31, α = 0.5 in the paper), with

* CL2: the complex L2 distance between the generated and the clean image
  (Eq. 27), here a mean over pixels (the paper's sum grows with the image size,
  which would make α mean something different at every geometry);
* L_S = 1 − |SSIM| of the real images and of the imaginary images, averaged
  (Eq. 28; SSIM of Wang et al. 2004, 11×11 Gaussian window, σ = 1.5);
* L_SDR = upper − min(SDR, upper) (Eq. 30, upper = 30 dB), with SDR the plain
  (not scale-invariant) SDR of the waveform. The clip at the upper bound keeps
  the loss ≥ 0, and examples already above it stop pulling. We divide it by
  ``sdr_scale_db`` (default: the bound) so the three terms share an order of
  magnitude; the paper leaves the units open.

Not in the paper: ``mag_weight`` adds a magnitude term to the image loss, the
mean squared difference of |generated| and |clean| (phase-blind, on the
power-law compressed images), as speech-enhancement GANs such as CMGAN weigh
it. 0 (the default) is the paper's loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class AIGDLossConfig:
    alpha: float = 0.5
    l2_weight: float = 1.0
    ssim_weight: float = 1.0
    mag_weight: float = 0.0
    sdr_upper_db: float = 30.0
    sdr_scale_db: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if min(self.l2_weight, self.ssim_weight, self.mag_weight) < 0:
            raise ValueError("loss weights must be >= 0")
        if self.sdr_scale_db <= 0:
            raise ValueError(f"sdr_scale_db must be > 0, got {self.sdr_scale_db}")


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    """(1, 1, size, size) float32, sums to 1."""
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2.0
    g = torch.exp(-coords.square() / (2.0 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: torch.Tensor, size: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Mean SSIM of each image pair; x, y (batch, H, W) float, data_range (batch,) > 0 → (batch,).

    Valid (unpadded) Gaussian filtering as in Wang et al.; images smaller than
    the window are zero-padded up to it. C1 = (0.01·L)², C2 = (0.03·L)² with L
    the data range of each pair.
    """
    pad_h, pad_w = max(0, size - x.shape[-2]), max(0, size - x.shape[-1])
    x, y = F.pad(x, (0, pad_w, 0, pad_h)).unsqueeze(1), F.pad(y, (0, pad_w, 0, pad_h)).unsqueeze(1)
    w = gaussian_window(size, sigma, x.device)
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mu_x.square()
    syy = F.conv2d(y * y, w) - mu_y.square()
    sxy = F.conv2d(x * y, w) - mu_x * mu_y
    L = data_range.view(-1, 1, 1, 1)
    c1, c2 = (0.01 * L).square(), (0.03 * L).square()
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x.square() + mu_y.square() + c1) * (sxx + syy + c2))
    return ssim_map.flatten(1).mean(dim=1)


def image_range(image: torch.Tensor) -> torch.Tensor:
    """Data range of each real image (batch, H, W) → (batch,), floored so silence does not divide by zero."""
    flat = image.flatten(1)
    return (flat.amax(dim=1) - flat.amin(dim=1)).clamp_min(1e-6)


def complex_ssim(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(|SSIM(real)| + |SSIM(imag)|)/2 of complex images (batch, H, W) → (batch,); the range is the reference's."""
    parts = [(estimate.real, reference.real), (estimate.imag, reference.imag)]
    return torch.stack([ssim(e, r, image_range(r)).abs() for e, r in parts]).mean(dim=0)


def bounded_sdr_loss(
    estimate: torch.Tensor, target: torch.Tensor, upper_db: float = 30.0, eps: float = 1e-8
) -> torch.Tensor:
    """Per example upper − min(SDR, upper) in dB, (batch, samples) → (batch,); ≥ 0, zero once SDR ≥ upper."""
    sdr = 10.0 * torch.log10((target.square().sum(-1) + eps) / ((estimate - target).square().sum(-1) + eps))
    return upper_db - sdr.clamp(max=upper_db)


def aigd_loss(out, clean: torch.Tensor, config: AIGDLossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss (scalar) and its parts; ``out`` is an :class:`model.aigd.AIGDOutput`, ``clean`` (batch, samples) in input units."""
    target = clean / out.scale
    target_image = out.image_of(target)
    l2 = (out.image_out - target_image).abs().square().mean()
    ssim_loss = (1.0 - complex_ssim(out.image_out, target_image)).mean()
    sdr = bounded_sdr_loss(out.final, target, config.sdr_upper_db).mean()
    mag = (out.image_out.abs() - target_image.abs()).square().mean()
    image = config.l2_weight * l2 + config.ssim_weight * ssim_loss + config.mag_weight * mag
    total = config.alpha * image + (1.0 - config.alpha) * sdr / config.sdr_scale_db
    parts = {
        "cl2": float(l2.detach()),
        "ssim_loss": float(ssim_loss.detach()),
        "mag": float(mag.detach()),
        "sdr_loss_db": float(sdr.detach()),
        "total": float(total.detach()),
    }
    return total, parts
