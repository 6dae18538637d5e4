"""On-the-fly mixing of clean speech with noise at random SNRs and gains.

The way large denoisers are trained when paired data is scarce: every example
is a random clean segment plus a random noise segment scaled to a random SNR,
then the pair is scaled by a random gain. Seeded: the same seed and corpora
give the same examples, in the same order, on any machine.

Arrays are float32 mono at the model rate; levels are in dB (SNR) and dBFS
(RMS relative to a full-scale square wave, i.e. 20·log10(rms)).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MixConfig:
    segment_seconds: float = 1.0
    snr_db_min: float = 0.0
    snr_db_max: float = 20.0
    level_dbfs_min: float = -35.0
    level_dbfs_max: float = -15.0
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.snr_db_min > self.snr_db_max or self.level_dbfs_min > self.level_dbfs_max:
            raise ValueError("mixing ranges need min <= max")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``noise`` so that 10·log10(‖clean‖²/‖noise‖²) = ``snr_db``; returns (noisy, scaled noise)."""
    gain = rms(clean) / (rms(noise) * 10.0 ** (snr_db / 20.0))
    scaled = (noise * gain).astype(np.float32)
    return (clean + scaled).astype(np.float32), scaled


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    return 10.0 * np.log10(np.sum(np.square(clean, dtype=np.float64)) / np.sum(np.square(noise, dtype=np.float64)))


def crop(signal: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample segment; shorter signals are tiled (noise) so no zeros are learnt."""
    if len(signal) < length:
        signal = np.tile(signal, -(-length // len(signal)))
    start = int(rng.integers(0, len(signal) - length + 1))
    return signal[start : start + length]


def active_crop(signal: np.ndarray, length: int, rng: np.random.Generator, tries: int = 4) -> np.ndarray:
    """Like :func:`crop` for speech, but re-draws (a few times) segments that are near-silent.

    Short clips are zero-padded, not tiled: a tiled utterance is not speech.
    """
    if len(signal) <= length:
        out = np.zeros(length, dtype=np.float32)
        offset = int(rng.integers(0, length - len(signal) + 1))
        out[offset : offset + len(signal)] = signal
        return out
    threshold = rms(signal) * 0.25
    for _ in range(tries):
        seg = crop(signal, length, rng)
        if rms(seg) >= threshold:
            break
    return seg


def mix_example(
    clean_signal: np.ndarray, noise_signal: np.ndarray, config: MixConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """One training pair (noisy, clean), both (segment,), and the SNR used."""
    length = int(round(config.segment_seconds * config.sample_rate))
    clean = active_crop(clean_signal, length, rng)
    noise = crop(noise_signal, length, rng)
    snr = float(rng.uniform(config.snr_db_min, config.snr_db_max))
    noisy, _ = mix_at_snr(clean, noise, snr)
    level = float(rng.uniform(config.level_dbfs_min, config.level_dbfs_max))
    gain = 10.0 ** (level / 20.0) / rms(noisy)
    # Never clip: clipping is a distortion the model would have to learn to keep.
    gain = min(gain, 0.99 / max(float(np.abs(noisy).max()), 1e-9))
    return (noisy * gain).astype(np.float32), (clean * gain).astype(np.float32), snr


def mixed_batches(
    clean: list[np.ndarray], noise: list[np.ndarray], config: MixConfig, batch_size: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless (noisy, clean) batches, each (batch_size, segment) float32, reproducible from ``seed``."""
    if not clean or not noise:
        raise ValueError("mixing needs at least one clean and one noise signal")
    rng = np.random.default_rng(seed)
    while True:
        pairs = [mix_example(clean[rng.integers(len(clean))], noise[rng.integers(len(noise))], config, rng)[:2] for _ in range(batch_size)]
        yield np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def holdout(name: str, fraction: float, salt: str = "diffgmm") -> bool:
    """Stable split by name: True for about ``fraction`` of names, the same on every machine."""
    digest = hashlib.sha256(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def speaker_of(name: str) -> str:
    """Speaker id from corpus file names (``libri_<spk>-…``, ``LJ…``, ``arctic_us_<spk>_…``)."""
    stem = name.rsplit("/", 1)[-1]
    if stem.startswith(("libri_", "libriother_")):
        return stem.split("_", 1)[1].split("-", 1)[0]
    if stem.startswith("LJ"):
        return "LJ"
    if stem.startswith("arctic_us_"):
        return stem.split("_")[2]
    if stem.startswith("vctk_"):
        return stem.split("_")[1]
    return stem.rsplit(".", 1)[0]
