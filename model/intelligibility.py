"""A differentiable short-time objective intelligibility (STOI) term, in pure PyTorch.

STOI (Taal et al., 2011) correlates short-time one-third-octave band envelopes of the clean and the
processed speech. Every neural model here lowered STOI on real pairs (docs/model.md), and the
spectral/SI-SDR terms do not see it directly, so this term trains on it. It follows pystoi's
definition with two changes that keep it cheap and differentiable at the model's own rate:

* no resampling to 10 kHz: the frames keep STOI's duration (256 samples at 10 kHz = 25.6 ms, 50 %
  overlap) at ``sample_rate``, and the 15 one-third-octave bands from 150 Hz (up to ~4.3 kHz) are cut
  from a zero-padded FFT fine enough that the bands keep their widths;
* no silent-frame removal (a hard, data-dependent selection): every frame counts. On speech with
  pauses the value is therefore a little below pystoi's, but it moves with it
  (``tests/test_intelligibility.py`` checks the ranking on an SNR ladder).
"""

from __future__ import annotations

import functools
import math

import torch

_BANDS = 15
_MIN_HZ = 150.0
_SEGMENT_FRAMES = 30  # 384 ms of envelope, STOI's N
_CLIP_DB = -15.0  # STOI's beta: the processed envelope may exceed the clean one by at most this SDR


@functools.lru_cache(maxsize=8)
def third_octave_matrix(sample_rate: int, n_fft: int) -> torch.Tensor:
    """(bands, n_fft // 2 + 1) float32 0/1 matrix summing FFT-bin power into STOI's 15 bands.

    Cached: the loss asks for the same one every step. Callers must not modify it in place.
    """
    freqs = torch.linspace(0, sample_rate, n_fft + 1)[: n_fft // 2 + 1]
    matrix = torch.zeros(_BANDS, n_fft // 2 + 1)
    for k in range(_BANDS):
        low = _MIN_HZ * 2.0 ** ((2 * k - 1) / 6)
        high = _MIN_HZ * 2.0 ** ((2 * k + 1) / 6)
        lo = int(torch.argmin((freqs - low).abs()))
        hi = int(torch.argmin((freqs - high).abs()))
        matrix[k, lo:hi] = 1.0
    return matrix


def stoi_approx(estimate: torch.Tensor, clean: torch.Tensor, sample_rate: int, eps: float = 1e-8) -> torch.Tensor:
    """Per-example approximate STOI, (batch,) float32 in [-1, 1] (1: envelopes identical; speech vs noise ~0.5).

    ``estimate`` and ``clean`` are (batch, samples) float32 waveforms at ``sample_rate`` Hz, any level
    (STOI is scale-invariant per segment). Clips shorter than one 384 ms segment give 0.
    """
    frame = round(0.0256 * sample_rate)
    hop = frame // 2
    n_fft = 1 << max(9, math.ceil(math.log2(frame * 2)))
    window = torch.hann_window(frame + 2, device=clean.device, dtype=clean.dtype)[1:-1]
    window = torch.nn.functional.pad(window, (0, n_fft - frame))
    bands = third_octave_matrix(sample_rate, n_fft).to(clean.device, clean.dtype)

    def envelopes(x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x, n_fft, hop, win_length=n_fft, window=window, center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (batch, bins, frames)
        return torch.sqrt(bands @ power + eps)  # (batch, bands, frames)

    x_env, y_env = envelopes(clean), envelopes(estimate)
    if x_env.shape[-1] < _SEGMENT_FRAMES:
        return torch.zeros(clean.shape[0], device=clean.device, dtype=clean.dtype)
    # (batch, bands, segments, N): every overlapping 30-frame segment, as STOI takes them.
    x_seg = x_env.unfold(-1, _SEGMENT_FRAMES, 1)
    y_seg = y_env.unfold(-1, _SEGMENT_FRAMES, 1)
    alpha = x_seg.norm(dim=-1, keepdim=True) / (y_seg.norm(dim=-1, keepdim=True) + eps)
    y_seg = torch.minimum(alpha * y_seg, x_seg * (1.0 + 10.0 ** (-_CLIP_DB / 20.0)))
    x_c = x_seg - x_seg.mean(dim=-1, keepdim=True)
    y_c = y_seg - y_seg.mean(dim=-1, keepdim=True)
    corr = (x_c * y_c).sum(-1) / (x_c.norm(dim=-1) * y_c.norm(dim=-1) + eps)
    return corr.mean(dim=(-2, -1))
