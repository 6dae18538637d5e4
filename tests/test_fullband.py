"""Full-band output: the 8-16 kHz band of a 48 kHz input kept where speech is, suppressed where only noise is."""

import numpy as np
import pytest

from pipeline.audio.codec import fit_length, resample
from pipeline.audio.fullband import FullBandStream, full_band

RATE, MODEL_RATE = 48000, 16000
SPEECH = [(0.5, 1.2), (1.7, 2.4)]  # seconds; the rest is noise only
NOISE_ONLY = [(0.05, 0.45), (1.25, 1.65), (2.45, 2.95)]


def _bandpass(signal: np.ndarray, low: float, high: float) -> np.ndarray:
    freqs = np.fft.rfftfreq(len(signal), 1 / RATE)
    return np.fft.irfft(np.fft.rfft(signal) * ((freqs >= low) & (freqs < high)), len(signal))


def speech_48k(seed: int = 0, seconds: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) at 48 kHz: voiced harmonics alternating with fricative bursts (seeded noise, 3.5-16 kHz) in the
    speech spans, and a quiet full-band noise floor everywhere (30 dB under the speech)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    in_speech = np.zeros(len(t), dtype=bool)
    for a, b in SPEECH:
        in_speech |= (t >= a) & (t < b)
    f0 = 130 + 20 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 55)) * 0.1
    fricative = _bandpass(rng.standard_normal(len(t)), 3500, 16000) * 0.08
    burst = (np.floor(t / 0.12) % 2).astype(bool)  # 120 ms voiced, 120 ms fricative
    ramp = np.convolve(in_speech.astype(float), np.hanning(481) / np.hanning(481).sum(), mode="same")
    clean = ramp * np.where(burst, fricative, voiced)
    noisy = clean + 0.003 * rng.standard_normal(len(t))
    return clean.astype(np.float32), noisy.astype(np.float32)


def _span_db(signal: np.ndarray, spans, low=8000.0, high=16000.0) -> float:
    band = _bandpass(signal.astype(np.float64), low, high)
    parts = np.concatenate([band[int(a * RATE) : int(b * RATE)] for a, b in spans])
    return float(10 * np.log10(np.mean(parts**2) + 1e-20))


def _model_output(clean: np.ndarray) -> np.ndarray:
    """What an ideal 16 kHz model gives back at 48 kHz: the clean low band, nothing above 8 kHz."""
    return fit_length(resample(resample(clean, RATE, MODEL_RATE), MODEL_RATE, RATE), len(clean))


@pytest.mark.parametrize("seed", [0, 1])
def test_high_band_follows_the_model_kept_on_speech_suppressed_on_noise(seed):
    clean, noisy = speech_48k(seed)
    band_limited = _model_output(clean)
    out = full_band(noisy, band_limited, RATE, MODEL_RATE)
    assert out.shape == noisy.shape and out.dtype == np.float32
    # Today's output has no high band at all.
    assert _span_db(band_limited, SPEECH) < _span_db(clean, SPEECH) - 20
    # Full band: within a few dB of the clean speech's 8-16 kHz where speech is…
    assert abs(_span_db(out, SPEECH) - _span_db(clean, SPEECH)) < 3.0
    # …and far below the input's where there is only noise.
    assert _span_db(out, NOISE_ONLY) < _span_db(noisy, NOISE_ONLY) - 15.0
    # The low band is the model's.
    assert abs(_span_db(out, SPEECH, 300, 6000) - _span_db(band_limited, SPEECH, 300, 6000)) < 0.5


def test_a_model_rate_input_is_returned_bit_identical():
    clean, noisy = speech_48k()
    y16 = resample(clean, RATE, MODEL_RATE)
    n16 = resample(noisy, RATE, MODEL_RATE)
    assert full_band(n16, y16, MODEL_RATE, MODEL_RATE) is y16
    with pytest.raises(ValueError, match="must be above the model"):
        FullBandStream(MODEL_RATE, MODEL_RATE)


def test_chunked_equals_whole():
    clean, noisy = speech_48k(2)
    y = _model_output(clean)
    whole = full_band(noisy, y, RATE, MODEL_RATE)
    stream, outs, pos = FullBandStream(RATE, MODEL_RATE), [], 0
    for size in (1, 4801, 333, 48000, 10**7):
        outs.append(stream.push(noisy[pos : pos + size], y[pos : pos + size]))
        pos += size
    outs.append(stream.finish())
    np.testing.assert_allclose(np.concatenate(outs), whole, atol=1e-6)


@pytest.mark.slow
def test_the_denoise_job_keeps_the_full_band_whole_and_streamed(ray_local, tmp_path, tiny_checkpoint):
    """A 48 kHz file through the job (in memory and streamed): the high band comes back; full_band off: it does not."""
    import dataclasses

    import pyarrow.parquet as pq
    import soundfile as sf

    from pipeline.denoise.job import DenoiseConfig, RunPaths, run_denoise
    from pipeline.inference.decode_stage import DecodeConfig
    from pipeline.inference.longform import StreamConfig
    from pipeline.inference.model_stage import ModelStageConfig

    clean, noisy = speech_48k()
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", noisy, RATE, subtype="FLOAT")
    out = str(tmp_path / "out")
    base = DenoiseConfig(
        input_uri=str(tmp_path / "in"), output_uri=out, model=ModelStageConfig(checkpoint_uri=tiny_checkpoint)
    )
    runs = {
        "whole": base,
        "streamed": dataclasses.replace(
            base, stream=StreamConfig(stream_seconds=0.0, probe_bytes=1, block_seconds=0.3)
        ),
        "narrow": dataclasses.replace(base, decode=DecodeConfig(full_band=False)),
    }
    audio = {}
    for run_id, config in runs.items():
        assert run_denoise(dataclasses.replace(config, run_id=run_id))["ok"] == 1
        audio[run_id], rate = sf.read(f"{RunPaths.of(out, run_id).audio_uri}/a.wav", dtype="float32")
        assert rate == RATE and audio[run_id].shape == noisy.shape
        assert pq.read_table(RunPaths.of(out, run_id).clips_uri).column("streamed").to_pylist() == [
            run_id == "streamed"
        ]
    assert _span_db(audio["narrow"], SPEECH) < _span_db(noisy, SPEECH) - 20
    assert _span_db(audio["whole"], SPEECH) > _span_db(audio["narrow"], SPEECH) + 10
    np.testing.assert_allclose(audio["streamed"], audio["whole"], atol=1e-4)
