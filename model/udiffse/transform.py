"""UDiffSE's STFT image: waveform ↔ amp_scale · |c|^amp_exponent · e^{i∠c}, phase kept.

Built on :mod:`model.spectral` (Hann window, centred frames, exact inverse)
and its :func:`~model.spectral.power_law`. Shapes: waveforms (batch, samples)
float32; images (batch, bins, frames) complex64, bins = n_fft/2 + 1 = 256.
"""

from __future__ import annotations

import math

import torch

from model.spectral import istft, power_law, stft


def to_image(waveform: torch.Tensor, config) -> torch.Tensor:
    """(batch, samples) → (batch, bins, frames) compressed complex image (not yet peak-normalised)."""
    return config.amp_scale * power_law(stft(waveform, config.stft), config.amp_exponent)


def to_waveform(image: torch.Tensor, config, length: int) -> torch.Tensor:
    """The inverse of :func:`to_image`: (batch, bins, frames) → (batch, length) float32."""
    return istft(power_law(image / config.amp_scale, 1.0 / config.amp_exponent), config.stft, length)


def image_power_to_linear(power: torch.Tensor, peak: torch.Tensor | float, config) -> torch.Tensor:
    """Map a variance E|X|² of the peak-normalised image back to the input's linear STFT power E|c|², same shape.

    X = amp_scale·|c|^e·e^{i∠c}/peak, so E|X|² = amp_scale²·E|c|^{2e}/peak²; for complex Gaussian c,
    E|c|^{2e} = Γ(1 + e)·(E|c|²)^e, hence E|c|² = (E|X|²·peak² / (amp_scale²·Γ(1 + e)))^(1/e)
    (exact for Gaussian noise bins, a fingerprint otherwise).
    """
    e = config.amp_exponent
    return (power * (peak**2) / (config.amp_scale**2 * math.gamma(1.0 + e))).clamp_min(0.0).pow(1.0 / e)
