"""The RNNoise baseline: real librnnoise, its 20 ms lag removed, any sample rate in and out."""

import numpy as np
import pytest
import soundfile as sf
from conftest import shared_path

from pipeline.quality.baselines import BASELINES, RNNOISE_LAG_48K, rnnoise_48k
from pipeline.quality.metrics import score_si_sdr


def _speech() -> tuple[np.ndarray, int]:
    signal, rate = sf.read(shared_path("testdata", "vbd-debug", "clean", "p287_001.flac"), dtype="float32")
    return signal, rate


def _lag(reference: np.ndarray, delayed: np.ndarray, max_lag: int) -> int:
    """The shift (samples) that best aligns ``delayed`` with ``reference``, by cross-correlation."""
    n = len(reference)
    scores = [
        np.dot(reference[max_lag : n - max_lag], delayed[max_lag + k : n - max_lag + k])
        for k in range(-max_lag, max_lag + 1)
    ]
    return int(np.argmax(scores)) - max_lag


def test_rnnoise_output_is_time_aligned_with_its_input():
    speech, rate = _speech()
    out = BASELINES["rnnoise"](speech, rate)
    assert out.shape == speech.shape and out.dtype == np.float32
    assert _lag(speech, out, max_lag=800) == 0
    # A clean utterance through RNNoise scores as itself: aligned, only lightly changed.
    assert score_si_sdr(speech, out, rate).value > 10.0


def test_without_lag_compensation_the_output_would_be_20_ms_late():
    from pipeline.audio.codec import resample

    speech, rate = _speech()
    up = resample(speech, rate, 48000)
    aligned = rnnoise_48k(up)
    raw = np.concatenate([np.zeros(RNNOISE_LAG_48K, dtype=np.float32), aligned])[: len(up)]
    assert _lag(up, raw, max_lag=1500) == RNNOISE_LAG_48K
    assert score_si_sdr(up, raw, 48000).value < 0.0 < score_si_sdr(up, aligned, 48000).value


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
def test_rnnoise_removes_noise_at_any_rate(rate):
    speech, speech_rate = _speech()
    from pipeline.audio.codec import resample

    clean = resample(speech, speech_rate, rate)
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32) * 0.1
    noisy = clean + noise
    out = BASELINES["rnnoise"](noisy, rate)
    assert len(out) == len(noisy)
    assert score_si_sdr(clean, out, rate).value > score_si_sdr(clean, noisy, rate).value + 3.0
