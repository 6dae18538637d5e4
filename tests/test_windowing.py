import numpy as np
import pytest

from pipeline.audio.windowing import (
    PAD_MODES,
    WindowConfig,
    crossfade_weight,
    fill_window,
    frame,
    num_windows,
    overlap_add,
)
from pipeline.inference.enhance import EnhanceConfig, Enhancer
from tests.conftest import IdentityModel


@pytest.mark.parametrize("pad_mode", PAD_MODES)
@pytest.mark.parametrize("length", [0, 1, 999, 1000, 1001, 2500, 10_007])
def test_identity_overlap_add_reproduces_input(length, pad_mode, rng):
    window, hop = 1000, 750
    x = rng.standard_normal(length).astype(np.float32)
    windows = frame(x, window, hop, pad_mode)
    assert windows.shape == (num_windows(length, window, hop), window)
    y = overlap_add(windows, length, hop)
    assert y.shape == (length,)
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_windows_past_the_end_are_filled_by_reflecting_their_own_samples():
    x = np.arange(1, 1201, dtype=np.float32)  # windows at 0 and 750; the second holds 450 real samples
    last = frame(x, 1000, 750)[-1]
    np.testing.assert_array_equal(last[:450], x[750:])
    np.testing.assert_array_equal(last[450:899], x[750:1199][::-1])  # mirrored about the last sample
    np.testing.assert_array_equal(last[899:], x[751:852])  # and back again, as often as needed
    np.testing.assert_array_equal(frame(x, 1000, 750, "zeros")[-1][450:], 0.0)
    np.testing.assert_array_equal(frame(x, 1000, 750)[0], x[:1000])  # whole windows untouched
    np.testing.assert_array_equal(fill_window(np.array([0.5], np.float32), 4), [0.5] * 4)
    np.testing.assert_array_equal(fill_window(np.zeros(0, np.float32), 4), [0.0] * 4)
    with pytest.raises(ValueError, match="pad_mode"):
        EnhanceConfig(pad_mode="mirror")


def test_reflection_removes_the_burst_the_shipped_aigd_makes_at_a_zero_padded_end():
    """Measured on a generated clip whose last window is half padding (docs/model.md has the corpus figures)."""
    import torch

    from pipeline.audio.demo_data import generate_pair
    from pipeline.core.checkpoints import load_model

    torch.manual_seed(0)
    noisy, clean = generate_pair(2.8, 5.0, 16000, np.random.default_rng(4))
    model = load_model("aigd").model
    tail = slice(len(noisy) - 4000, None)  # the last 0.25 s, produced by the padded window alone
    error_db = {}
    for mode in PAD_MODES:
        out, _ = Enhancer(model, EnhanceConfig(pad_mode=mode, device="cpu")).enhance(noisy, 16000)
        error_db[mode] = 10 * np.log10(np.mean((out[tail] - clean[tail]) ** 2) / np.mean(clean**2))
    assert error_db["reflect"] < error_db["zeros"] - 3.0, error_db


def test_weights_are_positive_and_crossfade():
    w = crossfade_weight(100, 80)
    assert (w > 0).all() and w.max() == 1.0
    assert w[0] < 0.05 and w[-1] < 0.05 and w[50] == 1.0


def test_overlap_add_blends_disagreeing_windows():
    # Window i predicts the constant i: the seam must pass through values between them.
    windows = np.stack([np.full(100, float(i), dtype=np.float32) for i in range(3)])
    y = overlap_add(windows, 260, 80)
    seam = y[80:100]
    assert seam.min() > 0.0 and seam.max() < 1.0 and np.all(np.diff(seam) >= 0)


@pytest.mark.parametrize("length", [5, 16000, 40_000, 100_001])
@pytest.mark.parametrize("rate", [16000, 44100])
def test_enhancer_with_identity_model_returns_input(identity_model, rng, length, rate):
    enhancer = Enhancer(identity_model, EnhanceConfig(window=WindowConfig(0.5, 0.1), batch_windows=3))
    x = (0.1 * rng.standard_normal(length)).astype(np.float32)
    y, stats = enhancer.enhance(x, rate)
    assert y.shape == x.shape
    if rate == 16000:
        np.testing.assert_allclose(y, x, atol=1e-6)
    else:
        # Down and up again removes only what lies above 8 kHz.
        assert np.corrcoef(x, y)[0, 1] > 0.3
    assert stats == {"identity_unit": pytest.approx(1.0), "identity_profile": pytest.approx([1.0, 1.0])}


def test_streaming_matches_whole_clip(identity_model, rng):
    enhancer = Enhancer(identity_model, EnhanceConfig(window=WindowConfig(0.25, 0.05), batch_windows=2))
    x = rng.standard_normal(50_000).astype(np.float32)
    pieces = [x[i : i + 3001] for i in range(0, len(x), 3001)]
    out = np.concatenate([chunk for chunk, _ in enhancer.enhance_stream(iter(pieces), len(x))])
    np.testing.assert_allclose(out, x, atol=1e-6)


def test_multichannel_keeps_shape(identity_model, rng):
    enhancer = Enhancer(identity_model)
    x = rng.standard_normal((2, 20_000)).astype(np.float32)
    y, _ = enhancer.enhance(x, 16000)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_padding_the_last_batch_changes_nothing(rng):
    import torch

    from model import DiffGMM, DiffGMMConfig

    torch.manual_seed(0)
    model = DiffGMM(DiffGMMConfig(hidden_channels=8, depth=2, bottleneck_blocks=1, feature_channels=8))
    x = (0.1 * rng.standard_normal(40_000)).astype(np.float32)
    outs = []
    for pad in ("yes", "no"):
        enhancer = Enhancer(model, EnhanceConfig(window=WindowConfig(0.5, 0.1), batch_windows=4, pad_batches=pad))
        assert enhancer.pad == (pad == "yes")
        outs.append(enhancer.enhance(x, 16000)[0])
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)


class _RecordingIdentity(IdentityModel):
    """Identity model that remembers the window widths it was called with."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def enhance(self, windows, generator=None):
        self.widths.append(int(windows.shape[1]))
        return super().enhance(windows, generator)


def test_short_clips_run_in_bucket_windows(rng):
    model = _RecordingIdentity()
    enhancer = Enhancer(model, EnhanceConfig(window=WindowConfig(2.0, 0.25)))
    lengths = [1, 3000, 4000, 4001, 9000, 16_000, 16_001, 40_000]
    signals = [rng.standard_normal(n).astype(np.float32) for n in lengths]
    for signal, (out, stats) in zip(signals, enhancer.enhance_many(signals)):
        np.testing.assert_allclose(out, signal, atol=1e-6)
        assert stats == {"identity_unit": pytest.approx(1.0), "identity_profile": pytest.approx([1.0, 1.0])}
    # 2 s = 32000 samples: 0.25 s, 0.5 s and 1 s buckets, then full windows.
    assert sorted(set(model.widths)) == [4000, 8000, 16_000, 32_000]
    assert [enhancer.geometry(n)[0] for n in lengths] == [4000, 4000, 4000, 8000, 16_000, 16_000, 32_000, 32_000]
    unbucketed = Enhancer(IdentityModel(), EnhanceConfig(short_clip_buckets=0))
    assert {unbucketed.geometry(n)[0] for n in lengths} == {32_000}


@pytest.mark.parametrize("length", [3000, 9000, 50_000])
def test_streaming_equals_whole_clip_with_a_real_model(length, rng):
    import torch

    from model import DiffGMM, DiffGMMConfig

    torch.manual_seed(0)
    model = DiffGMM(DiffGMMConfig(hidden_channels=8, depth=2, bottleneck_blocks=1, feature_channels=8))
    enhancer = Enhancer(model, EnhanceConfig(window=WindowConfig(1.0, 0.2), batch_windows=3))
    x = (0.1 * rng.standard_normal(length)).astype(np.float32)
    whole, whole_stats = enhancer.enhance_many([x])[0]
    parts = list(enhancer.enhance_stream(iter([x[i : i + 2500] for i in range(0, length, 2500)]), length))
    np.testing.assert_allclose(np.concatenate([p for p, _ in parts]), whole, atol=1e-5)
    assert parts[-1][1]["gmm_nll"] == pytest.approx(whole_stats["gmm_nll"], rel=1e-4)
