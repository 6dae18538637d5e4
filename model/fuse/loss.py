"""FUSE's training loss, one per stage (``model.config.stage``)."""

from __future__ import annotations

import torch

from model.fuse.config import FUSELossConfig
from model.fuse.schedule import add_noise, velocity


def fuse_loss(
    model, noisy: torch.Tensor, clean: torch.Tensor, config: FUSELossConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """The registered loss: noisy, clean (batch, samples) float32 → (scalar loss, parts incl. "total").

    Runs through ``model(...)`` (:meth:`model.fuse.FUSE.forward` → :func:`fuse_terms`) so a
    DistributedDataParallel wrapper sees the forward pass and synchronises the gradients.
    """
    return model(noisy, clean, kl_weight=config.kl_weight, generator=generator)


def fuse_terms(
    core, noisy: torch.Tensor, clean: torch.Tensor, kl_weight: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """FUSE's training forward pass, noisy, clean (batch, samples) float32 → (scalar loss, parts incl. "total").

    Stage ``vae``: the clean and the noisy windows (each normalised by its own std) are
    encoded, a latent drawn with ``generator`` (reparameterisation), decoded; loss = MSE of
    the compressed spectrum + kl_weight · mean KL to N(0, I). Stage ``diffusion``: the VAE
    (frozen, no grad) gives x0 = the clean latent and the condition = the noisy latent, both
    with the noisy window's scale; t and ε from ``generator``; loss = MSE of the denoiser's output
    against its target, ε or the velocity (``prediction``).
    """
    c = core.config
    where = generator.device if generator is not None else noisy.device
    with torch.autocast(device_type=noisy.device.type, enabled=False):
        if c.stage == "vae":
            spec = core.spectrum(torch.cat([noisy, clean]).float())
            mean, logvar = core.vae.encode(spec.features)
            eps = torch.randn(mean.shape, generator=generator, device=where).to(mean.device)
            recon = core.vae.decode(mean + (0.5 * logvar).exp() * eps)
            mse = (recon - spec.features).pow(2).mean()
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
            total = mse + kl_weight * kl
            return total, {"total": float(total.detach()), "recon_mse": float(mse.detach()), "kl": float(kl.detach())}
        with torch.no_grad():
            noisy_spec = core.spectrum(noisy.float())
            cond = core.latent(noisy_spec)
            x0 = core.latent(core.spectrum(clean.float(), scale=noisy_spec.scale))
        guidance, _ = core.guidance(noisy.float(), cond.shape[-1])
        t = torch.randint(0, c.train_timesteps, (x0.shape[0],), generator=generator, device=where).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=where).to(x0.device)
        alpha_bar = core.sampler.alpha_bars.to(x0.device)[t]
        x_t = add_noise(x0, eps, alpha_bar)
        target = eps if c.prediction == "epsilon" else velocity(x0, eps, alpha_bar)
        total = (core.denoiser(x_t, t, cond, guidance) - target).pow(2).mean()
        return total, {"total": float(total.detach()), f"{c.prediction}_mse": float(total.detach())}
