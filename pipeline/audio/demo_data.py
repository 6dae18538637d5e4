"""A small seeded demo corpus: speech-like signals plus noise, with clean references.

Not speech, but shaped like it, so the whole job can run anywhere with nothing
downloaded: a glottal pulse train with a wandering pitch, shaped by three
moving formant resonances, gated into syllables and pauses; noise is a mix of
coloured noise, mains hum and a few clicks at a chosen SNR.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipeline.audio.codec import encode
from pipeline.audio.mixing import mix_at_snr
from pipeline.core import storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    num_clips: int = 8
    min_seconds: float = 2.0
    max_seconds: float = 6.0
    sample_rate: int = 16000
    snr_db_min: float = 0.0
    snr_db_max: float = 15.0
    seed: int = 0


def _resonate(signal: np.ndarray, freq: np.ndarray, bandwidth: float, sample_rate: int) -> np.ndarray:
    """Two-pole resonator with a per-sample centre frequency (a moving formant)."""
    from scipy.signal import lfilter

    out = np.zeros_like(signal)
    r = np.exp(-np.pi * bandwidth / sample_rate)
    # Formants move slowly: filter in 10 ms blocks with the block's mean frequency.
    block = sample_rate // 100
    zi = np.zeros(2)
    for start in range(0, len(signal), block):
        f = float(freq[start : start + block].mean())
        a = [1.0, -2.0 * r * np.cos(2 * np.pi * f / sample_rate), r * r]
        out[start : start + block], zi = lfilter([1.0 - r], a, signal[start : start + block], zi=zi)
    return out


def speech_like(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """(samples,) float32 peak 0.5: voiced syllables separated by pauses."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = rng.uniform(90, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t + rng.uniform(0, 6)))
    phase = np.cumsum(f0 / sample_rate)
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    excitation = pulses + 0.02 * rng.standard_normal(n)
    voiced = np.zeros(n)
    for centre, spread, bw in ((600, 250, 90), (1500, 500, 120), (2600, 400, 160)):
        formant = centre + spread * np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6))
        voiced += _resonate(excitation, formant, bw, sample_rate)
    envelope = np.zeros(n)
    pos = int(rng.uniform(0.05, 0.3) * sample_rate)
    while pos < n:
        length = int(rng.uniform(0.12, 0.35) * sample_rate)
        seg = np.hanning(length)[: max(0, min(length, n - pos))]
        envelope[pos : pos + len(seg)] = seg
        pos += length + int(rng.uniform(0.02, 0.4) * sample_rate)
    signal = voiced * envelope
    return (0.5 * signal / (np.abs(signal).max() + 1e-9)).astype(np.float32)


def noise_like(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """(samples,) float32: coloured noise + hum + clicks, unit-ish level."""
    from scipy.signal import lfilter

    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    colour = rng.uniform(0.0, 0.95)
    noise = lfilter([1.0], [1.0, -colour], rng.standard_normal(n))
    noise /= noise.std() + 1e-9
    hum = rng.uniform(0, 0.5) * np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * t)
    clicks = np.zeros(n)
    clicks[rng.integers(0, n, size=int(seconds * rng.uniform(0, 3)))] = rng.uniform(-3, 3)
    return (noise + hum + clicks).astype(np.float32)


def generate_pair(
    seconds: float, snr_db: float, sample_rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) float32 of the same length, never clipping."""
    clean = speech_like(seconds, sample_rate, rng)
    noisy, _ = mix_at_snr(clean, noise_like(seconds, sample_rate, rng), snr_db)
    peak = max(float(np.abs(noisy).max()), 1e-9)
    gain = min(1.0, 0.9 / peak)
    return noisy * gain, clean * gain


def write_demo_corpus(root_uri: str, config: DemoConfig | None = None) -> list[str]:
    """Write ``noisy/clip_NNN.wav`` and ``clean/clip_NNN.wav`` under ``root_uri``; returns the keys."""
    config = config or DemoConfig()
    rng = np.random.default_rng(config.seed)
    keys = []
    for i in range(config.num_clips):
        seconds = float(rng.uniform(config.min_seconds, config.max_seconds))
        snr = float(rng.uniform(config.snr_db_min, config.snr_db_max))
        noisy, clean = generate_pair(seconds, snr, config.sample_rate, rng)
        key = f"clip_{i:03d}.wav"
        storage.write_bytes(storage.join(root_uri, "noisy", key), encode(noisy, config.sample_rate, "WAV", "PCM_16"))
        storage.write_bytes(storage.join(root_uri, "clean", key), encode(clean, config.sample_rate, "WAV", "PCM_16"))
        keys.append(key)
    log.info("wrote %d demo pairs under %s", len(keys), root_uri)
    return keys
