"""Per-sample Gaussian mixture over scalar noise values.

DiffGMM models the noise in every waveform sample as a mixture of K scalar
Gaussians. The network predicts, for each sample t, weights π_k(t), means
μ_k(t) and standard deviations σ_k(t) (a diagonal Σ is a per-sample variance
when the variable is a scalar). All tensors here share the layout
``(batch, K, samples)``, float32, in the model's normalised amplitude units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class MixtureParams:
    """Mixture parameters, each ``(batch, K, samples)`` float32.

    ``logits`` are the unnormalised log-weights; ``weights`` (π) is their
    softmax over K. ``scale`` is σ (strictly positive), not the variance.
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


def mixture_mean(params: MixtureParams) -> torch.Tensor:
    """E[n] = Σ_k π_k μ_k, shape ``(batch, samples)``."""
    return (params.weights * params.mean).sum(dim=1)


def mixture_sample(params: MixtureParams, generator: torch.Generator) -> torch.Tensor:
    """Draw one noise value per sample, shape ``(batch, samples)``.

    Picks a component by π, then draws from that Gaussian. The explicit
    generator makes the draw reproducible and independent of global RNG state.
    """
    weights = params.weights  # (B, K, S)
    batch, k, samples = weights.shape
    flat = weights.permute(0, 2, 1).reshape(-1, k)
    choice = torch.multinomial(flat, 1, generator=generator).view(batch, 1, samples)
    mean = params.mean.gather(1, choice).squeeze(1)
    scale = params.scale.gather(1, choice).squeeze(1)
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + scale * eps


def mixture_nll(params: MixtureParams, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``target`` (batch, samples) per sample, in nats.

    Returns ``(batch, samples)``. Uses log-sum-exp over components so that a
    component with a vanishing weight does not underflow.
    """
    x = target.unsqueeze(1)
    log_pi = torch.log_softmax(params.logits, dim=1)
    z = (x - params.mean) / params.scale
    log_prob = -0.5 * z * z - torch.log(params.scale) - 0.5 * _LOG_2PI
    return -torch.logsumexp(log_pi + log_prob, dim=1)


def occupancy(params: MixtureParams) -> torch.Tensor:
    """Mean weight of each component over samples, shape ``(batch, K)``."""
    return params.weights.mean(dim=2)
