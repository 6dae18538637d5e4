"""UDiffSE's posterior sampler (E-step) and the EM loop around it.

The E-step is sgmse's predictor–corrector sampler run on the *unconditional*
prior plus a likelihood step: per time step one Langevin corrector, one
reverse-SDE Euler–Maruyama predictor (noise-free on the last step), and every
``likelihood_every`` steps

    S += λ · g² · (X − S/μ) / (μ · ((σ/μ)² + W·H)) · dt,   μ = e^{−θt},

the gradient of log CN(X; S/μ, (σ/μ)² + W·H), i.e. the noisy image X seen as
the clean estimate S/μ plus NMF-modelled noise. The M-step
(:func:`model.udiffse.nmf.is_update`) refits W·H to the batch-mean |X − S|².

Images are (bins, frames) complex64 (one clip); a batch of ``nbatch``
posterior samples is (nbatch, bins, frames). ``score_fn(x, t)`` maps such a
batch and a float time to the score, same shape. All randomness is drawn from
``generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.udiffse.nmf import is_update
from model.udiffse.sde import OUVESDE

ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class SamplerSettings:
    """The E-step's knobs (see :class:`model.udiffse.config.UDiffSEConfig` for their meaning)."""

    num_e: int
    t_eps: float
    snr: float
    likelihood_every: int
    likelihood_weight: float

    @classmethod
    def from_config(cls, c) -> SamplerSettings:
        return cls(c.num_e, c.t_eps, c.snr, c.likelihood_every, c.likelihood_weight)


def _randn(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=generator)


def e_step(
    score_fn: ScoreFn,
    sde: OUVESDE,
    noisy: torch.Tensor,
    noise_var: torch.Tensor | None,
    settings: SamplerSettings,
    nbatch: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``nbatch`` posterior samples of the clean image, (nbatch, bins, frames) complex64.

    ``noisy`` X (bins, frames) complex; ``noise_var`` W·H (bins, frames) ≥ 0,
    or None for no likelihood step (the prior only, started at X).
    The grid is linspace(1, t_eps, num_e) with step dt = 1/num_e, sgmse's
    convention (so the last step ends near t = 0, not at t_eps).
    """
    s = settings
    x = sde.prior_sample(noisy.expand(nbatch, *noisy.shape).clone(), generator)
    dt = 1.0 / s.num_e
    for i, t in enumerate(torch.linspace(1.0, s.t_eps, s.num_e).tolist()):
        g2 = float(sde.diffusion(t)) ** 2
        # Annealed Langevin corrector with step (snr·σ(t))², as the public UDiffSE code
        # (not sgmse's gradient-norm rule, whose steps re-equilibrate to the prior and wash out the likelihood).
        step = (s.snr * float(sde.std(t))) ** 2
        x = x + step * score_fn(x, t) + math.sqrt(2.0 * step) * _randn(x, generator)
        # Euler–Maruyama on the reverse SDE dx = [f − g² ∇log p] dt + g dw̄, stepping t → t − dt.
        x_mean = x - (sde.drift(x, t) - g2 * score_fn(x, t)) * dt
        x = x_mean if i == s.num_e - 1 else x_mean + math.sqrt(g2 * dt) * _randn(x, generator)
        if noise_var is not None and i % s.likelihood_every == 0:
            mu, sigma = float(sde.mean_factor(t)), float(sde.std(t))
            x = x + s.likelihood_weight * g2 * (noisy - x / mu) / (mu * ((sigma / mu) ** 2 + noise_var)) * dt
    return x


@dataclass
class EMResult:
    """``clean`` (bins, frames) complex64, the mean of the last E-step's samples; ``w`` (bins, rank),
    ``h`` (rank, frames) the final NMF; ``nll_trace`` (num_em,) float32 the mean per-bin negative
    log-likelihood −log CN(X − S; 0, W·H) after each M-step (nats)."""

    clean: torch.Tensor
    w: torch.Tensor
    h: torch.Tensor
    nll_trace: torch.Tensor


def noise_nll(residual_power: torch.Tensor, noise_var: torch.Tensor, floor: float) -> torch.Tensor:
    """Mean over bins of −log CN(r; 0, v) = log(π v) + |r|²/v; 0-dim tensor."""
    v = noise_var.clamp_min(floor)
    return (torch.log(math.pi * v) + residual_power / v).mean()


def run_em(
    score_fn: ScoreFn,
    sde: OUVESDE,
    noisy: torch.Tensor,
    w: torch.Tensor,
    h: torch.Tensor,
    settings: SamplerSettings,
    num_em: int,
    nbatch: int,
    skip_first_likelihood: bool,
    floor: float,
    generator: torch.Generator | None,
) -> EMResult:
    """``num_em`` rounds of E-step then one IS update of (W, H) on the batch-mean |X − S|².

    ``noisy`` (bins, frames) complex; ``w`` (bins, rank), ``h`` (rank, frames)
    the starting noise model. Returns the last E-step's sample mean and the
    final (W, H).
    """
    trace = []
    samples = None
    for it in range(num_em):
        noise_var = None if (it == 0 and skip_first_likelihood) else w @ h
        samples = e_step(score_fn, sde, noisy, noise_var, settings, nbatch, generator)
        residual = (noisy - samples).abs().pow(2).mean(dim=0)  # (bins, frames)
        w, h = is_update(residual, w, h, floor)
        trace.append(noise_nll(residual, w @ h, floor))
    return EMResult(clean=samples.mean(dim=0), w=w, h=h, nll_trace=torch.stack(trace).float())


__all__ = ["EMResult", "SamplerSettings", "e_step", "noise_nll", "run_em"]
