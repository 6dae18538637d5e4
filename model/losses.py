"""Training objective of DiffGMM.

* L1 between the final estimate x_T and the clean target (the paper's loss);
* the mixture NLL of the true remaining noise x_i − clean at every step, so
  π, μ, σ are calibrated estimates and not decoration;
* optionally a multi-resolution STFT loss (spectral convergence + log
  magnitude, as in Demucs and Parallel WaveGAN), which the paper does not
  use; it helps perceptual scores;
* optionally the negative scale-invariant SDR of the final estimate (dB), as
  in Conv-TasNet: the magnitude-only STFT terms leave phase and fine timing
  free, and a model trained without it over-suppressed speech (SI-SDR below
  the input's, docs/model.md).

Everything is computed in the model's normalised units (see
:class:`model.diffgmm.DiffGMM`), so the loss does not depend on input level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from model.diffgmm import ReverseOutput
from model.gmm import mixture_nll
from model.intelligibility import stoi_approx


@dataclass(frozen=True)
class LossConfig:
    l1_weight: float = 1.0
    nll_weight: float = 0.05
    stft_weight: float = 0.0
    stft_resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64))
    # Power floor of the log-magnitude term, relative to the mean power of the
    # target's spectrum (see _stft_mag).
    stft_floor_db: float = -80.0
    si_sdr_weight: float = 0.0
    # Power-law compressed spectrum (GTCRN, MP-SENet): MSE of |S|^p·e^{i∠S} and of |S|^p
    # at one resolution; (1 − mag_fraction) of it on the complex part.
    compressed_weight: float = 0.0
    compressed_resolution: tuple[int, int] = (512, 256)
    compressed_power: float = 0.3
    compressed_mag_fraction: float = 0.7
    # 1 − approximate STOI of the final estimate (model/intelligibility.py): the intelligibility
    # term of issue 19, measured against the same run without it in docs/model.md.
    stoi_weight: float = 0.0

    def __post_init__(self) -> None:
        weights = (
            self.l1_weight,
            self.nll_weight,
            self.stft_weight,
            self.si_sdr_weight,
            self.compressed_weight,
            self.stoi_weight,
        )
        if min(weights) < 0:
            raise ValueError("loss weights must be >= 0")
        if not 0.0 < self.compressed_power <= 1.0:
            raise ValueError(f"compressed_power must be in (0, 1], got {self.compressed_power}")
        if not 0.0 <= self.compressed_mag_fraction <= 1.0:
            raise ValueError(f"compressed_mag_fraction must be in [0, 1], got {self.compressed_mag_fraction}")


def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    return torch.stft(x, n_fft, hop, window=window, return_complex=True)


def _stft_power(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    spec = _stft(x, n_fft, hop)
    return spec.real.square() + spec.imag.square()


def _power_floor(ref_pow: torch.Tensor, floor_db: float) -> torch.Tensor:
    """Per-example power floor ``floor_db`` below the target's mean bin power, (batch, 1, 1)."""
    return ref_pow.mean(dim=(-2, -1), keepdim=True) * 10.0 ** (floor_db / 10.0) + 1e-12


def compressed_spectral_loss(
    estimate: torch.Tensor,
    target: torch.Tensor,
    n_fft: int,
    hop: int,
    power: float,
    mag_fraction: float,
    floor_db: float = -80.0,
) -> torch.Tensor:
    """MSE of power-law compressed spectra, inputs (batch, samples); the loss of GTCRN and MP-SENet.

    (1 − mag_fraction)·MSE(|E|^p e^{i∠E}, |R|^p e^{i∠R}) + mag_fraction·MSE(|E|^p, |R|^p).
    The compression weighs quiet bins more than a linear spectrum does and less
    than a logarithm does; the complex part keeps the phase honest. Powers are
    floored as in :func:`multires_stft_loss` so gradients stay finite at zeros.
    """
    est, ref = _stft(estimate, n_fft, hop), _stft(target, n_fft, hop)
    ref_pow = ref.real.square() + ref.imag.square()
    floor = _power_floor(ref_pow, floor_db)
    est_mag = (est.real.square() + est.imag.square() + floor).sqrt()
    ref_mag = (ref_pow + floor).sqrt()
    est_c, ref_c = est * est_mag.pow(power - 1.0), ref * ref_mag.pow(power - 1.0)
    complex_mse = (est_c - ref_c).abs().square().mean()
    mag_mse = (est_mag.pow(power) - ref_mag.pow(power)).square().mean()
    return (1.0 - mag_fraction) * complex_mse + mag_fraction * mag_mse


def multires_stft_loss(
    estimate: torch.Tensor, target: torch.Tensor, resolutions, floor_db: float = -80.0
) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + L1 log-magnitude; inputs (batch, samples).

    The log-magnitude term has a power floor ``floor_db`` below the target's
    mean bin power (per example). Without it (the first version clamped the
    *magnitude* at 1e-7), bins where the target is digitally silent (the
    zero-padding of short utterances) or far below the noise have targets of
    log(1e-7) ≈ −16 while the estimate sits at the noise floor: they dominate
    the loss, their gradient 1/|X| is huge near zero, and after gradient-norm
    clipping the useful L1 gradient shrank to nothing, so the model stayed at
    the identity. The magnitude also takes its square root of a floored power,
    so its gradient stays finite at exact zeros.
    """
    total = estimate.new_zeros(())
    for n_fft, hop in resolutions:
        est_pow, ref_pow = _stft_power(estimate, n_fft, hop), _stft_power(target, n_fft, hop)
        floor = _power_floor(ref_pow, floor_db)
        est, ref = (est_pow + floor).sqrt(), (ref_pow + floor).sqrt()
        convergence = torch.linalg.norm(ref - est) / torch.linalg.norm(ref)
        total = total + convergence + F.l1_loss(est.log(), ref.log())
    return total / len(resolutions)


def neg_si_sdr_db(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the batch of −SI-SDR in dB; inputs (batch, samples).

    ``eps`` keeps an all-silent target or estimate finite (such an example adds
    no useful gradient, and must not add NaN).
    """
    target = target - target.mean(dim=-1, keepdim=True)
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    scale = (estimate * target).sum(-1, keepdim=True) / (target.square().sum(-1, keepdim=True) + eps)
    projection = scale * target
    noise = estimate - projection
    ratio = (projection.square().sum(-1) + eps) / (noise.square().sum(-1) + eps)
    return -(10.0 * torch.log10(ratio)).mean()


def diffgmm_loss(
    out: ReverseOutput, clean: torch.Tensor, config: LossConfig, represent=None, sample_rate: int = 16000
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss (scalar tensor) and its parts as floats; ``clean`` is (batch, samples) in input units.

    ``sample_rate`` (Hz) is the model's: the STOI term cuts its bands by frequency.

    ``represent`` maps a normalised waveform to the model's state space
    (``DiffGMM.represent``); the NLL of the true remaining noise x_i − clean
    is taken there. None: the states are waveforms.
    """
    target = clean / out.scale
    final = out.final
    l1 = F.l1_loss(final, target)
    target_state = represent(target) if represent is not None else target
    # Under autocast the real states come out in bf16; the NLL's log-sum-exp needs float32.
    states = [s if s.is_complex() else s.float() for s in out.states[:-1]]
    nll = torch.stack([mixture_nll(p, s - target_state).mean() for p, s in zip(out.params, states)]).mean()
    total = config.l1_weight * l1 + config.nll_weight * nll
    parts = {"l1": float(l1.detach()), "nll": float(nll.detach())}
    if config.stft_weight > 0:
        stft = multires_stft_loss(final, target, config.stft_resolutions, config.stft_floor_db)
        total = total + config.stft_weight * stft
        parts["stft"] = float(stft.detach())
    if config.compressed_weight > 0:
        n_fft, hop = config.compressed_resolution
        compressed = compressed_spectral_loss(
            final, target, n_fft, hop, config.compressed_power, config.compressed_mag_fraction, config.stft_floor_db
        )
        total = total + config.compressed_weight * compressed
        parts["compressed"] = float(compressed.detach())
    if config.si_sdr_weight > 0:
        si_sdr = neg_si_sdr_db(final, target)
        total = total + config.si_sdr_weight * si_sdr
        parts["neg_si_sdr_db"] = float(si_sdr.detach())
    if config.stoi_weight > 0:
        stoi = stoi_approx(final, target, sample_rate).mean()
        total = total + config.stoi_weight * (1.0 - stoi)
        parts["stoi"] = float(stoi.detach())
    parts["total"] = float(total.detach())
    return total, parts
