"""Per-sample Gaussian mixture over scalar noise values.

DiffGMM models the noise at every position as a mixture of K Gaussians. In
the waveform representation a position is a sample and the variable a real
scalar; in the STFT representation a position is a time-frequency bin and the
variable a complex coefficient, with a circular complex Gaussian per component
(a diagonal Σ is then one variance per bin and component). The network predicts,
for each position, weights π_k, means μ_k and standard deviations σ_k. All
tensors share the layout ``(batch, K, *positions)`` (``positions`` = samples, or
bins × frames), float32 or complex64, in the model's normalised units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)


@dataclass(frozen=True)
class MixtureParams:
    """Mixture parameters, each ``(batch, K, *positions)``.

    ``logits`` are the unnormalised log-weights; ``weights`` (π) is their
    softmax over K. ``mean`` is float32 (real variable) or complex64 (complex
    variable). ``scale`` is σ (strictly positive, float32), not the variance;
    for a complex component E|n − μ|² = σ².
    """

    logits: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor

    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=1)

    @property
    def num_components(self) -> int:
        return int(self.logits.shape[1])


def params_from_raw(raw: torch.Tensor, min_scale: float) -> MixtureParams:
    """Split a head output ``(batch, 3K, samples)`` into valid mixture parameters.

    σ = softplus(raw) + min_scale: softplus keeps the gradient alive for small σ
    (unlike exp, which explodes the NLL when the network overshoots), and the
    floor keeps the NLL bounded on digital silence.
    """
    logits, mean, raw_scale = raw.chunk(3, dim=1)
    scale = F.softplus(raw_scale) + min_scale
    return MixtureParams(logits=logits, mean=mean, scale=scale)


def complex_params_from_raw(raw: torch.Tensor, reference: torch.Tensor, min_scale: float) -> MixtureParams:
    """Mixture over complex coefficients from a head output ``(batch, 4K, bins, frames)``.

    Means and scales are relative to the current estimate ``reference``
    (batch, bins, frames) complex: μ_k = c_k · X and σ_k = s_k · (|X| + floor),
    with c_k complex and s_k > 0 from the network. The noise in a bin is a
    fraction of what the bin holds, so the mixture is level-free, a bin with
    nothing in it gets nothing subtracted (digital silence stays silent) and the
    untrained head (c ≈ 0) is the identity.
    """
    logits, mean_re, mean_im, raw_scale = raw.chunk(4, dim=1)
    ref = reference.unsqueeze(1)
    mean = torch.complex(mean_re.float(), mean_im.float()) * ref
    scale = (F.softplus(raw_scale.float()) + min_scale) * (ref.abs() + min_scale)
    return MixtureParams(logits=logits.float(), mean=mean, scale=scale)


def mixture_mean(params: MixtureParams) -> torch.Tensor:
    """E[n] = Σ_k π_k μ_k, shape ``(batch, *positions)``."""
    return (params.weights * params.mean).sum(dim=1)


def mixture_sample(params: MixtureParams, generator: torch.Generator) -> torch.Tensor:
    """Draw one noise value per position, shape ``(batch, *positions)``.

    Picks a component by π, then draws from that Gaussian. The explicit
    generator makes the draw reproducible and independent of global RNG state.
    """
    weights = params.weights  # (B, K, *P)
    k = weights.shape[1]
    positions = weights.shape[2:]
    flat = weights.movedim(1, -1).reshape(-1, k)
    choice = torch.multinomial(flat, 1, generator=generator).view(weights.shape[0], *positions).unsqueeze(1)
    mean = params.mean.gather(1, choice).squeeze(1)
    scale = params.scale.gather(1, choice).squeeze(1)
    # torch.randn of a complex dtype draws a circular Gaussian with E|eps|^2 = 1.
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + scale * eps


def mixture_nll(params: MixtureParams, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``target`` (batch, *positions) per position, in nats.

    Returns ``(batch, *positions)``. Real: N(μ, σ²); complex: the circular
    complex Gaussian, density exp(−|n − μ|²/σ²) / (π σ²). Uses log-sum-exp over
    components so that a component with a vanishing weight does not underflow.
    """
    x = target.unsqueeze(1)
    log_pi = torch.log_softmax(params.logits, dim=1)
    if params.mean.is_complex():
        z2 = (x - params.mean).abs().square() / params.scale.square()
        log_prob = -z2 - 2.0 * torch.log(params.scale) - _LOG_PI
    else:
        z = (x - params.mean) / params.scale
        log_prob = -0.5 * z * z - torch.log(params.scale) - 0.5 * _LOG_2PI
    return -torch.logsumexp(log_pi + log_prob, dim=1)


def occupancy(params: MixtureParams) -> torch.Tensor:
    """Mean weight of each component over positions, shape ``(batch, K)``."""
    return params.weights.flatten(2).mean(dim=2)
