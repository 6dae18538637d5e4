"""Denoising score matching for UDiffSE's clean-speech prior.

Clean speech only: ``noisy`` is accepted for the family contract and ignored.
Per example: the peak-normalised image s, t ~ U(t_eps, 1), ε ~ CN(0, 1),
x_t = μ(t)s + σ(t)ε, and the loss is E|ε̂(x_t, t) − ε|², i.e. sgmse's
|σ·score + ε|² with score = −ε̂/σ.
"""

from __future__ import annotations

import torch

from model.udiffse.config import UDiffSELossConfig


def udiffse_loss(
    model,
    noisy: torch.Tensor | None,
    clean: torch.Tensor,
    loss_config: UDiffSELossConfig,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(scalar loss, {"total", "dsm"} as floats) for clean (batch, samples) float32; t and ε drawn from ``generator``."""
    core = model.module if hasattr(model, "module") else model
    image, _ = core.image(clean.float())
    batch = image.shape[0]
    u = torch.rand(batch, generator=generator, device=image.device)
    t = loss_config.t_eps + (1.0 - loss_config.t_eps) * u
    x_t, eps = core.sde.marginal_sample(image, t, generator)
    eps_hat = model(x_t, t)
    dsm = (eps_hat - eps).abs().pow(2).mean()
    value = float(dsm.detach())
    return dsm, {"total": value, "dsm": value}
