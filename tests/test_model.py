import math

import numpy as np
import pytest
import torch
from conftest import noisy_tone

from model import DiffGMM, DiffGMMConfig, LossConfig, diffgmm_loss
from model.gmm import MixtureParams, mixture_mean, mixture_nll, mixture_sample, params_from_raw
from pipeline.quality.metrics import si_sdr_db

SMALL = DiffGMMConfig(hidden_channels=8, depth=3, bottleneck_blocks=1, feature_channels=8, num_steps=2)


@pytest.mark.parametrize("length", [1, 7, 63, 64, 1001, 16000, 16001, 32003])
def test_output_length_equals_input_length(length):
    model = DiffGMM(SMALL).eval()
    x = torch.randn(3, length)
    out, stats = model.enhance(x)
    assert out.shape == x.shape
    assert stats["gmm_nll"].shape == (3,)
    assert stats["gmm_occupancy"].shape == (3, SMALL.num_components)


def test_same_seed_same_model_and_output():
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(DiffGMM(SMALL).eval().enhance(x)[0])
    torch.manual_seed(8)
    other = DiffGMM(SMALL).eval().enhance(x)[0]
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], other)


def test_sampling_needs_generator_and_is_reproducible():
    torch.manual_seed(0)
    model = DiffGMM(DiffGMMConfig(**{**SMALL.__dict__, "noise_estimate": "sample"})).eval()
    x = torch.randn(2, 3000)
    with pytest.raises(ValueError, match="Generator"):
        model.enhance(x)
    a = model.enhance(x, generator=torch.Generator().manual_seed(3))[0]
    b = model.enhance(x, generator=torch.Generator().manual_seed(3))[0]
    c = model.enhance(x, generator=torch.Generator().manual_seed(4))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mixture_parameters_are_valid():
    torch.manual_seed(0)
    model = DiffGMM(SMALL)
    params = model.mixture(torch.randn(2, 5000) * 10, step=0)
    assert params.weights.shape == (2, SMALL.num_components, 5000)
    torch.testing.assert_close(params.weights.sum(dim=1), torch.ones(2, 5000))
    assert (params.weights >= 0).all()
    assert (params.scale >= SMALL.min_scale).all()
    # Even wildly negative raw scales stay positive.
    raw = torch.full((1, 3 * 5, 10), -1e4)
    assert (params_from_raw(raw, 1e-3).scale > 0).all()


def test_nll_matches_direct_computation():
    pi = torch.tensor([0.2, 0.5, 0.3])
    mu = torch.tensor([-1.0, 0.0, 2.0])
    sigma = torch.tensor([0.5, 1.0, 2.0])
    params = MixtureParams(
        logits=torch.log(pi).view(1, 3, 1).expand(1, 3, 4),
        mean=mu.view(1, 3, 1).expand(1, 3, 4),
        scale=sigma.view(1, 3, 1).expand(1, 3, 4),
    )
    x = torch.tensor([[-1.0, 0.3, 2.5, 10.0]])
    expected = []
    for v in x[0].tolist():
        p = sum(
            w / (s * math.sqrt(2 * math.pi)) * math.exp(-0.5 * ((v - m) / s) ** 2)
            for w, m, s in zip(pi.tolist(), mu.tolist(), sigma.tolist())
        )
        expected.append(-math.log(p))
    torch.testing.assert_close(mixture_nll(params, x)[0], torch.tensor(expected), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixture_mean(params)[0], torch.full((4,), float((pi * mu).sum())))


def test_mixture_sample_follows_the_mixture():
    params = MixtureParams(
        logits=torch.log(torch.tensor([0.25, 0.75])).view(1, 2, 1).expand(1, 2, 200_000),
        mean=torch.tensor([-5.0, 5.0]).view(1, 2, 1).expand(1, 2, 200_000),
        scale=torch.full((1, 2, 200_000), 0.1),
    )
    draw = mixture_sample(params, torch.Generator().manual_seed(0))
    assert abs(float((draw < 0).float().mean()) - 0.25) < 0.01
    assert abs(float(draw.mean()) - 2.5) < 0.05


def test_tiny_model_overfits_a_few_seconds_of_noisy_audio():
    clean_b, noisy_b = noisy_tone(3)
    clean, noisy = clean_b.flatten(), noisy_b.flatten()
    torch.manual_seed(0)
    model = DiffGMM(SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    config = LossConfig()
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss, parts = diffgmm_loss(model(noisy_b), clean_b, config)
        loss.backward()
        opt.step()
        losses.append(parts["l1"])
    assert np.mean(losses[-10:]) < np.mean(losses[:5]) / 3
    enhanced = model.eval().enhance(noisy_b)[0].flatten().numpy()
    before = si_sdr_db(clean.numpy(), noisy.numpy())
    after = si_sdr_db(clean.numpy(), enhanced)
    assert after > before + 3.0, (before, after)


def test_config_rejects_invalid_values():
    with pytest.raises(ValueError):
        DiffGMMConfig(num_components=0)
    with pytest.raises(ValueError):
        DiffGMMConfig(noise_estimate="median")
