"""A streaming STFT over two aligned signals: per-frame spectra of both in, one output spectrum out.

Frames: sqrt-Hann analysis and synthesis, 50 % overlap (periodic Hann sums to
one), the first frame one hop before the signal so every sample is covered by
two frames. Pieces of any size go in; output comes out one frame late and
``finish`` flushes it, so the outputs add up to exactly the input's length and
chunked processing equals whole (to float rounding). A spectral function that
returns its second argument unchanged reconstructs that signal.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# (frames, bins) complex spectra of the first and second signal → (frames, bins) output spectra.
SpectralFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class PairedSTFTStream:
    """(samples,) float pairs at one rate → (samples,) float32 through ``fn`` on their STFTs (``frame`` even, hop frame/2)."""

    def __init__(self, frame: int, fn: SpectralFn) -> None:
        if frame < 2 or frame % 2:
            raise ValueError(f"frame must be even and >= 2, got {frame}")
        self.frame, self.hop, self.fn = frame, frame // 2, fn
        self.window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame))
        self._a = np.zeros(self.hop)
        self._b = np.zeros(self.hop)
        self._overlap = np.zeros(self.hop)
        self._to_drop = self.hop
        self._taken = self._given = 0

    def _run(self) -> np.ndarray:
        count = (len(self._a) - self.frame) // self.hop + 1 if len(self._a) >= self.frame else 0
        if not count:
            return np.zeros(0, dtype=np.float32)
        index = np.arange(self.frame)[None, :] + self.hop * np.arange(count)[:, None]
        spec = self.fn(
            np.fft.rfft(self._a[index] * self.window, axis=-1), np.fft.rfft(self._b[index] * self.window, axis=-1)
        )
        frames = np.fft.irfft(spec, n=self.frame, axis=-1) * self.window
        out = np.empty(count * self.hop)
        for i, f in enumerate(frames):
            out[i * self.hop : (i + 1) * self.hop] = f[: self.hop] + self._overlap
            self._overlap = f[self.hop :]
        self._a, self._b = self._a[count * self.hop :], self._b[count * self.hop :]
        drop = min(self._to_drop, len(out))
        self._to_drop -= drop
        out = out[drop:][: self._taken - self._given]
        self._given += len(out)
        return out.astype(np.float32)

    def push(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Aligned pieces of both signals (same length) → the output samples now final."""
        if len(a) != len(b):
            raise ValueError(f"paired STFT: pieces differ in length ({len(a)} vs {len(b)})")
        self._taken += len(a)
        self._a = np.concatenate([self._a, np.asarray(a, dtype=np.float64)])
        self._b = np.concatenate([self._b, np.asarray(b, dtype=np.float64)])
        return self._run()

    def finish(self) -> np.ndarray:
        """The rest: both padded with zeros until every sample has been covered by both of its frames."""
        pad = np.zeros(self.frame)
        self._a, self._b = np.concatenate([self._a, pad]), np.concatenate([self._b, pad])
        return self._run()
