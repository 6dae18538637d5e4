"""Long files streamed block by block give what the in-memory path gives, at any rate and channel policy."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio.codec import StreamResampler, resample, resampled_length, to_channels
from pipeline.audio.windowing import WindowConfig
from pipeline.core.storage import StorageConfig
from pipeline.inference.enhance import EnhanceConfig, Enhancer
from pipeline.inference.longform import LongFileWriter, StreamConfig, probe
from tests.conftest import TINY_CONFIG


@pytest.mark.parametrize(
    "rates", [(44100, 16000), (16000, 44100), (8000, 16000), (48000, 16000), (22050, 16000), (16000, 16000)]
)
@pytest.mark.parametrize("length", [1, 100, 132_317])
def test_stream_resampler_equals_whole_signal(rates, length, rng):
    x = rng.standard_normal(length).astype(np.float32)
    whole = resample(x, *rates)
    resampler = StreamResampler(*rates, chunk_samples=5000)
    parts, i = [], 0
    while i < length:
        step = int(rng.integers(1, 30_000))
        parts.append(resampler.process(x[i : i + step]))
        i += step
    parts.append(resampler.finish())
    streamed = np.concatenate(parts)
    assert len(streamed) == len(whole) == resampled_length(length, *rates)
    np.testing.assert_allclose(streamed, whole, atol=2e-6)


@pytest.fixture(scope="module")
def enhancer():
    import torch

    from model import DiffGMM, DiffGMMConfig

    torch.manual_seed(0)
    # Small windows and batches so that a few seconds cross many batch boundaries.
    return Enhancer(
        DiffGMM(DiffGMMConfig(**TINY_CONFIG)), EnhanceConfig(window=WindowConfig(0.5, 0.1), batch_windows=3)
    )


def _in_memory(enhancer, samples, rate, policy):
    """The job's in-memory path: channel policy → resample → enhance_many → resample back → exact length → full band.

    Returns (output at ``rate``, model-rate inputs, model-rate outputs), one row per output channel.
    """
    from pipeline.audio.fullband import full_band

    channels = to_channels(samples, policy)
    noisy = [resample(c, rate, 16000) for c in channels]
    enhanced = [e for e, _ in enhancer.enhance_many(noisy)]
    out = np.stack(
        [full_band(x, resample(e, 16000, rate)[: samples.shape[1]], rate, 16000) for x, e in zip(channels, enhanced)]
    )
    return out, np.concatenate(noisy).astype(np.float64), np.concatenate(enhanced).astype(np.float64)


@pytest.mark.parametrize("policy", ["downmix", "per_channel"])
def test_streamed_file_matches_in_memory_path(enhancer, tmp_path, rng, policy):
    rate, frames = 44100, 44100 * 7 + 123
    samples = (0.1 * rng.standard_normal((2, frames))).astype(np.float32)
    sf.write(tmp_path / "long.flac", samples.T, rate, subtype="PCM_24")
    writer = LongFileWriter(
        str(tmp_path), str(tmp_path / "out"), policy, "same", StreamConfig(block_seconds=0.7), StorageConfig()
    )
    result = writer.run(enhancer, "long.flac", "nested/long.flac", "FLAC", "PCM_24")

    written = tmp_path / "out" / "nested" / "long.flac"
    info = probe(str(written))
    assert (info.frames, info.sample_rate, info.subtype) == (frames, rate, "PCM_24")
    assert info.channels == (2 if policy == "per_channel" else 1)
    out = sf.read(written, dtype="float32", always_2d=True)[0].T
    expected, noisy, enhanced = _in_memory(enhancer, samples, rate, policy)
    # 24-bit output: one quantisation step is 1.2e-7; the rest is float rounding of two resamplings.
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert result.input_power == pytest.approx(np.mean(noisy**2), rel=1e-4)
    assert result.output_power == pytest.approx(np.mean(enhanced**2), rel=1e-4)
    assert result.removed_power == pytest.approx(np.mean((noisy - enhanced) ** 2), rel=1e-3)
    assert len(result.stats["gmm_occupancy"]) == 5 and np.isfinite(result.stats["gmm_nll"])


def test_non_finite_samples_fail_and_write_nothing(enhancer, tmp_path, rng):
    samples = rng.standard_normal(16000 * 3).astype(np.float32) * 0.1
    samples[30_000] = np.nan
    sf.write(tmp_path / "bad.wav", samples, 16000, subtype="FLOAT")
    writer = LongFileWriter(
        str(tmp_path), str(tmp_path / "out"), "downmix", "same", StreamConfig(block_seconds=0.5), StorageConfig()
    )
    with pytest.raises(ValueError, match="non_finite"):
        writer.run(enhancer, "bad.wav", "bad.wav", "WAV", "FLOAT")
    assert not (tmp_path / "out").exists()
