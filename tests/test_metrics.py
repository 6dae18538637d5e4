"""Metrics against references: the pesq package's own pair, torchmetrics' toy vectors, failures as data."""

import math

import numpy as np
import pytest
import soundfile as sf
from conftest import shared_path

from pipeline.quality.metrics import (
    score_all,
    score_pesq,
    score_sdr,
    score_si_sdr,
    score_stoi,
    sdr_db,
    si_sdr_db,
)


@pytest.fixture(scope="module")
def pesq_pair():
    ref, rate = sf.read(shared_path("testdata", "pesq-ref", "speech.wav"), dtype="int16")
    deg, rate2 = sf.read(shared_path("testdata", "pesq-ref", "speech_bab_0dB.wav"), dtype="int16")
    assert rate == rate2 == 16000
    return ref.astype(np.float64) / 32768, deg.astype(np.float64) / 32768


def test_pesq_matches_the_packages_own_reference_values(pesq_pair):
    ref, deg = pesq_pair
    assert score_pesq(ref, deg, 16000, "wb").value == pytest.approx(1.0832337141036987, abs=1e-6)
    assert score_pesq(ref, deg, 16000, "nb").value == pytest.approx(1.6072081327438354, abs=1e-6)


def test_pesq_of_a_clip_against_itself(pesq_pair):
    ref, _ = pesq_pair
    assert score_pesq(ref, ref, 16000, "wb").value == pytest.approx(4.643888473510742, abs=1e-6)
    assert score_pesq(ref, ref, 16000, "nb").value == pytest.approx(4.548638343811035, abs=1e-6)


def test_stoi_and_sdr_family_on_the_reference_pair(pesq_pair):
    ref, deg = pesq_pair
    assert score_stoi(ref, deg, 16000).value == pytest.approx(0.6739177895331303, abs=1e-6)
    assert score_si_sdr(ref, deg, 16000).value == pytest.approx(0.13962696406508407, abs=1e-6)
    assert score_sdr(ref, deg, 16000).value == pytest.approx(0.013495708235705924, abs=1e-6)


def test_torchmetrics_documented_toy_vectors():
    # torchmetrics' docstring examples: preds [2.5, 0.0, 2.0, 8.0], target [3.0, -0.5, 2.0, 7.0].
    target = np.array([3.0, -0.5, 2.0, 7.0])
    preds = np.array([2.5, 0.0, 2.0, 8.0])
    assert sdr_db(target, preds) == pytest.approx(16.1805, abs=1e-4)  # SignalNoiseRatio
    assert si_sdr_db(target, preds) == pytest.approx(18.4030, abs=1e-4)  # ScaleInvariantSignalDistortionRatio


def test_si_sdr_is_scale_invariant_and_sdr_is_not(rng):
    ref = rng.standard_normal(16000)
    est = ref + 0.1 * rng.standard_normal(16000)
    assert si_sdr_db(ref, 3 * est) == pytest.approx(si_sdr_db(ref, est), abs=1e-9)
    assert sdr_db(ref, 3 * est) < sdr_db(ref, est) - 5


def test_silent_reference_is_nan_with_a_reason(rng):
    silent = np.zeros(16000)
    noise = rng.standard_normal(16000)
    scores = score_all(silent, noise, 16000)
    for name, score in scores.items():
        assert math.isnan(score.value), name
        assert score.error, name
    assert scores["pesq_wb"].error.startswith("no_utterances")
    assert scores["si_sdr_db"].error.startswith("silent_reference")


@pytest.mark.parametrize(
    "ref_len, est_len, rate, poison, kind",
    [
        (3000, 3000, 16000, None, "too_short"),
        (16000, 15000, 16000, None, "length_mismatch"),
        (16000, 16000, 16000, np.nan, "non_finite"),
        (16000, 16000, 16000, np.inf, "non_finite"),
    ],
)
def test_bad_pairs_are_nan_never_error_codes(rng, ref_len, est_len, rate, poison, kind):
    ref = rng.standard_normal(ref_len)
    est = rng.standard_normal(est_len)
    if poison is not None:
        est[10] = poison
    for name, score in score_all(ref, est, rate).items():
        assert math.isnan(score.value), name
        assert score.error.startswith(kind), (name, score.error)


def test_other_rates_are_resampled_for_pesq(pesq_pair):
    from pipeline.audio.codec import resample

    ref, deg = pesq_pair
    ref48, deg48 = resample(ref.astype(np.float32), 16000, 48000), resample(deg.astype(np.float32), 16000, 48000)
    wb = score_pesq(ref48, deg48, 48000, "wb")
    nb = score_pesq(ref48, deg48, 48000, "nb")
    assert wb.ok and nb.ok
    assert wb.value == pytest.approx(1.083, abs=0.05)
    assert nb.value == pytest.approx(1.665, abs=0.08)


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="unknown metrics"):
        score_all(np.ones(16000), np.ones(16000), 16000, ("pesq_xx",))
