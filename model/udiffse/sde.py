"""The Ornstein–Uhlenbeck variance-exploding SDE (sgmse's OUVE) with its mean fixed at zero.

Forward process on a complex STFT image s (unconditional prior: no y to drift to):

    dx = −θ x dt + g(t) dw,   g(t) = σ_min (σ_max/σ_min)^t √(2 ln(σ_max/σ_min)),

so x_t | s ~ CN(μ(t) s, σ(t)²) with μ(t) = e^{−θt} and

    σ(t)² = σ_min² ((σ_max/σ_min)^{2t} − e^{−2θt}) · L / (θ + L),   L = ln(σ_max/σ_min),

the solution of v' = −2θ v + g², v(0) = 0. Complex Gaussian convention (as
sgmse): variance σ² means E|x − μ s|² = σ², σ²/2 in each of the real and
imaginary parts. Times are float in [0, 1]; every function broadcasts over t.
"""

from __future__ import annotations

import math

import torch


class OUVESDE:
    """μ(t), σ(t), g(t), the drift f(x, t) = −θx, and prior draws; t a float or a tensor."""

    def __init__(self, theta: float, sigma_min: float, sigma_max: float) -> None:
        self.theta, self.sigma_min, self.sigma_max = float(theta), float(sigma_min), float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)

    @classmethod
    def from_config(cls, config) -> OUVESDE:
        return cls(config.theta, config.sigma_min, config.sigma_max)

    @staticmethod
    def _t(t) -> torch.Tensor:
        return t if isinstance(t, torch.Tensor) else torch.tensor(float(t), dtype=torch.float64)

    def mean_factor(self, t) -> torch.Tensor:
        """μ(t) = e^{−θt}: the marginal mean is μ(t)·s."""
        return torch.exp(-self.theta * self._t(t))

    def std(self, t) -> torch.Tensor:
        """σ(t) of the marginal x_t | s."""
        t = self._t(t)
        lr = self.log_ratio
        var = self.sigma_min**2 * (torch.exp(2 * lr * t) - torch.exp(-2 * self.theta * t)) * lr / (self.theta + lr)
        return var.clamp_min(0.0).sqrt()

    def diffusion(self, t) -> torch.Tensor:
        """g(t), the diffusion coefficient."""
        t = self._t(t)
        return self.sigma_min * torch.exp(self.log_ratio * t) * math.sqrt(2 * self.log_ratio)

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        """f(x, t) = −θ x."""
        return -self.theta * x

    def marginal_sample(
        self, s: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, z): x_t = μ(t)s + σ(t)z, z ~ CN(0, 1); s (batch, ...) complex, t (batch,)."""
        z = torch.randn(s.shape, dtype=s.dtype, device=s.device, generator=generator)
        shape = (-1,) + (1,) * (s.dim() - 1)
        mu, sigma = self.mean_factor(t).to(s.real.dtype).view(shape), self.std(t).to(s.real.dtype).view(shape)
        return mu * s + sigma * z, z

    def prior_sample(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The sampler's start: x + CN(0, σ(1)²), as the public code (x the noisy image, not μ(1)·x)."""
        noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        return x + float(self.std(1.0)) * noise
