"""Training objective of DiffGMM.

* L1 between the final estimate x_T and the clean target (the paper's loss);
* the mixture NLL of the true remaining noise x_i − clean at every step, so
  π, μ, σ are calibrated estimates and not decoration;
* optionally a multi-resolution STFT loss (spectral convergence + log
  magnitude), which the paper does not use; it helps perceptual scores.

Everything is computed in the model's normalised units (see
:class:`model.diffgmm.DiffGMM`), so the loss does not depend on input level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from model.diffgmm import ReverseOutput
from model.gmm import mixture_nll


@dataclass(frozen=True)
class LossConfig:
    l1_weight: float = 1.0
    nll_weight: float = 0.05
    stft_weight: float = 0.0
    stft_resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64))


def _stft_mag(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
    return spec.abs().clamp_min(1e-7)


def multires_stft_loss(estimate: torch.Tensor, target: torch.Tensor, resolutions) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + L1 log-magnitude; inputs (batch, samples)."""
    total = estimate.new_zeros(())
    for n_fft, hop in resolutions:
        est, ref = _stft_mag(estimate, n_fft, hop), _stft_mag(target, n_fft, hop)
        convergence = torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp_min(1e-7)
        total = total + convergence + F.l1_loss(est.log(), ref.log())
    return total / len(resolutions)


def diffgmm_loss(out: ReverseOutput, clean: torch.Tensor, config: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss (scalar tensor) and its parts as floats; ``clean`` is (batch, samples) in input units."""
    target = clean / out.scale
    final = out.states[-1]
    l1 = F.l1_loss(final, target)
    nll = torch.stack([mixture_nll(p, s - target).mean() for p, s in zip(out.params, out.states[:-1])]).mean()
    total = config.l1_weight * l1 + config.nll_weight * nll
    parts = {"l1": float(l1.detach()), "nll": float(nll.detach())}
    if config.stft_weight > 0:
        stft = multires_stft_loss(final, target, config.stft_resolutions)
        total = total + config.stft_weight * stft
        parts["stft"] = float(stft.detach())
    parts["total"] = float(total.detach())
    return total, parts
