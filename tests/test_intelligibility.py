"""The differentiable STOI term (model/intelligibility.py) against pystoi, and its place in the DiffGMM loss."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import shared_path
from pystoi import stoi

from model.intelligibility import stoi_approx
from model.losses import LossConfig, diffgmm_loss


def _speech(seconds: float = 3.0) -> tuple[np.ndarray, int]:
    path = sorted(shared_path("corpora", "clean").rglob("*.flac"))[5]
    audio, rate = sf.read(path, dtype="float32")
    return audio[: int(rate * seconds)], rate


def test_it_ranks_an_snr_ladder_as_pystoi_does_and_stays_close():
    clean, rate = _speech()
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    ours, theirs = [], []
    for snr_db in (-5, 0, 5, 10, 20):
        noisy = clean + noise * np.sqrt(np.mean(clean**2) / 10 ** (snr_db / 10))
        ours.append(float(stoi_approx(torch.from_numpy(noisy)[None], torch.from_numpy(clean)[None], rate)))
        theirs.append(stoi(clean, noisy, rate))
    assert np.all(np.diff(ours) > 0.03), ours
    # No silent-frame removal: a little below pystoi on speech with pauses, never far.
    assert np.max(np.abs(np.subtract(ours, theirs))) < 0.08, (ours, theirs)
    same = float(stoi_approx(torch.from_numpy(clean)[None] * 0.3, torch.from_numpy(clean)[None], rate))
    assert same == pytest.approx(1.0, abs=1e-3)


def test_a_too_short_clip_scores_zero_and_gradients_are_finite():
    short = torch.randn(2, 4000)  # 0.25 s: less than one 384 ms segment
    assert torch.equal(stoi_approx(short, short, 16000), torch.zeros(2))
    estimate = torch.randn(3, 32000, requires_grad=True)
    stoi_approx(estimate, torch.randn(3, 32000), 16000).mean().backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0


def test_the_diffgmm_loss_adds_one_minus_stoi_only_when_weighted():
    from model.diffgmm import DiffGMM, DiffGMMConfig

    torch.manual_seed(0)
    model = DiffGMM(DiffGMMConfig(hidden_channels=16, feature_channels=16, depth=1, bottleneck_blocks=1))
    noisy, clean = torch.randn(2, 16000), torch.randn(2, 16000)
    out = model(noisy)
    base, parts = diffgmm_loss(out, clean, LossConfig())
    weighted, weighted_parts = diffgmm_loss(out, clean, LossConfig(stoi_weight=2.0), sample_rate=16000)
    assert "stoi" not in parts and -1.0 <= weighted_parts["stoi"] <= 1.0
    assert float(weighted - base) == pytest.approx(2.0 * (1.0 - weighted_parts["stoi"]), rel=1e-4)
    with pytest.raises(ValueError, match=">= 0"):
        LossConfig(stoi_weight=-1.0)
