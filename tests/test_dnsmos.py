"""DNSMOS: windowing, batching, the mel front end, and that it tells clean speech from noisy speech."""

import numpy as np
import pytest
import soundfile as sf
from conftest import shared_path

from pipeline.quality.dnsmos import DNSMOS, WINDOW, DNSMOSConfig, mel_bank, windows_of


def _pair(key: str):
    noisy, _ = sf.read(shared_path("testdata", "vbd-debug", "noisy", f"{key}.flac"), dtype="float32")
    clean, _ = sf.read(shared_path("testdata", "vbd-debug", "clean", f"{key}.flac"), dtype="float32")
    return noisy, clean


@pytest.fixture(scope="module")
def scorer():
    return DNSMOS(DNSMOSConfig())


def test_windows_tile_short_clips_and_cover_long_ones_to_the_end():
    short = np.arange(1000, dtype=np.float32)
    w = windows_of(short, 4.5)
    assert w.shape == (1, WINDOW) and np.array_equal(w[0, 1000:2000], short)
    long = np.arange(WINDOW + 100_000, dtype=np.float32)
    w = windows_of(long, 4.5)
    assert len(w) == 3 and w[0, 0] == 0 and w[1, 0] == 72_000 and w[-1, -1] == long[-1]
    assert len(windows_of(long, 1.0)) == 8
    with pytest.raises(ValueError, match="empty"):
        windows_of(np.zeros(0, dtype=np.float32), 4.5)


def test_mel_bank_is_slaney_normalised_triangles():
    bank = mel_bank()
    assert bank.shape == (120, 161) and (bank >= 0).all()
    freqs = np.fft.rfftfreq(321, 1 / 16000)
    centres = freqs[bank.argmax(axis=1)]
    assert (np.diff(centres) >= 0).all()  # ordered by frequency
    # Slaney normalisation: peak 2 / (edge-to-edge width in Hz), so every triangle has unit area in Hz;
    # filters wide enough to be sampled by many bins show it.
    areas = bank.sum(axis=1) * (freqs[1] - freqs[0])
    assert np.allclose(areas[60:], 1.0, rtol=0.1) and abs(areas[60:].mean() - 1.0) < 0.01, areas[60:].round(3)


def test_scores_separate_clean_from_noisy_and_batching_changes_nothing(scorer):
    noisy, clean = _pair("p287_004")  # a low-SNR pair: the noise is obvious
    (n_sig, n_bak, n_ovrl, n_p808), (c_sig, c_bak, c_ovrl, c_p808) = scorer.score([noisy, clean])
    for value in (n_sig, n_bak, n_ovrl, n_p808, c_sig, c_bak, c_ovrl, c_p808):
        assert 1.0 <= value <= 5.0
    assert c_bak > n_bak + 1.5 and c_ovrl > n_ovrl + 1.0
    alone = scorer.score([clean])[0]
    assert np.allclose(alone, (c_sig, c_bak, c_ovrl, c_p808), atol=1e-5)


def test_the_hop_trades_cost_for_little_change(scorer):
    joined = np.concatenate([_pair(f"p287_00{i}")[0] for i in range(1, 7)])
    stock = DNSMOS(DNSMOSConfig(hop_seconds=1.0))
    assert len(windows_of(joined, 1.0)) > 3 * len(windows_of(joined, 4.5))
    ours, theirs = np.array(scorer.score([joined])[0]), np.array(stock.score([joined])[0])
    assert np.abs(ours - theirs).max() < 0.35
