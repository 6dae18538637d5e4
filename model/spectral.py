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

WINDOWS = ("sqrt_hann", "hamming", "hann")


@dataclass(frozen=True)
class STFTConfig:
    """``n_fft``, ``hop_length`` and ``win_length`` in samples; ``compress`` is the magnitude exponent of the network input.

    ``window``: ``sqrt_hann`` (DiffGMM; with hop n_fft/2 analysis and synthesis
    windows multiply to a constant overlap-add) or ``hamming`` (AIGD's 1000-point
    Hamming window in an FFT of 1023) or ``hann`` (UDiffSE's periodic Hann window,
    as sgmse). ``win_length`` 0 means ``n_fft``. Any
    window with hop ≤ win_length/2 is inverted exactly: :func:`torch.istft`
    divides by the summed squared window.
    """

    n_fft: int = 512
    hop_length: int = 256
    compress: float = 0.3
    window: str = "sqrt_hann"
    win_length: int = 0

    def __post_init__(self) -> None:
        if self.n_fft < 2 or self.hop_length < 1 or self.hop_length > self.n_fft:
            raise ValueError(f"need 1 <= hop_length <= n_fft, got n_fft={self.n_fft}, hop_length={self.hop_length}")
        if not 0.0 < self.compress <= 1.0:
            raise ValueError(f"compress must be in (0, 1], got {self.compress}")
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {self.window!r}")
        if not 0 <= self.win_length <= self.n_fft:
            raise ValueError(f"win_length must be in [0, n_fft={self.n_fft}], got {self.win_length}")
        if 2 * self.hop_length > self.window_length:
            raise ValueError(
                f"hop_length {self.hop_length} must be at most half the window ({self.window_length}) to invert exactly"
            )

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def window_length(self) -> int:
        return self.win_length or self.n_fft


def _window(config: STFTConfig, like: torch.Tensor) -> torch.Tensor:
    if config.window == "hamming":
        return torch.hamming_window(config.window_length, periodic=True, device=like.device, dtype=torch.float32)
    if config.window == "hann":
        return torch.hann_window(config.window_length, periodic=True, device=like.device, dtype=torch.float32)
    return torch.hann_window(config.window_length, periodic=True, device=like.device, dtype=torch.float32).sqrt()


def stft(x: torch.Tensor, config: STFTConfig) -> torch.Tensor:
    """(batch, samples) float → (batch, bins, frames) complex64, centred frames.

    The edges are zero-padded (not reflected: a reflection would invent signal,
    and fails for windows shorter than half the FFT), and a window shorter than
    one FFT is right-padded with zeros to one; :func:`istft` crops back.
    """
    x = x.float()
    if x.shape[-1] < config.n_fft:
        x = torch.nn.functional.pad(x, (0, config.n_fft - x.shape[-1]))
    return torch.stft(
        x,
        config.n_fft,
        config.hop_length,
        config.window_length,
        window=_window(config, x),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )


def istft(spec: torch.Tensor, config: STFTConfig, length: int) -> torch.Tensor:
    """(batch, bins, frames) complex → (batch, length) float32; the inverse of :func:`stft`."""
    return torch.istft(
        spec,
        config.n_fft,
        config.hop_length,
        config.window_length,
        window=_window(config, spec.real),
        center=True,
        length=length,
    )


def power_law(spec: torch.Tensor, exponent: float, eps: float = 1e-8) -> torch.Tensor:
    """|X|^c · e^{i∠X} of a complex tensor, same shape; exponent 1 is the identity.

    The compression (c < 1) evens out the 60–80 dB dynamic range of speech
    spectra so quiet bins are visible to a network; the phase is kept, zero
    bins stay exactly zero, and ``power_law(power_law(X, c), 1/c) ≈ X``.
    """
    if exponent == 1.0:
        return spec
    return spec * (spec.abs() + eps).pow(exponent - 1.0)


def compressed_features(spec: torch.Tensor, exponent: float, eps: float = 1e-8) -> torch.Tensor:
    """Power-law compressed real/imaginary parts, (batch, bins, frames) complex → (batch, 2·bins, frames)."""
    compressed = power_law(spec, exponent, eps)
    return torch.cat([compressed.real, compressed.imag], dim=1)
