"""The STFT representation of DiffGMM, the complex mixture, the multi-resolution STFT loss and silence."""

import math

import numpy as np
import pytest
import torch
from conftest import SMALL_STFT_CONFIG, TINY_CONFIG, noisy_tone

from model import DiffGMM, DiffGMMConfig, LossConfig, diffgmm_loss
from model.gmm import MixtureParams, complex_params_from_raw, mixture_mean, mixture_nll, mixture_sample
from model.losses import multires_stft_loss
from model.spectral import STFTConfig, istft, stft
from pipeline.quality.metrics import si_sdr_db

SMALL_STFT = DiffGMMConfig(**SMALL_STFT_CONFIG)


@pytest.mark.parametrize("n_fft, hop", [(512, 256), (64, 32), (400, 100)])
@pytest.mark.parametrize("length", [1000, 1001, 16000, 32003])
def test_stft_is_exactly_invertible(n_fft, hop, length):
    x = torch.randn(2, length, generator=torch.Generator().manual_seed(length))
    config = STFTConfig(n_fft=n_fft, hop_length=hop)
    torch.testing.assert_close(istft(stft(x, config), config, length), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("length", [1, 7, 255, 1001, 16000, 32003])
def test_stft_model_keeps_length_and_starts_near_identity(length):
    torch.manual_seed(0)
    model = DiffGMM(SMALL_STFT).eval()
    x = torch.randn(3, length)
    out, stats = model.enhance(x)
    assert out.shape == x.shape
    assert stats["gmm_nll"].shape == (3,) and torch.isfinite(stats["gmm_nll"]).all()
    assert stats["gmm_occupancy"].shape == (3, SMALL_STFT.num_components)
    torch.testing.assert_close(stats["gmm_occupancy"].sum(-1), torch.ones(3))
    if length >= 255:  # the untrained head subtracts little (c ≈ 0)
        assert float((out - x).norm() / x.norm()) < 0.2


def test_complex_nll_matches_direct_computation():
    pi = [0.2, 0.5, 0.3]
    mu = [complex(-1, 0.5), complex(0, 0), complex(2, -1)]
    sigma = [0.5, 1.0, 2.0]
    params = MixtureParams(
        logits=torch.log(torch.tensor(pi)).view(1, 3, 1),
        mean=torch.tensor(mu, dtype=torch.complex64).view(1, 3, 1),
        scale=torch.tensor(sigma).view(1, 3, 1),
    )
    for value in (complex(-1, 0.4), complex(0.3, -0.2), complex(5, 5)):
        density = sum(w / (math.pi * s**2) * math.exp(-(abs(value - m) ** 2) / s**2) for w, m, s in zip(pi, mu, sigma))
        got = mixture_nll(params, torch.tensor([[value]], dtype=torch.complex64))
        assert abs(float(got) + math.log(density)) < 1e-4
    expected_mean = sum(w * m for w, m in zip(pi, mu))
    assert abs(complex(mixture_mean(params)[0, 0]) - expected_mean) < 1e-6


def test_complex_mixture_is_relative_to_the_reference_and_samples_follow_it():
    k, bins, frames = 2, 3, 50_000
    raw = torch.zeros(1, 4 * k, bins, frames)
    raw[:, 0] = 5.0  # component 0 dominates
    raw[:, k] = 0.5  # Re c_0 = 0.5
    reference = torch.full((1, bins, frames), complex(2.0, -2.0), dtype=torch.complex64)
    params = complex_params_from_raw(raw, reference, min_scale=1e-3)
    mean = mixture_mean(params)
    w0 = float(torch.softmax(torch.tensor([5.0, 0.0]), 0)[0])
    assert abs(complex(mean[0, 0, 0]) - w0 * 0.5 * complex(2.0, -2.0)) < 1e-5
    # A bin with nothing in it gets nothing subtracted.
    silent = complex_params_from_raw(raw, torch.zeros_like(reference), 1e-3)
    assert float(mixture_mean(silent).abs().max()) == 0.0
    draw = mixture_sample(params, torch.Generator().manual_seed(0))
    assert draw.is_complex() and abs(complex(draw.mean()) - complex(mean.mean())) < 0.05


def test_stft_loss_decreases_on_a_toy_problem_and_is_finite_at_digital_silence():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    target = (0.3 * torch.sin(2 * torch.pi * 440 * t)).unsqueeze(0)
    target[:, 8000:] = 0.0  # digital silence, like a zero-padded utterance
    estimate = (target + 0.05 * torch.randn(target.shape, generator=g)).requires_grad_()
    resolutions = LossConfig().stft_resolutions
    opt = torch.optim.Adam([estimate], lr=2e-3)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = multires_stft_loss(estimate, target, resolutions)
        loss.backward()
        assert torch.isfinite(estimate.grad).all()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    # The estimate moved towards the target, not just anywhere that lowers the loss.
    assert float((estimate - target).abs().mean()) < 0.5 * 0.05 * math.sqrt(2 / math.pi)
    # An all-zero estimate (what a model that mutes gives) has a finite loss and gradient.
    zeros = torch.zeros_like(target, requires_grad=True)
    loss = multires_stft_loss(zeros, target, resolutions)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zeros.grad).all()


@pytest.mark.parametrize("stft_weight", [0.0, 1.0])
def test_tiny_stft_model_overfits_a_few_seconds(stft_weight):
    clean_b, noisy_b = noisy_tone(3)
    clean, noisy = clean_b.flatten(), noisy_b.flatten()
    torch.manual_seed(0)
    model = DiffGMM(SMALL_STFT)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    config = LossConfig(stft_weight=stft_weight)
    for _ in range(120):
        opt.zero_grad()
        loss, _ = diffgmm_loss(model(noisy_b), clean_b, config, model.represent)
        loss.backward()
        opt.step()
    enhanced = model.eval().enhance(noisy_b)[0].flatten().numpy()
    before, after = si_sdr_db(clean.numpy(), noisy.numpy()), si_sdr_db(clean.numpy(), enhanced)
    assert after > before + 3.0, (before, after)


@pytest.mark.parametrize("config", [DiffGMMConfig(**TINY_CONFIG), SMALL_STFT], ids=["waveform", "stft"])
def test_digital_silence_in_gives_digital_silence_out(config):
    torch.manual_seed(0)
    model = DiffGMM(config).eval()
    x = torch.randn(3, 8000)
    x[1] = 0.0
    out, _ = model.enhance(x)
    assert torch.equal(out[1], torch.zeros(8000))
    assert out[0].abs().max() > 0


def test_shipped_model_keeps_silence_silent_and_adds_no_noise_to_near_silence():
    from pipeline.core.checkpoints import load_model
    from pipeline.inference.enhance import Enhancer

    enhancer = Enhancer(load_model().model)
    assert np.array_equal(
        enhancer.enhance(np.zeros(40000, dtype=np.float32), 16000)[0], np.zeros(40000, dtype=np.float32)
    )
    rng = np.random.default_rng(0)
    for level_dbfs in (-90.0, -70.0):
        quiet = (rng.standard_normal(40000) * 10 ** (level_dbfs / 20)).astype(np.float32)
        out = enhancer.enhance(quiet, 16000)[0]
        gain_db = 20 * np.log10(
            np.sqrt(np.mean(out.astype(np.float64) ** 2)) / np.sqrt(np.mean(quiet.astype(np.float64) ** 2))
        )
        assert gain_db <= 0.5, (level_dbfs, gain_db)
