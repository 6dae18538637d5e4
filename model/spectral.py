"""Short-time Fourier transforms shared by the STFT-domain members of the family.

The STFT here is a linear, exactly invertible map between a waveform window
``(batch, samples)`` and its complex spectrogram ``(batch, bins, frames)`` with
``bins = n_fft // 2 + 1``: a periodic square-root Hann window at 50 % overlap
satisfies the constant-overlap-add condition, so ``istft(stft(x)) == x`` to
float precision. Subtracting in this domain is therefore subtracting in the
waveform domain, which is what lets DiffGMM's reverse process x_{i+1} = x_i −
n̂_i run on spectra.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class STFTConfig:
    """``n_fft`` and ``hop_length`` in samples; ``compress`` is the magnitude exponent of the network input."""

    n_fft: int = 512
    hop_length: int = 256
    compress: float = 0.3

    def __post_init__(self) -> None:
        if self.n_fft < 2 or self.hop_length < 1 or self.hop_length > self.n_fft:
            raise ValueError(f"need 1 <= hop_length <= n_fft, got n_fft={self.n_fft}, hop_length={self.hop_length}")
        if not 0.0 < self.compress <= 1.0:
            raise ValueError(f"compress must be in (0, 1], got {self.compress}")

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1


def _window(config: STFTConfig, like: torch.Tensor) -> torch.Tensor:
    return torch.hann_window(config.n_fft, periodic=True, device=like.device, dtype=torch.float32).sqrt()


def stft(x: torch.Tensor, config: STFTConfig) -> torch.Tensor:
    """(batch, samples) float → (batch, bins, frames) complex64, centred frames.

    The edges are zero-padded (not reflected: a reflection would invent signal,
    and fails for windows shorter than half the FFT), and a window shorter than
    one FFT is right-padded with zeros to one; :func:`istft` crops back.
    """
    x = x.float()
    if x.shape[-1] < config.n_fft:
        x = torch.nn.functional.pad(x, (0, config.n_fft - x.shape[-1]))
    return torch.stft(x, config.n_fft, config.hop_length, window=_window(config, x), center=True, pad_mode="constant", return_complex=True)


def istft(spec: torch.Tensor, config: STFTConfig, length: int) -> torch.Tensor:
    """(batch, bins, frames) complex → (batch, length) float32; the inverse of :func:`stft`."""
    return torch.istft(spec, config.n_fft, config.hop_length, window=_window(config, spec.real), center=True, length=length)


def compressed_features(spec: torch.Tensor, exponent: float, eps: float = 1e-8) -> torch.Tensor:
    """Power-law compressed real/imaginary parts, (batch, bins, frames) complex → (batch, 2·bins, frames).

    |X|^c · e^{i∠X}: the compression evens out the 60–80 dB dynamic range of
    speech spectra so quiet bins are visible to the network; the phase is kept.
    Zero bins stay exactly zero.
    """
    mag = spec.abs()
    gain = (mag + eps).pow(exponent - 1.0)
    return torch.cat([spec.real * gain, spec.imag * gain], dim=1)
