"""Full-band output for inputs above the model's rate: the model's low band, the input's high band under the model's gain.

A model at 16 kHz knows nothing above 8 kHz, and its output resampled back to
44.1/48 kHz is empty there. Here the input ``x`` (at its own rate) and the
model's output resampled back to that rate ``y`` are split by one linear-phase
crossover in the STFT (real, zero-phase weights that sum to one, centred at
:data:`CROSSOVER` × the model's Nyquist): below it the output is ``y``; above it
it is ``x`` times a per-frame gain that follows the model's own suppression in
its top bands (:data:`GAIN_BAND` × its Nyquist): the square root of the
model's output power over the input's power there, clipped to [0, 1]. Where
the model keeps speech (fricatives reach down into its top bands), the high
band is kept; where it removes noise, the high band goes down with it.

Whole signals (:func:`full_band`) and streams (:class:`FullBandStream`) run
the same frames (:class:`~pipeline.audio.paired_stft.PairedSTFTStream`, 32 ms).
An input at or below the model's rate is returned as ``y`` itself.
"""

from __future__ import annotations

import numpy as np

from pipeline.audio.attenuation import stft_geometry
from pipeline.audio.paired_stft import PairedSTFTStream

CROSSOVER = (0.85, 0.95)  # crossover from/to, fractions of the model's Nyquist (inside the resampler's passband)
GAIN_BAND = (0.55, 0.85)  # the model's top bands whose suppression the high band follows


class FullBandStream:
    """(samples,) float32 pairs at ``sample_rate`` (input, model output resampled back) → full-band output, streamed."""

    def __init__(self, sample_rate: int, model_rate: int) -> None:
        if sample_rate <= model_rate:
            raise ValueError(f"full band: the input rate ({sample_rate}) must be above the model's ({model_rate})")
        frame = stft_geometry(sample_rate)[0]
        freqs = np.fft.rfftfreq(frame, 1 / sample_rate)
        nyquist = model_rate / 2
        lo, hi = CROSSOVER[0] * nyquist, CROSSOVER[1] * nyquist
        ramp = np.clip((freqs - lo) / (hi - lo), 0.0, 1.0)
        self.low_weight = 0.5 + 0.5 * np.cos(np.pi * ramp)  # 1 below lo, 0 above hi, raised cosine between
        self.gain_bins = (freqs >= GAIN_BAND[0] * nyquist) & (freqs < GAIN_BAND[1] * nyquist)
        self.gains: list[np.ndarray] = []  # per-frame high-band gains, for figures and tests
        self._stream = PairedSTFTStream(frame, self._combine)

    def _combine(self, x_spec: np.ndarray, y_spec: np.ndarray) -> np.ndarray:
        x_power = np.sum(np.abs(x_spec[:, self.gain_bins]) ** 2, axis=1)
        y_power = np.sum(np.abs(y_spec[:, self.gain_bins]) ** 2, axis=1)
        gain = np.clip(np.sqrt(y_power / np.maximum(x_power, 1e-20)), 0.0, 1.0)
        self.gains.append(gain)
        return self.low_weight * y_spec + (1.0 - self.low_weight) * gain[:, None] * x_spec

    def push(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self._stream.push(x, y)

    def finish(self) -> np.ndarray:
        return self._stream.finish()


def full_band(x: np.ndarray, y: np.ndarray, sample_rate: int, model_rate: int) -> np.ndarray:
    """(samples,) float32 input and model output (both at ``sample_rate``) → full-band output; ``y`` itself at or below the model's rate."""
    if sample_rate <= model_rate:
        return y
    stream = FullBandStream(sample_rate, model_rate)
    return np.concatenate([stream.push(x, y), stream.finish()])
