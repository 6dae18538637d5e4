"""DiffGMM: a reverse process that subtracts Gaussian-mixture noise estimates.

Paper: "Diffusion Gaussian Mixture Audio Denoise" (arXiv 2406.09154). Starting
from the noisy waveform itself (not from pure noise), each of ``num_steps``
iterations runs the shared U-Net on the current estimate, maps its per-sample
features through a linear head to mixture parameters (π_k, μ_k, σ_k), takes
the mixture's mean (or a draw) as the noise estimate n̂_i, and subtracts it:
x_{i+1} = x_i − n̂_i. The step index conditions the U-Net.

Choices the paper leaves open, and what we chose (all configurable):

* representation (``representation``): what the 1D U-Net runs over.
  ``waveform``: raw samples, one K-component scalar mixture per sample.
  ``stft``: STFT frames with frequency as channels (compressed real and
  imaginary parts in), one K-component complex mixture per time-frequency bin
  over the noise's STFT coefficient, means and scales relative to the current
  estimate's coefficient (:func:`model.gmm.complex_params_from_raw`). The STFT
  is linear and exactly invertible, so the subtraction in that domain is the
  subtraction in the waveform; it costs about the hop factor less per second;
* head: a single linear layer (1x1 convolution) from the U-Net features;
* noise estimate: the mixture mean (``noise_estimate="sample"`` draws instead);
* level: each window is divided by its standard deviation before the network
  and multiplied back after, so the model is level-invariant; mixture
  parameters and the NLL are in these normalised units;
* weights are shared across steps; the step index enters as a learned
  embedding added at the bottleneck;
* backbone (``backbone``, STFT only): ``unet`` runs the U-Net over all bins
  as channels; ``banded`` (:mod:`model.banded`) runs it over ERB bands with
  subband convolutions and expands back to bins for the per-bin head, at about
  a seventh of the arithmetic (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from model.banded import BandedBackbone, BandedConfig
from model.gmm import (
    MixtureParams,
    complex_params_from_raw,
    mixture_mean,
    mixture_nll,
    mixture_sample,
    occupancy,
    params_from_raw,
)
from model.spectral import STFTConfig, compressed_features, istft, stft
from model.unet import UNet1d

NOISE_ESTIMATES = ("mean", "sample")
REPRESENTATIONS = ("waveform", "stft")
BACKBONES = ("unet", "banded")
# The banded backbone's arithmetic is small enough that its per-bin tensors (4K values per
# bin and frame) set its speed: enhance() runs them a few windows at a time so they stay in
# cache (one thread, 2 s windows: 4 at a time ran 2.4x faster than 16; docs/benchmarks.md).
BANDED_ENHANCE_WINDOWS = 4


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
    representation: str = "waveform"
    n_fft: int = 512
    hop_length: int = 256
    compress: float = 0.3
    # STFT only: 0 = one linear head from the frame features to every bin's parameters;
    # > 0 = the frame features give each bin this many channels, which a small 2D
    # convolution over (bins, frames) combines with the bin's own input to give its parameters.
    bin_channels: int = 0
    bin_hidden: int = 16
    # "unet": the fields above size the U-Net over bins; "banded": ``banded`` sizes it
    # (STFT only; hidden_channels … bin_hidden are then unused).
    backbone: str = "unet"
    banded: BandedConfig = field(default_factory=BandedConfig)

    def __post_init__(self) -> None:
        if isinstance(self.banded, dict):  # from a checkpoint's plain dict
            object.__setattr__(self, "banded", _banded_from_dict(self.banded))
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.backbone == "banded":
            if self.representation != "stft":
                raise ValueError("backbone 'banded' needs representation 'stft' (it compresses STFT bins into bands)")
            self.banded.check_bins(self.stft.bins)
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}")
        _ = self.stft  # validates n_fft, hop_length, compress
        if self.num_components < 1:
            raise ValueError(f"num_components must be >= 1, got {self.num_components}")
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if self.noise_estimate not in NOISE_ESTIMATES:
            raise ValueError(f"noise_estimate must be one of {NOISE_ESTIMATES}, got {self.noise_estimate!r}")
        if self.kernel_size < self.stride:
            raise ValueError("kernel_size must be >= stride so that every sample is covered")

    @property
    def stft(self) -> STFTConfig:
        return STFTConfig(n_fft=self.n_fft, hop_length=self.hop_length, compress=self.compress)


def _banded_from_dict(values: dict) -> BandedConfig:
    known = set(BandedConfig.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown banded keys: {unknown}; known: {sorted(known)}")
    return BandedConfig(**values)


@dataclass
class ReverseOutput:
    """Everything one reverse pass produced.

    ``enhanced``: (batch, samples) float32 in input units; ``final``: the same
    in normalised units. ``scale``: (batch, 1) normaliser.
    ``states``: T+1 tensors x_0 … x_T in normalised units, in the model's
    representation: (batch, samples) float32, or (batch, bins, frames) complex64.
    ``params``: T mixtures, one per step. ``noise``: T noise estimates, shaped
    like the states.
    """

    enhanced: torch.Tensor
    final: torch.Tensor
    scale: torch.Tensor
    states: list[torch.Tensor] = field(default_factory=list)
    params: list[MixtureParams] = field(default_factory=list)
    noise: list[torch.Tensor] = field(default_factory=list)


def _scale_mean_rows(final: nn.Module, per_position: int, rows_per_param: int, mean_rows: slice, scale: float) -> None:
    """Small initial means: the untrained reverse process is close to the identity.

    It starts from "remove little" rather than subtracting noise of its own,
    while the network below still gets gradients.
    """
    with torch.no_grad():
        weight = final.weight.view(per_position, rows_per_param, -1)
        bias = final.bias.view(per_position, rows_per_param)
        weight[mean_rows].mul_(scale)
        bias[mean_rows].zero_()


class DiffGMM(nn.Module):
    """Waveform windows ``(batch, samples)`` float32 at 16 kHz → enhanced windows, same shape."""

    name = "diffgmm"
    input_unit: ClassVar[str] = "windows"

    def __init__(self, config: DiffGMMConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiffGMMConfig()
        c = self.config
        spectral = c.representation == "stft"
        k = c.num_components
        # Per bin: logits, Re μ, Im μ, raw σ (4K); per sample: logits, μ, raw σ (3K).
        per_position = 4 * k if spectral else 3 * k
        mean_rows = slice(k, 3 * k) if spectral else slice(k, 2 * k)
        self.backbone = None
        if c.backbone == "banded":
            self.backbone = BandedBackbone(c.banded, c.stft.bins, c.sample_rate, per_position, c.num_steps)
            _scale_mean_rows(self.backbone.final, per_position, 1, mean_rows, c.head_init_scale)
            return
        self.unet = UNet1d(
            in_channels=2 * c.stft.bins if spectral else 1,
            out_channels=c.feature_channels,
            hidden_channels=c.hidden_channels,
            depth=c.depth,
            growth=c.growth,
            kernel_size=c.kernel_size,
            stride=c.stride,
            bottleneck_blocks=c.bottleneck_blocks,
            num_steps=c.num_steps,
        )
        self.refine = None
        if spectral and c.bin_channels > 0:
            # The frame features are a few hundred channels for 257 bins: a low-rank
            # view of the spectrum. The refinement gives each bin its own input back
            # (and its neighbours'), so harmonics can be kept bin by bin.
            self.head = nn.Conv1d(c.feature_channels, c.bin_channels * c.stft.bins, 1)
            self.refine = nn.Sequential(
                nn.Conv2d(c.bin_channels + 2, c.bin_hidden, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(c.bin_hidden, per_position, 3, padding=1),
            )
            final, rows_per_param = self.refine[-1], 1
        else:
            self.head = nn.Conv1d(c.feature_channels, per_position * (c.stft.bins if spectral else 1), 1)
            final, rows_per_param = self.head, (c.stft.bins if spectral else 1)
        _scale_mean_rows(final, per_position, rows_per_param, mean_rows, c.head_init_scale)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter: DiffGMM has no frozen part."""
        return self.parameters()

    def represent(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) normalised waveform → the state the reverse process runs on."""
        return stft(waveform, self.config.stft) if self.config.representation == "stft" else waveform

    def waveform(self, state: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse of :meth:`represent`: a state → (batch, length) float32."""
        return istft(state, self.config.stft, length) if self.config.representation == "stft" else state

    def mixture(self, x: torch.Tensor, step: int) -> MixtureParams:
        """Mixture parameters for the current estimate ``x`` (a state, see :meth:`represent`), normalised units."""
        c = self.config
        steps = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
        if self.backbone is not None:
            raw = self.backbone(compressed_features(x, c.compress), steps)  # (B, 4K, bins, frames)
            return complex_params_from_raw(raw, x, c.min_scale)
        if c.representation == "stft":
            inputs = compressed_features(x, c.compress)  # (B, 2·bins, frames)
            features = self.head(self.unet(inputs, steps))
            batch, frames = features.shape[0], features.shape[-1]
            if self.refine is not None:
                per_bin = features.view(batch, c.bin_channels, c.stft.bins, frames)
                raw = self.refine(torch.cat([per_bin, inputs.view(batch, 2, c.stft.bins, frames)], dim=1))
            else:
                raw = features.view(batch, 4 * c.num_components, c.stft.bins, frames)
            return complex_params_from_raw(raw, x, c.min_scale)
        features = self.unet(x.unsqueeze(1), steps)
        return params_from_raw(self.head(features), c.min_scale)

    def forward(self, noisy: torch.Tensor, generator: torch.Generator | None = None) -> ReverseOutput:
        """Run the T-step reverse process on ``noisy`` (batch, samples) float32."""
        if noisy.dim() != 2:
            raise ValueError(f"expected (batch, samples), got shape {tuple(noisy.shape)}")
        c = self.config
        if c.noise_estimate == "sample" and generator is None:
            raise ValueError("noise_estimate='sample' needs an explicit torch.Generator")
        # std, not peak: peak is dominated by clicks, std tracks the noise floor.
        scale = noisy.std(dim=-1, keepdim=True, unbiased=False) + c.norm_floor
        x = self.represent(noisy / scale)
        out = ReverseOutput(enhanced=noisy, final=noisy, scale=scale, states=[x])
        for step in range(c.num_steps):
            params = self.mixture(x, step)
            noise = mixture_mean(params) if c.noise_estimate == "mean" else mixture_sample(params, generator)
            x = x - noise
            out.params.append(params)
            out.noise.append(noise)
            out.states.append(x)
        out.final = self.waveform(x, noisy.shape[-1])
        # A window of digital silence has no noise to remove: pass it through
        # exactly (the waveform network's biases would otherwise leave a floor).
        silent = (noisy == 0).all(dim=-1, keepdim=True)
        out.final = torch.where(silent, torch.zeros_like(out.final), out.final)
        out.enhanced = out.final * scale
        return out

    @torch.inference_mode()
    def enhance(
        self, windows: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model-family interface (:class:`model.family.WindowFamily`): windows (batch, samples) → (windows, stats).

        ``generator`` draws the noise estimates when ``noise_estimate="sample"``
        (required then; unused with "mean").

        ``stats["gmm_nll"]`` (batch,): mean NLL, nats per position (sample or
        time-frequency bin), of each step's removed noise under that step's own
        mixture; ``stats["gmm_occupancy"]`` (batch, K): mean π per component
        over positions and steps.
        """
        if self.backbone is None or windows.dim() != 2 or windows.shape[0] <= BANDED_ENHANCE_WINDOWS:
            return self._enhance(windows, generator)
        # Rows are independent (the family contract), so slicing the batch changes no output.
        parts = [self._enhance(chunk, generator) for chunk in windows.split(BANDED_ENHANCE_WINDOWS)]
        stats = {key: torch.cat([p[1][key] for p in parts]) for key in parts[0][1]}
        return torch.cat([p[0] for p in parts]), stats

    def _enhance(
        self, windows: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.forward(windows, generator=generator)
        nll = torch.stack([mixture_nll(p, n).flatten(1).mean(dim=-1) for p, n in zip(out.params, out.noise)]).mean(0)
        occ = torch.stack([occupancy(p) for p in out.params]).mean(0)
        return out.enhanced, {"gmm_nll": nll, "gmm_occupancy": occ}
