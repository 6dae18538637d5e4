"""DiffGMM: a reverse process that subtracts Gaussian-mixture noise estimates.

Paper: "Diffusion Gaussian Mixture Audio Denoise" (arXiv 2406.09154). Starting
from the noisy waveform itself (not from pure noise), each of ``num_steps``
iterations runs the shared U-Net on the current estimate, maps its per-sample
features through a linear head to mixture parameters (π_k, μ_k, σ_k), takes
the mixture's mean (or a draw) as the noise estimate n̂_i, and subtracts it:
x_{i+1} = x_i − n̂_i. The step index conditions the U-Net.

Choices the paper leaves open, and what we chose (all configurable):

* mixture granularity: one K-component scalar mixture per waveform sample;
* head: a single linear layer (1x1 convolution) from the U-Net features;
* noise estimate: the mixture mean (``noise_estimate="sample"`` draws instead);
* level: each window is divided by its standard deviation before the network
  and multiplied back after, so the model is level-invariant; mixture
  parameters and the NLL are in these normalised units;
* weights are shared across steps; the step index enters as a learned
  embedding added at the bottleneck.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from model.gmm import MixtureParams, mixture_mean, mixture_nll, mixture_sample, occupancy, params_from_raw
from model.unet import UNet1d

NOISE_ESTIMATES = ("mean", "sample")


@dataclass(frozen=True)
class DiffGMMConfig:
    """Hyper-parameters of :class:`DiffGMM`. Lengths are in samples at ``sample_rate`` Hz."""

    sample_rate: int = 16000
    num_components: int = 5
    num_steps: int = 3
    hidden_channels: int = 24
    depth: int = 4
    growth: float = 2.0
    kernel_size: int = 8
    stride: int = 4
    bottleneck_blocks: int = 4
    feature_channels: int = 32
    min_scale: float = 1e-3
    norm_floor: float = 1e-3
    noise_estimate: str = "mean"
    head_init_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.num_components < 1:
            raise ValueError(f"num_components must be >= 1, got {self.num_components}")
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if self.noise_estimate not in NOISE_ESTIMATES:
            raise ValueError(f"noise_estimate must be one of {NOISE_ESTIMATES}, got {self.noise_estimate!r}")
        if self.kernel_size < self.stride:
            raise ValueError("kernel_size must be >= stride so that every sample is covered")


@dataclass
class ReverseOutput:
    """Everything one reverse pass produced.

    ``enhanced``: (batch, samples) float32 in input units.
    ``states``: T+1 tensors (batch, samples) in normalised units, x_0 … x_T.
    ``params``: T mixtures, one per step. ``scale``: (batch, 1) normaliser.
    ``noise``: T noise estimates (batch, samples), normalised units.
    """

    enhanced: torch.Tensor
    scale: torch.Tensor
    states: list[torch.Tensor] = field(default_factory=list)
    params: list[MixtureParams] = field(default_factory=list)
    noise: list[torch.Tensor] = field(default_factory=list)


class DiffGMM(nn.Module):
    """Waveform windows ``(batch, samples)`` float32 at 16 kHz → enhanced windows, same shape."""

    name = "diffgmm"

    def __init__(self, config: DiffGMMConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiffGMMConfig()
        c = self.config
        self.unet = UNet1d(
            in_channels=1,
            out_channels=c.feature_channels,
            hidden_channels=c.hidden_channels,
            depth=c.depth,
            growth=c.growth,
            kernel_size=c.kernel_size,
            stride=c.stride,
            bottleneck_blocks=c.bottleneck_blocks,
            num_steps=c.num_steps,
        )
        self.head = nn.Conv1d(c.feature_channels, 3 * c.num_components, 1)
        # Small initial means: the untrained reverse process is close to the
        # identity (it starts from "remove little" rather than subtracting noise
        # of its own) while the U-Net below still gets gradients.
        k = c.num_components
        with torch.no_grad():
            self.head.weight[k : 2 * k].mul_(c.head_init_scale)
            self.head.bias[k : 2 * k].zero_()

    def mixture(self, x: torch.Tensor, step: int) -> MixtureParams:
        """Mixture parameters for the current estimate ``x`` (batch, samples), normalised units."""
        steps = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
        features = self.unet(x.unsqueeze(1), steps)
        return params_from_raw(self.head(features), self.config.min_scale)

    def forward(self, noisy: torch.Tensor, generator: torch.Generator | None = None) -> ReverseOutput:
        """Run the T-step reverse process on ``noisy`` (batch, samples) float32."""
        if noisy.dim() != 2:
            raise ValueError(f"expected (batch, samples), got shape {tuple(noisy.shape)}")
        c = self.config
        if c.noise_estimate == "sample" and generator is None:
            raise ValueError("noise_estimate='sample' needs an explicit torch.Generator")
        # std, not peak: peak is dominated by clicks, std tracks the noise floor.
        scale = noisy.std(dim=-1, keepdim=True, unbiased=False) + c.norm_floor
        x = noisy / scale
        out = ReverseOutput(enhanced=x, scale=scale, states=[x])
        for step in range(c.num_steps):
            params = self.mixture(x, step)
            noise = mixture_mean(params) if c.noise_estimate == "mean" else mixture_sample(params, generator)
            x = x - noise
            out.params.append(params)
            out.noise.append(noise)
            out.states.append(x)
        out.enhanced = x * scale
        return out

    @torch.inference_mode()
    def enhance(
        self, windows: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model-family interface: windows (batch, samples) → (windows, stats).

        ``stats["gmm_nll"]`` (batch,): mean NLL, nats per sample, of each step's
        removed noise under that step's own mixture; ``stats["gmm_occupancy"]``
        (batch, K): mean π per component over samples and steps.
        """
        out = self.forward(windows, generator=generator)
        nll = torch.stack([mixture_nll(p, n).mean(dim=-1) for p, n in zip(out.params, out.noise)]).mean(0)
        occ = torch.stack([occupancy(p) for p in out.params]).mean(0)
        return out.enhanced, {"gmm_nll": nll, "gmm_occupancy": occ}
