"""Classical baselines, selectable as "models" next to DiffGMM in evaluations.

Each takes a mono float32 signal at ``sample_rate`` and returns one of the
same length:

* ``noisy``: the input itself (what doing nothing scores);
* ``spectral_gating``: non-stationary spectral gating from the kept
  ``noisereduce`` library (noise floor tracked per frequency over time);
* ``wiener``: SciPy's adaptive Wiener filter (local mean/variance, 5 ms).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _noisy(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    return signal


def _spectral_gating(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    import noisereduce

    out = noisereduce.reduce_noise(y=signal, sr=sample_rate, stationary=False, use_tqdm=False, n_jobs=1)
    return np.asarray(out, dtype=np.float32)[: len(signal)]


def _wiener(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    from scipy.signal import wiener

    size = max(3, int(0.005 * sample_rate) | 1)
    return wiener(signal.astype(np.float64), mysize=size).astype(np.float32)


BASELINES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "noisy": _noisy,
    "spectral_gating": _spectral_gating,
    "wiener": _wiener,
}
