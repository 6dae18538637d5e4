"""DeepFilterNet3 as a peer: the real bundled runtime, its 30 ms lag removed, any rate and any piece size."""

import numpy as np
import pytest
import soundfile as sf
from conftest import shared_path
from test_baselines import _lag

from pipeline.audio.codec import resample
from pipeline.quality.baselines import BASELINES
from pipeline.quality.metrics import score_si_sdr
from pipeline.quality.peers import DFN3_LAG_48K, DeepFilterNet3Stream, deepfilternet3_48k


def _speech(rate: int = 16000) -> np.ndarray:
    signal, speech_rate = sf.read(shared_path("testdata", "vbd-debug", "clean", "p287_001.flac"), dtype="float32")
    return resample(signal, speech_rate, rate)


def test_output_is_time_aligned_and_leaves_clean_speech_nearly_as_is():
    speech = _speech()
    out = BASELINES["deepfilternet3"](speech, 16000)
    assert out.shape == speech.shape and out.dtype == np.float32
    assert _lag(speech, out, max_lag=800) == 0
    assert score_si_sdr(speech, out, 16000).value > 10.0


def test_the_runtime_lags_1440_samples_at_48k_which_the_stream_removes():
    up = _speech(48000)
    aligned = deepfilternet3_48k(up)
    assert len(aligned) == len(up)
    # Put the lag back: the raw runtime's output is this late, and scores as a misaligned signal.
    raw = np.concatenate([np.zeros(DFN3_LAG_48K, dtype=np.float32), aligned])[: len(up)]
    assert _lag(up, raw, max_lag=2000) == DFN3_LAG_48K
    assert _lag(up, aligned, max_lag=2000) == 0
    assert score_si_sdr(up, raw, 48000).value < 0.0 < score_si_sdr(up, aligned, 48000).value


@pytest.mark.parametrize("sizes", [(480,), (1,), (1000, 7, 4321), (100_000,)])
def test_pieces_of_any_size_give_the_whole_signal_result(sizes):
    rng = np.random.default_rng(1)
    signal = (_speech(48000)[:60_000] + 0.05 * rng.standard_normal(60_000)).astype(np.float32)
    whole = deepfilternet3_48k(signal)
    stream, outs, pos, i = DeepFilterNet3Stream(), [], 0, 0
    while pos < len(signal):
        size = sizes[i % len(sizes)]
        outs.append(stream.push(signal[pos : pos + size]))
        pos, i = pos + size, i + 1
        if sizes == (1,) and pos >= 5000:  # one sample at a time is slow; finish with one big piece
            outs.append(stream.push(signal[pos:]))
            pos = len(signal)
    outs.append(stream.finish())
    np.testing.assert_array_equal(np.concatenate(outs), whole)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_deepfilternet3_removes_noise_at_any_rate(rate):
    clean = _speech(rate)
    noisy = clean + np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32) * 0.05
    out = BASELINES["deepfilternet3"](noisy, rate)
    assert len(out) == len(noisy)
    assert score_si_sdr(clean, out, rate).value > score_si_sdr(clean, noisy, rate).value + 5.0
