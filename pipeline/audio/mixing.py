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
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MixConfig:
    """How one training example is drawn.

    Augmentation, each applied with its probability (0 turns it off):
    ``eq_prob``: a random peaking filter of ±``eq_gain_db_max`` dB on the
    speech and, independently, on the noise (microphones and rooms colour
    both); ``reverb_prob``: the speech convolved with a synthetic room impulse
    response (exponentially decaying noise, RT60 in [``rt60_seconds_min``,
    ``rt60_seconds_max``]), and the *reverberant* speech is the target: the
    model denoises, it does not dereverberate; ``speed_prob``: the speech
    resampled by a factor in [1 − ``speed_max_change``, 1 + ``speed_max_change``]
    (pitch and tempo both move, which widens the speaker range).
    """

    segment_seconds: float = 1.0
    snr_db_min: float = 0.0
    snr_db_max: float = 20.0
    level_dbfs_min: float = -35.0
    level_dbfs_max: float = -15.0
    sample_rate: int = 16000
    eq_prob: float = 0.0
    eq_gain_db_max: float = 6.0
    reverb_prob: float = 0.0
    rt60_seconds_min: float = 0.2
    rt60_seconds_max: float = 0.8
    speed_prob: float = 0.0
    speed_max_change: float = 0.1

    def __post_init__(self) -> None:
        if self.snr_db_min > self.snr_db_max or self.level_dbfs_min > self.level_dbfs_max:
            raise ValueError("mixing ranges need min <= max")
        if not 0 < self.rt60_seconds_min <= self.rt60_seconds_max:
            raise ValueError("need 0 < rt60_seconds_min <= rt60_seconds_max")
        for name in ("eq_prob", "reverb_prob", "speed_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.speed_max_change < 0.5:
            raise ValueError(f"speed_max_change must be in [0, 0.5), got {self.speed_max_change}")


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


def random_eq(x: np.ndarray, gain_db_max: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A peaking biquad (RBJ cookbook) at a random centre (100 Hz … 0.4·rate), gain ±``gain_db_max``, Q 0.5…2."""
    from scipy.signal import lfilter

    f0 = float(np.exp(rng.uniform(np.log(100.0), np.log(0.4 * sample_rate))))
    gain = 10.0 ** (rng.uniform(-gain_db_max, gain_db_max) / 40.0)
    w0 = 2.0 * np.pi * f0 / sample_rate
    alpha = np.sin(w0) / (2.0 * rng.uniform(0.5, 2.0))
    b = [1 + alpha * gain, -2 * np.cos(w0), 1 - alpha * gain]
    a = [1 + alpha / gain, -2 * np.cos(w0), 1 - alpha / gain]
    return lfilter(b, a, x).astype(np.float32)


def synthetic_rir(rt60_seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response: a unit direct path, then exponentially decaying noise (−60 dB at RT60)."""
    length = int(rt60_seconds * sample_rate)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60_seconds)
    tail[: int(0.0025 * sample_rate)] = 0.0  # the first reflections arrive after the direct sound
    tail *= 0.3 / (np.sqrt(np.sum(tail**2)) + 1e-12)  # direct-to-reverberant ratio ≈ 10 dB
    tail[0] = 1.0
    return tail.astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Resample so that playback at the same rate is ``factor`` times faster (length / factor)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    ratio = Fraction(factor).limit_denominator(50)
    return resample_poly(x, ratio.denominator, ratio.numerator).astype(np.float32)


def augment_speech(clean: np.ndarray, length: int, config: MixConfig, rng: np.random.Generator) -> np.ndarray:
    """An active ``length``-sample segment of ``clean`` with the configured speed, reverb and EQ."""
    factor = 1.0
    if config.speed_prob and rng.random() < config.speed_prob:
        factor = 1.0 + rng.uniform(-config.speed_max_change, config.speed_max_change)
    # Crop a little more than needed first, so the resampling and the reverb
    # tail work on a segment rather than on the whole utterance.
    rir = None
    if config.reverb_prob and rng.random() < config.reverb_prob:
        rir = synthetic_rir(rng.uniform(config.rt60_seconds_min, config.rt60_seconds_max), config.sample_rate, rng)
    pre = len(rir) if rir is not None else 0
    segment = active_crop(clean, int(np.ceil(length * factor)) + pre, rng)
    if factor != 1.0:
        segment = change_speed(segment, factor)
    if rir is not None:
        from scipy.signal import fftconvolve

        segment = fftconvolve(segment, rir)[pre : pre + length].astype(np.float32)
    segment = segment[-length:] if len(segment) >= length else np.pad(segment, (0, length - len(segment)))
    if config.eq_prob and rng.random() < config.eq_prob:
        segment = random_eq(segment, config.eq_gain_db_max, config.sample_rate, rng)
    return segment.astype(np.float32)


def mix_example(
    clean_signal: np.ndarray, noise_signal: np.ndarray, config: MixConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """One training pair (noisy, clean), both (segment,), and the SNR used."""
    length = int(round(config.segment_seconds * config.sample_rate))
    clean = augment_speech(clean_signal, length, config, rng)
    noise = crop(noise_signal, length, rng)
    if config.eq_prob and rng.random() < config.eq_prob:
        noise = random_eq(noise, config.eq_gain_db_max, config.sample_rate, rng)
    snr = float(rng.uniform(config.snr_db_min, config.snr_db_max))
    noisy, _ = mix_at_snr(clean, noise, snr)
    level = float(rng.uniform(config.level_dbfs_min, config.level_dbfs_max))
    gain = 10.0 ** (level / 20.0) / rms(noisy)
    # Never clip: clipping is a distortion the model would have to learn to keep.
    gain = min(gain, 0.99 / max(float(np.abs(noisy).max()), 1e-9))
    return (noisy * gain).astype(np.float32), (clean * gain).astype(np.float32), snr


def clean_example(clean_signal: np.ndarray, config: MixConfig, rng: np.random.Generator) -> np.ndarray:
    """One clean-only training example (segment,) float32: the speech augmentation and level of :func:`mix_example`, no noise.

    For families that learn a prior over clean speech (no noisy input): the
    same active crop, speed, reverb and EQ draws, then a random level in
    [``level_dbfs_min``, ``level_dbfs_max``] dBFS, never clipped.
    """
    length = int(round(config.segment_seconds * config.sample_rate))
    clean = augment_speech(clean_signal, length, config, rng)
    level = float(rng.uniform(config.level_dbfs_min, config.level_dbfs_max))
    gain = min(10.0 ** (level / 20.0) / max(rms(clean), 1e-9), 0.99 / max(float(np.abs(clean).max()), 1e-9))
    return (clean * gain).astype(np.float32)


def indexed_clean_example(index: int, clean: list[np.ndarray], config: MixConfig, seed: int) -> np.ndarray:
    """Clean-only example number ``index`` of a run, drawn from ``default_rng([seed, index])`` like :func:`indexed_example`."""
    rng = np.random.default_rng([seed, int(index)])
    return clean_example(clean[rng.integers(len(clean))], config, rng)


def indexed_example(
    index: int, clean: list[np.ndarray], noise: list[np.ndarray], config: MixConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Example number ``index`` of a run: (noisy, clean), drawn from ``default_rng([seed, index])``.

    Every executor (Ray Data actors, the single-process loop) draws example
    *i* the same way, so a run, a resumed run and the same recipe without Ray
    see the same examples.
    """
    rng = np.random.default_rng([seed, int(index)])
    noisy, target, _ = mix_example(clean[rng.integers(len(clean))], noise[rng.integers(len(noise))], config, rng)
    return noisy, target


def holdout(name: str, fraction: float, salt: str = "diffgmm") -> bool:
    """Stable split by name: True for about ``fraction`` of names, the same on every machine."""
    digest = hashlib.sha256(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def speaker_of(name: str) -> str:
    """Speaker id from corpus file names (``libri_<spk>-…``, ``LJ…``, ``arctic_us_<spk>_…``, VCTK, speechocean762).

    VCTK speakers appear under several prefixes (``vctk_``, ``vctkhw_``,
    ``autovc_``, ``starganvc_``): they all map to one ``vctk:p<id>`` so a
    held-out VCTK speaker is held out everywhere.
    """
    stem = name.rsplit("/", 1)[-1]
    if stem.startswith(("vctkhw_", "autovc_", "starganvc_")):
        return "vctk:" + stem.split("_")[1]
    if stem.startswith("so762_"):
        return "so762:" + stem.split("_")[1]
    if stem.startswith(("libri_", "libriother_")):
        return stem.split("_", 1)[1].split("-", 1)[0]
    if stem.startswith("LJ"):
        return "LJ"
    if stem.startswith("arctic_us_"):
        return stem.split("_")[2]
    if stem.startswith("vctk_"):
        return "vctk:" + stem.split("_")[1]
    return stem.rsplit(".", 1)[0]
