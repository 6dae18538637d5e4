"""Fixed-length windows and their weighted overlap-add.

A clip of any length is cut into windows of ``window`` samples every ``hop``
samples, so a model sees fixed shapes. A window that runs past the clip's end
is filled by reflecting its own samples (``pad_mode`` "reflect", the default)
or with zeros ("zeros"); the filled part is discarded. A model never trained on
a cut to digital silence turns that step into a broadband burst at the end of
the clip, which the reflection avoids (measured in docs/model.md).

Windows are put back with a weighted overlap-add normalised by the summed
weights: out[t] = Σ_i w_i[t]·ŷ_i[t] / Σ_i w_i[t]. The weight is flat with
raised-cosine ramps over the overlap, strictly positive everywhere, so an
identity model gives back the input exactly (to float rounding) at any length,
and a real model's window seams crossfade.
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


PAD_MODES = ("reflect", "zeros")


def fill_window(segment: np.ndarray, window: int, pad_mode: str = "reflect") -> np.ndarray:
    """(≤ window,) float32 → (window,) float32: ``segment`` then its filling (see the module docstring).

    Reflection repeats as often as needed (a 1-sample segment repeats its sample);
    an empty segment gives zeros. The streaming path fills its last window with
    this same function, so both paths give the same samples.
    """
    segment = np.asarray(segment, dtype=np.float32)
    missing = window - len(segment)
    if missing <= 0:
        return segment[:window]
    if pad_mode == "zeros" or not len(segment):
        return np.concatenate([segment, np.zeros(missing, dtype=np.float32)])
    return np.pad(segment, (0, missing), mode="reflect" if len(segment) > 1 else "edge")


def frame(signal: np.ndarray, window: int, hop: int, pad_mode: str = "reflect") -> np.ndarray:
    """(samples,) float32 → (num_windows, window) float32; windows past the end filled by :func:`fill_window`."""
    signal = np.asarray(signal, dtype=np.float32)
    starts = np.arange(num_windows(len(signal), window, hop)) * hop
    inside = int(np.sum(starts + window <= len(signal)))
    out = np.empty((len(starts), window), dtype=np.float32)
    if inside:
        out[:inside] = np.lib.stride_tricks.sliding_window_view(signal, window)[starts[:inside]]
    for i in range(inside, len(starts)):
        out[i] = fill_window(signal[starts[i] :], window, pad_mode)
    return out


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
