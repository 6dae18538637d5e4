"""Peer models in the batch jobs: the seam between a :class:`PeerModel` descriptor and the model actor.

:func:`make_enhancer` is what a model actor calls instead of constructing an
:class:`~pipeline.inference.enhance.Enhancer`: for a family module it is that
Enhancer, for a peer (:data:`pipeline.core.checkpoints.PEER_MODELS`) a
:class:`PeerEnhancer` with the same four members the jobs use
(``sample_rate``, ``enhance_many``, ``enhance_stream``, ``enhance``). A peer
runs each clip whole through its own streaming runtime (no windows: DFN3 is
causal and keeps its noise estimate across the clip), on CPU, and has no
model stats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from pipeline.audio.attenuation import AttenuationLimiter, limit_attenuation
from pipeline.audio.codec import fit_length, resample
from pipeline.core.checkpoints import PeerModel
from pipeline.inference.enhance import ClipStats, EnhanceConfig, Enhancer


class PeerEnhancer:
    """DeepFilterNet3 behind the Enhancer's interface; signals are (samples,) float32 at ``sample_rate`` (48 kHz)."""

    def __init__(self, peer: PeerModel, config: EnhanceConfig | None = None) -> None:
        if peer.name != "deepfilternet3":
            raise ValueError(f"no runtime for peer model {peer.name!r}")
        self.peer, self.config = peer, config or EnhanceConfig()
        self.sample_rate = int(peer.config.sample_rate)
        self.device = "cpu"

    def enhance_many(self, signals: list[np.ndarray]) -> list[tuple[np.ndarray, ClipStats]]:
        from pipeline.quality.peers import deepfilternet3_48k

        return [(deepfilternet3_48k(s), {}) for s in signals]

    def enhance_stream(
        self, pieces: Iterable[np.ndarray], length: int
    ) -> Iterator[tuple[np.ndarray, ClipStats | None]]:
        """One output piece per input piece, then the rest with (empty) stats, as :meth:`Enhancer.enhance_stream`."""
        from pipeline.quality.peers import DeepFilterNet3Stream

        stream = DeepFilterNet3Stream()
        try:
            for piece in pieces:
                yield stream.push(piece), None
            yield stream.finish(), {}
        finally:
            stream.close()

    def enhance(self, waveform: np.ndarray, sample_rate: int) -> tuple[np.ndarray, ClipStats]:
        """(samples,) or (channels, samples) float32 at any rate → same shape and rate."""
        if waveform.ndim == 2:
            return np.stack([self.enhance(ch, sample_rate)[0] for ch in waveform]), {}
        signal = resample(waveform, sample_rate, self.sample_rate)
        out = self.enhance_many([signal])[0][0]
        return fit_length(resample(out, self.sample_rate, sample_rate), len(waveform)), {}


def is_peer(model) -> bool:
    return isinstance(model, PeerModel)


class LimitedEnhancer:
    """Any enhancer with ``config.atten_lim_db`` applied to its model-rate output (whole clips and streams alike)."""

    def __init__(self, inner, atten_lim_db: float) -> None:
        self.inner, self.atten_lim_db = inner, atten_lim_db
        self.sample_rate, self.config = inner.sample_rate, inner.config

    def enhance_many(self, signals: list[np.ndarray]) -> list[tuple[np.ndarray, ClipStats]]:
        results = self.inner.enhance_many(signals)
        return [
            (limit_attenuation(s, out, self.sample_rate, self.atten_lim_db), stats)
            for s, (out, stats) in zip(signals, results)
        ]

    def enhance_stream(
        self, pieces: Iterable[np.ndarray], length: int
    ) -> Iterator[tuple[np.ndarray, ClipStats | None]]:
        seen: list[np.ndarray] = []  # input pieces not yet matched with output

        def recorded() -> Iterator[np.ndarray]:
            for piece in pieces:
                seen.append(np.asarray(piece, dtype=np.float32))
                yield piece

        limiter = AttenuationLimiter(self.atten_lim_db, self.sample_rate)
        held = np.zeros(0, dtype=np.float32)
        for out, stats in self.inner.enhance_stream(recorded(), length):
            held = np.concatenate([held, *seen])
            seen.clear()
            noisy, held = held[: len(out)], held[len(out) :]
            limited = limiter.push(noisy, out)
            if stats is not None:
                limited = np.concatenate([limited, limiter.finish()])
            yield limited, stats

    def enhance(self, waveform: np.ndarray, sample_rate: int) -> tuple[np.ndarray, ClipStats]:
        if waveform.ndim == 2:
            results = [self.enhance(ch, sample_rate) for ch in waveform]
            return np.stack([r[0] for r in results]), results[0][1]
        signal = resample(waveform, sample_rate, self.sample_rate)
        out, stats = self.enhance_many([signal])[0]
        return fit_length(resample(out, self.sample_rate, sample_rate), len(waveform)), stats


def make_enhancer(model, config: EnhanceConfig | None = None):
    """An :class:`Enhancer` for a family module, a :class:`PeerEnhancer` for a peer descriptor; limited when ``atten_lim_db`` is set."""
    config = config or EnhanceConfig()
    inner = PeerEnhancer(model, config) if is_peer(model) else Enhancer(model, config)
    return inner if config.atten_lim_db is None else LimitedEnhancer(inner, config.atten_lim_db)
