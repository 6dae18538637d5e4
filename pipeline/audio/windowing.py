"""Fixed-length windows and their weighted overlap-add.

A clip of any length is cut into windows of ``window`` samples every ``hop``
samples (the last one zero-padded), so a model sees fixed shapes. Windows are
put back with a weighted overlap-add normalised by the summed weights:
out[t] = Σ_i w_i[t]·ŷ_i[t] / Σ_i w_i[t]. The weight is flat with raised-cosine
ramps over the overlap, strictly positive everywhere, so an identity model
gives back the input exactly (to float rounding) at any length, and a real
model's window seams crossfade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowConfig:
    """Window geometry in seconds at the model rate; ``overlap_seconds`` < ``window_seconds``."""

    window_seconds: float = 2.0
    overlap_seconds: float = 0.25

    def samples(self, sample_rate: int) -> tuple[int, int]:
        """(window, hop) in samples."""
        window = int(round(self.window_seconds * sample_rate))
        overlap = int(round(self.overlap_seconds * sample_rate))
        if window <= 0 or not 0 <= overlap < window:
            raise ValueError(f"need 0 <= overlap < window, got window={window}, overlap={overlap} samples")
        return window, window - overlap


def crossfade_weight(window: int, hop: int) -> np.ndarray:
    """(window,) float64 weight: raised-cosine ramps of ``window-hop`` samples, 1 in between, never 0."""
    overlap = window - hop
    weight = np.ones(window)
    if overlap:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, overlap + 1) / (overlap + 1))
        weight[:overlap] = ramp
        weight[window - overlap :] = np.minimum(weight[window - overlap :], ramp[::-1])
    return weight


def num_windows(length: int, window: int, hop: int) -> int:
    """How many windows cover ``length`` samples (at least one, also for an empty clip)."""
    if length <= window:
        return 1
    return 1 + -(-(length - window) // hop)


def frame(signal: np.ndarray, window: int, hop: int) -> np.ndarray:
    """(samples,) float32 → (num_windows, window) float32, zero-padded at the end."""
    n = num_windows(len(signal), window, hop)
    padded = np.zeros((n - 1) * hop + window, dtype=np.float32)
    padded[: len(signal)] = signal
    return np.lib.stride_tricks.sliding_window_view(padded, window)[::hop].copy()


class OverlapAdd:
    """Accumulates enhanced windows of one clip, in order, and emits finished samples.

    Streaming: samples before the start of the latest window can no longer
    change, so :meth:`add` returns them at once; a long clip never needs all
    its windows in memory.
    """

    def __init__(self, length: int, window: int, hop: int) -> None:
        self.length, self.window, self.hop = length, window, hop
        self.weight = crossfade_weight(window, hop)
        self._num = np.zeros(window, dtype=np.float64)
        self._den = np.zeros(window, dtype=np.float64)
        self._emitted = 0  # samples already returned

    def add(self, enhanced: np.ndarray) -> np.ndarray:
        """Add the next window (window,) and return the samples that are final now."""
        if len(self._num) < self.window:
            grow = self.window - len(self._num)
            self._num = np.concatenate([self._num, np.zeros(grow)])
            self._den = np.concatenate([self._den, np.zeros(grow)])
        self._num[: self.window] += self.weight * enhanced
        self._den[: self.window] += self.weight
        ready = min(self.hop, max(0, self.length - self._emitted))
        out = (self._num[:ready] / self._den[:ready]).astype(np.float32)
        self._num = self._num[self.hop :]
        self._den = self._den[self.hop :]
        self._emitted += len(out)
        return out

    def finish(self) -> np.ndarray:
        """The remaining samples after the last window."""
        ready = self.length - self._emitted
        out = (self._num[:ready] / self._den[:ready]).astype(np.float32)
        self._emitted += len(out)
        return out


def overlap_add(windows: np.ndarray, length: int, hop: int) -> np.ndarray:
    """(num_windows, window) → (length,) float32, the inverse of :func:`frame` for an identity model."""
    ola = OverlapAdd(length, windows.shape[1], hop)
    parts = [ola.add(w) for w in windows]
    parts.append(ola.finish())
    return np.concatenate(parts)
