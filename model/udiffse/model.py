"""The UDiffSE family: a clean-speech diffusion prior plus a per-clip EM with an NMF noise model.

Paper: "Unsupervised speech enhancement with diffusion-based generative
models" (arXiv 2309.10450; public code joanne-b-nortier/UDiffSE on sgmse).
A clip-level family (``input_unit = "clip"``): :meth:`UDiffSE.enhance_chunk`
takes one chunk of ONE clip and the state the previous chunk of that clip
left (the NMF noise model), so a long file streams in bounded memory.

Choices where the paper and code are silent (``docs/model.md``):

* peak normalisation: each chunk's image is divided by its peak magnitude (as
  the public code does at inference; we do the same per training example), and
  the carried noise model is rescaled by (old peak / new peak)² when the next
  chunk's peak differs;
* warm start: the state is W (bins, rank) and the mean activation of each
  template over the chunk; the next chunk starts with that activation on every
  frame and applies the likelihood step from its first EM iteration (the
  first-iteration skip exists for the random start only);
* the network predicts ε̂ and the score is −ε̂/σ(t);
* stats: the EM's final noise NLL and its trace, the NMF noise power per
  octave band and its dominant template's centre frequency (see :meth:`UDiffSE.noise_stats`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from model.udiffse.config import UDiffSEConfig
from model.udiffse.network import ScoreUNet
from model.udiffse.nmf import random_init
from model.udiffse.sampler import SamplerSettings, run_em
from model.udiffse.sde import OUVESDE
from model.udiffse.transform import image_power_to_linear, to_image, to_waveform

# Octave-band edges of the noise fingerprint, Hz: [0, 125), [125, 250), … [4000, 8000].
OCTAVE_EDGES_HZ = (0.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
STATE_KEYS = ("w", "h_mean", "peak")


class UDiffSE(nn.Module):
    """Score network and EM enhancer. Waveform chunks (samples,) float32 at ``config.sample_rate`` Hz."""

    name = "udiffse"
    input_unit: ClassVar[str] = "clip"

    def __init__(self, config: UDiffSEConfig | None = None) -> None:
        super().__init__()
        self.config = config or UDiffSEConfig()
        c = self.config
        self.net = ScoreUNet(c.channels, c.channel_mults, c.res_blocks, c.groups, c.time_features)
        self.sde = OUVESDE.from_config(c)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return self.parameters()

    # --- images -------------------------------------------------------------------------------
    def image(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, samples) → (peak-normalised image (batch, bins, frames) complex64, peak (batch,) float32)."""
        image = to_image(waveform, self.config)
        peak = image.abs().amax(dim=(-2, -1))
        return image / peak.clamp_min(self.config.peak_floor).view(-1, 1, 1), peak

    # --- the network --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε̂ for a diffused image x (batch, bins, frames) complex64 at times t (batch,) float; same shape as x."""
        bins, frames = x.shape[-2:]
        m = self.net.multiple
        parts = torch.view_as_real(x).permute(0, 3, 1, 2)  # (batch, 2, bins, frames)
        parts = F.pad(parts, (0, -frames % m, 0, -bins % m))
        out = self.net(parts, t)[..., :bins, :frames]
        return torch.view_as_complex(out.permute(0, 2, 3, 1).contiguous())

    def score(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """∇ log p_t(x) ≈ −ε̂(x, t)/σ(t); x (n, bins, frames) complex64, t a float time."""
        tt = torch.full((x.shape[0],), float(t), device=x.device)
        return -self.forward(x, tt) / float(self.sde.std(t))

    # --- enhancement --------------------------------------------------------------------------
    @torch.inference_mode()
    def enhance_chunk(
        self,
        chunk: torch.Tensor,
        state: dict[str, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One chunk of one clip → (enhanced chunk (samples,) float32, stats, state for the clip's next chunk).

        ``state``: None (or {}) at the clip's start, else what the previous call on this
        clip returned: ``w`` (bins, rank) templates, ``h_mean`` (rank,) mean
        activations, ``peak`` () that chunk's image peak. Its size does not
        depend on the chunk length. ``generator`` draws the NMF start and all
        sampler noise (None: torch's default generator).

        stats (all float32): ``em_nll`` () the final mean per-bin noise NLL
        (nats), ``em_nll_trace`` (num_em,), ``noise_band_db`` (7,) the noise
        model's power per octave band (:data:`OCTAVE_EDGES_HZ`) in dB re a
        unit-variance white noise, ``noise_dominant_hz`` () the centre frequency
        of the template carrying the most noise power. A digitally silent chunk
        is returned as zeros with NaN stats and the incoming state.
        """
        if chunk.dim() != 1:
            raise ValueError(f"enhance_chunk takes one chunk of one clip, shape (samples,); got {tuple(chunk.shape)}")
        if state and set(state) != set(STATE_KEYS):
            raise ValueError(
                f"state must have keys {STATE_KEYS} (or be None / empty at a clip's start), got {sorted(state)}"
            )
        c = self.config
        length = chunk.shape[0]
        image, peak = self.image(chunk.float().unsqueeze(0))
        noisy, peak = image[0], peak[0]
        bins, frames = noisy.shape
        if float(peak) <= c.peak_floor:
            nan = torch.tensor(float("nan"))
            stats = {
                "em_nll": nan,
                "em_nll_trace": torch.full((c.num_em,), float("nan")),
                "noise_band_db": torch.full((len(OCTAVE_EDGES_HZ) - 1,), float("nan")),
                "noise_dominant_hz": nan,
            }
            return torch.zeros_like(chunk, dtype=torch.float32), stats, dict(state) if state else {}
        if not state:
            w, h = random_init(bins, frames, c.nmf_rank, generator, c.nmf_floor)
            skip_first = c.skip_first_likelihood
        else:
            w = state["w"].float()
            # The image is divided by its peak, so its variances scale by the square of the peaks' ratio.
            h_mean = state["h_mean"].float() * (float(state["peak"]) / float(peak)) ** 2
            h = h_mean.view(-1, 1).expand(-1, frames).clone()
            skip_first = False
        result = run_em(
            self.score,
            self.sde,
            noisy,
            w,
            h,
            SamplerSettings.from_config(c),
            c.num_em,
            c.nbatch,
            skip_first,
            c.nmf_floor,
            generator,
        )
        out = to_waveform(result.clean.unsqueeze(0) * peak, c, length)[0]
        stats = {
            "em_nll": result.nll_trace[-1],
            "em_nll_trace": result.nll_trace,
            **self.noise_stats(result.w, result.h, peak),
        }
        new_state = {"w": result.w, "h_mean": result.h.mean(dim=1), "peak": peak.detach().clone()}
        return out, stats, new_state

    def noise_stats(self, w: torch.Tensor, h: torch.Tensor, peak: torch.Tensor) -> dict[str, torch.Tensor]:
        """The NMF noise fingerprint: ``noise_band_db`` (7,) and ``noise_dominant_hz`` (), float32.

        The mean over frames of W·H (a variance of the normalised image) is
        mapped back to the input's linear STFT power (:func:`image_power_to_linear`)
        and divided by the window's energy, so a white noise of variance v reads
        10·log10(v) dB in every band. A band without an STFT bin (only at
        small test FFTs) reads NaN.
        """
        c = self.config
        freqs = torch.arange(w.shape[0], dtype=torch.float32) * c.sample_rate / c.n_fft
        window_energy = float(torch.hann_window(c.n_fft, periodic=True).pow(2).sum())
        spectrum = image_power_to_linear((w @ h).mean(dim=1), peak, c) / window_energy  # (bins,)
        bands = []
        for lo, hi in zip(OCTAVE_EDGES_HZ[:-1], OCTAVE_EDGES_HZ[1:]):
            inside = (freqs >= lo) & ((freqs < hi) if hi < OCTAVE_EDGES_HZ[-1] else (freqs <= hi))
            bands.append(10.0 * torch.log10(spectrum[inside].mean().clamp_min(1e-30)))
        # Each template's share of the noise power: its linear-power shape times its total activation.
        shapes = image_power_to_linear(w, peak, c)  # (bins, rank)
        weight = shapes.sum(dim=0) * h.sum(dim=1)
        k = int(torch.argmax(weight))
        centre = (freqs * shapes[:, k]).sum() / shapes[:, k].sum().clamp_min(1e-30)
        return {"noise_band_db": torch.stack(bands).float(), "noise_dominant_hz": centre.float()}


def enhance_clip(
    model: UDiffSE, clip: torch.Tensor, generator: torch.Generator | None = None, chunk_samples: int | None = None
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Reference driver: a whole clip (samples,) in consecutive chunks, the state carried; (enhanced (samples,), stats per chunk).

    ``chunk_samples`` defaults to ``config.chunk_samples``. A clip no longer
    than one chunk is exactly one :meth:`UDiffSE.enhance_chunk` call. The
    pipeline owns its own chunking (overlap, IO); this is the model-side
    definition it is tested against.
    """
    size = chunk_samples or model.config.chunk_samples
    state, pieces, stats = None, [], []
    for start in range(0, max(clip.shape[0], 1), size):
        out, chunk_stats, state = model.enhance_chunk(clip[start : start + size], state, generator)
        pieces.append(out)
        stats.append(chunk_stats)
    return torch.cat(pieces), stats
