"""Frozen configurations of the UDiffSE family: the model (STFT, SDE, network, EM sampler) and its loss.

Every sampler knob the paper ablates is a field, so the paper's setting is a
config (:data:`PAPER_SETTING`) rather than code. The defaults are the fast
setting that the family ships with on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.spectral import STFTConfig
from model.validation import require_at_least_one


@dataclass(frozen=True)
class UDiffSEConfig:
    """Hyper-parameters of :class:`model.udiffse.UDiffSE`. Lengths in samples at ``sample_rate`` Hz, times in SDE time (0…1).

    STFT (fixed by the public code): ``n_fft`` 510, ``hop_length`` 128, Hann
    window → 256 bins, 125 frames/s; the image is ``amp_scale`` · |c|^``amp_exponent`` · e^{i∠c}.

    SDE: Ornstein–Uhlenbeck variance-exploding, ``theta``, ``sigma_min``, ``sigma_max``.

    Network: a time-conditioned real U-Net over the (real, imag) image with
    ``channels`` × ``channel_mults`` per level, ``res_blocks`` per level.

    Sampler: ``num_e`` predictor–corrector steps on a linear grid 1 → ``t_eps``;
    Langevin ``snr``; the likelihood step (weight ``likelihood_weight`` = λ)
    every ``likelihood_every`` steps; ``num_em`` EM iterations; ``nbatch``
    posterior samples per E-step, averaged; NMF of ``nmf_rank`` with floor ``nmf_floor``.
    ``skip_first_likelihood``: no likelihood step in the first EM iteration of
    a clip's *first* chunk (its W·H is a random draw there; later chunks start
    from the previous chunk's fit).

    ``chunk_seconds``: how long a chunk the pipeline hands :meth:`UDiffSE.enhance_chunk`.
    """

    sample_rate: int = 16000
    n_fft: int = 510
    hop_length: int = 128
    amp_scale: float = 0.15
    amp_exponent: float = 0.5
    peak_floor: float = 1e-8
    theta: float = 1.5
    sigma_min: float = 0.05
    sigma_max: float = 0.5
    channels: int = 8
    channel_mults: tuple[int, ...] = (1, 2, 4, 8, 8)
    res_blocks: int = 1
    groups: int = 4
    time_features: int = 32
    num_e: int = 10
    num_em: int = 3
    nbatch: int = 1
    t_eps: float = 0.03
    snr: float = 0.5
    likelihood_every: int = 2
    likelihood_weight: float = 1.5
    skip_first_likelihood: bool = True
    nmf_rank: int = 4
    nmf_floor: float = 1e-10
    chunk_seconds: float = 10.0

    def __post_init__(self) -> None:
        _ = self.stft  # validates n_fft and hop_length
        if not 0.0 < self.amp_exponent <= 1.0 or self.amp_scale <= 0.0:
            raise ValueError(f"need amp_scale > 0 and 0 < amp_exponent <= 1, got {self.amp_scale}, {self.amp_exponent}")
        if not 0.0 < self.sigma_min < self.sigma_max or self.theta < 0.0:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max and theta >= 0, got {self.sigma_min}, {self.sigma_max}, {self.theta}"
            )
        if not self.channel_mults or min(self.channel_mults) < 1 or self.channels < 1 or self.res_blocks < 1:
            raise ValueError("channels, res_blocks and every channel_mults entry must be >= 1")
        if self.channels % self.groups or any((self.channels * m) % self.groups for m in self.channel_mults):
            raise ValueError(f"groups {self.groups} must divide every level's channel count")
        if self.time_features < 2 or self.time_features % 2:
            raise ValueError(f"time_features must be an even number >= 2, got {self.time_features}")
        require_at_least_one(self, ("num_e", "num_em", "nbatch", "likelihood_every", "nmf_rank"))
        if not 0.0 < self.t_eps < 1.0:
            raise ValueError(f"t_eps must be in (0, 1), got {self.t_eps}")
        if self.snr <= 0.0 or self.likelihood_weight < 0.0 or self.nmf_floor <= 0.0:
            raise ValueError("snr and nmf_floor must be > 0, likelihood_weight >= 0")
        if self.chunk_seconds <= 0.0:
            raise ValueError(f"chunk_seconds must be > 0, got {self.chunk_seconds}")

    @property
    def stft(self) -> STFTConfig:
        # compress is the model's own transform (amp_scale·|c|^amp_exponent), applied outside STFTConfig.
        return STFTConfig(n_fft=self.n_fft, hop_length=self.hop_length, compress=1.0, window="hann")

    @property
    def chunk_samples(self) -> int:
        return int(round(self.chunk_seconds * self.sample_rate))

    @property
    def calls_per_chunk(self) -> int:
        """Network calls per chunk: (corrector + predictor) × steps × EM iterations (each on ``nbatch`` images at once)."""
        return 2 * self.num_e * self.num_em


# The paper's sampler (public code): 30 steps, 5 EM iterations, 2 posterior samples.
PAPER_SETTING = dict(num_e=30, num_em=5, nbatch=2)


@dataclass(frozen=True)
class UDiffSELossConfig:
    """Denoising score matching: t ~ U(``t_eps``, 1) per example, the family's SDE and transform."""

    t_eps: float = 0.03

    def __post_init__(self) -> None:
        if not 0.0 < self.t_eps < 1.0:
            raise ValueError(f"t_eps must be in (0, 1), got {self.t_eps}")
