"""UDiffSE: SDE, NMF, posterior sampler, clip-level streaming, loss and checkpoint."""

import math

import pytest
import torch

from model import make_checkpoint, model_from_checkpoint
from model.registry import build_model, spec
from model.udiffse import UDiffSE, UDiffSEConfig, UDiffSELossConfig, enhance_clip, udiffse_loss
from model.udiffse.nmf import is_divergence, is_update, random_init
from model.udiffse.sampler import SamplerSettings, e_step
from model.udiffse.sde import OUVESDE

# A test-size UDiffSE: 64-point FFT (33 bins), 4 channels, two levels, 4 steps × 2 EM iterations.
TINY = dict(n_fft=64, hop_length=16, channels=4, channel_mults=(1, 2), groups=2, time_features=8, num_e=4, num_em=2)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_model(seed: int = 0, **overrides) -> UDiffSE:
    """A tiny model whose zero-initialised output layer is redrawn, so the score is not identically zero."""
    torch.manual_seed(seed)
    model = UDiffSE(UDiffSEConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():
        for p in model.net.out.parameters():
            p.normal_(0.0, 0.1, generator=gen(seed + 1))
    return model


def speechlike(seconds: float, seed: int, sample_rate: int = 16000) -> torch.Tensor:
    """Harmonic tone bursts plus a little noise, (samples,) float32."""
    g = gen(seed)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 100 + 150 * torch.rand(1, generator=g)
    x = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 6))
    envelope = (torch.sin(2 * math.pi * 3 * t) > 0).float()
    return (0.3 * x * envelope + 0.01 * torch.randn(t.shape, generator=g)).float()


# --- SDE ----------------------------------------------------------------------------------------


def test_sde_marginal_mean_and_std_match_a_direct_simulation():
    sde = OUVESDE(1.5, 0.05, 0.5)
    g = gen(0)
    s0 = torch.tensor([1.0 + 0.5j, -0.3 + 0.0j], dtype=torch.complex128)
    paths = 20000
    x = s0.expand(paths, 2).clone()
    steps = 1000
    dt = 1.0 / steps
    checks = {300: None, 1000: None}
    for i in range(steps):
        t = i * dt
        noise = torch.randn(x.shape, dtype=torch.complex128, generator=g)
        x = x + sde.drift(x, t) * dt + float(sde.diffusion(t)) * math.sqrt(dt) * noise
        if i + 1 in checks:
            checks[i + 1] = x.clone()
    for n, xs in checks.items():
        t = n * dt
        mean, var = xs.mean(dim=0), (xs - xs.mean(dim=0)).abs().pow(2).mean(dim=0)
        assert torch.allclose(mean, float(sde.mean_factor(t)) * s0, atol=0.01), (t, mean)
        # Variance estimate of 20 000 paths: about 1 % standard error; 1000 Euler steps add well under that.
        assert torch.allclose(var, torch.full_like(var, float(sde.std(t)) ** 2), rtol=0.04), (
            t,
            var,
            float(sde.std(t)) ** 2,
        )


def test_sde_variance_solves_its_ode_and_starts_at_zero():
    sde = OUVESDE(1.5, 0.05, 0.5)
    assert float(sde.std(0.0)) == 0.0
    for t in (0.1, 0.5, 0.9):
        h = 1e-5
        dv = (float(sde.std(t + h)) ** 2 - float(sde.std(t - h)) ** 2) / (2 * h)
        assert dv == pytest.approx(-2 * 1.5 * float(sde.std(t)) ** 2 + float(sde.diffusion(t)) ** 2, rel=1e-5)


# --- NMF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmf_is_update_decreases_the_itakura_saito_divergence(seed):
    g = gen(seed)
    true_w, true_h = torch.rand(40, 3, generator=g), torch.rand(3, 60, generator=g)
    v = (true_w @ true_h) * torch.distributions.Exponential(1.0).sample((40, 60))  # IS-NMF's generative model
    w, h = random_init(40, 60, 4, g)
    previous = is_divergence(v, w @ h)
    start = previous
    for _ in range(30):
        w, h = is_update(v, w, h)
        current = is_divergence(v, w @ h)
        assert current <= previous * (1 + 1e-6)
        previous = current
    assert previous < 0.7 * start
    # The template normalisation leaves W·H unchanged and each template summing to 1.
    assert torch.allclose(w.sum(dim=0), torch.ones(4), atol=1e-5)


# --- Sampler with an oracle score -----------------------------------------------------------------


def _gaussian_problem(vs=1.0, vn=0.25, shape=(16, 32)):
    g = gen(0)
    s = torch.randn(shape, dtype=torch.complex64, generator=g) * vs**0.5
    x = s + torch.randn(shape, dtype=torch.complex64, generator=g) * vn**0.5
    return x, vs / (vs + vn) * x, vs * vn / (vs + vn)


def _rel_err(estimate, target):
    return float((estimate - target).abs().pow(2).mean() / target.abs().pow(2).mean())


def test_sampler_with_the_exact_posterior_score_recovers_the_posterior():
    """The predictor–corrector machinery alone: with ∇log p_t(x | X) known in closed form it samples the posterior."""
    sde, (x, post_mean, post_var) = OUVESDE(1.5, 0.05, 0.5), _gaussian_problem()

    def posterior_score(z, t):
        mu, sigma = float(sde.mean_factor(t)), float(sde.std(t))
        return -(z - mu * post_mean) / (mu**2 * post_var + sigma**2)

    samples = e_step(posterior_score, sde, x, None, SamplerSettings(30, 0.03, 0.5, 2, 1.5), 64, gen(1))
    assert _rel_err(samples.mean(0), post_mean) < 0.02  # measured 0.005
    assert float(samples.var(0).mean()) == pytest.approx(post_var, rel=0.1)


def test_likelihood_step_with_an_oracle_prior_score_gives_the_posterior_mean():
    """Prior score of CN(0, v_s) plus the likelihood step with the true noise variance → E[s | X] = v_s/(v_s+v_n)·X.

    The corrector is switched off (snr → 0) and λ = 1, k = 1: the guided reverse SDE is then exact up to the
    likelihood's (σ/μ)² approximation at large t (measured: 0.4 % relative squared error at 100 steps, against
    6.2 % for the noisy input itself and 10 % for the same sampler without the likelihood step).
    """
    vs, vn = 1.0, 0.25
    sde, (x, post_mean, _) = OUVESDE(1.5, 0.05, 0.5), _gaussian_problem(vs, vn)

    def prior_score(z, t):
        mu, sigma = float(sde.mean_factor(t)), float(sde.std(t))
        return -z / (mu**2 * vs + sigma**2)

    settings = SamplerSettings(100, 0.03, 1e-6, 1, 1.0)
    guided = e_step(prior_score, sde, x, torch.full(x.shape, vn), settings, 64, gen(2)).mean(0)
    unguided = e_step(prior_score, sde, x, None, settings, 64, gen(2)).mean(0)
    assert _rel_err(guided, post_mean) < 0.02
    assert _rel_err(guided, post_mean) < 0.2 * min(_rel_err(unguided, post_mean), _rel_err(x, post_mean))


# --- The family: determinism, streaming, clip isolation ------------------------------------------


def test_same_seed_same_output_different_seed_different_output():
    model, clip = tiny_model(), speechlike(0.5, 0)
    a, stats_a, state_a = model.enhance_chunk(clip, None, gen(7))
    b, stats_b, state_b = model.enhance_chunk(clip, None, gen(7))
    c, _, _ = model.enhance_chunk(clip, None, gen(8))
    assert torch.equal(a, b) and torch.equal(state_a["w"], state_b["w"])
    # (an octave band with no bin of the 64-point FFT reads NaN, so NaNs compare equal here)
    assert all(torch.allclose(stats_a[k], stats_b[k], rtol=0, atol=0, equal_nan=True) for k in stats_a)
    assert not torch.allclose(a, c, atol=1e-4)
    assert a.shape == clip.shape and a.dtype == torch.float32


def test_a_clip_that_fits_in_one_chunk_streams_exactly_as_the_whole_clip():
    model, clip = tiny_model(), speechlike(0.6, 1)
    whole, _, _ = model.enhance_chunk(clip, None, gen(3))
    streamed, stats = enhance_clip(model, clip, gen(3), chunk_samples=clip.shape[0])
    assert len(stats) == 1 and torch.equal(whole, streamed)


def test_long_clip_streams_with_a_bounded_state_that_is_carried():
    model, clip = tiny_model(), speechlike(1.2, 2)
    size = 4000
    out, stats = enhance_clip(model, clip, gen(4), chunk_samples=size)
    assert out.shape == clip.shape and len(stats) == 5 and torch.isfinite(out).all()
    _, _, state1 = model.enhance_chunk(clip[:size], None, gen(5))
    _, _, state_long = model.enhance_chunk(clip[: 3 * size], None, gen(5))
    # The state's size does not grow with the chunk: W (bins, rank), mean activations (rank,), peak ().
    assert {k: v.shape for k, v in state1.items()} == {k: v.shape for k, v in state_long.items()}
    assert state1["w"].shape == (33, 4) and state1["h_mean"].shape == (4,)
    warm, _, _ = model.enhance_chunk(clip[size : 2 * size], state1, gen(6))
    cold, _, _ = model.enhance_chunk(clip[size : 2 * size], None, gen(6))
    assert not torch.allclose(warm, cold, atol=1e-5)  # the carried noise model is used


def test_the_state_never_mixes_two_clips():
    model = tiny_model()
    clip_a, clip_b = speechlike(0.5, 10), speechlike(0.5, 11)
    with pytest.raises(ValueError, match="one chunk of one clip"):
        model.enhance_chunk(torch.stack([clip_a, clip_b]), None, gen(0))
    alone, _, _ = model.enhance_chunk(clip_b, None, gen(1))
    model.enhance_chunk(clip_a, None, gen(1))  # another clip first: nothing may stay behind on the module
    after, _, _ = model.enhance_chunk(clip_b, None, gen(1))
    assert torch.equal(alone, after)
    with pytest.raises(ValueError, match="state must have keys"):
        model.enhance_chunk(clip_b, {"w": torch.ones(33, 4)}, gen(1))


def test_a_silent_chunk_is_passed_through_with_nan_stats():
    model = tiny_model()
    out, stats, state = model.enhance_chunk(torch.zeros(3000), None, gen(0))
    assert torch.equal(out, torch.zeros(3000)) and state == {} and torch.isnan(stats["em_nll"])


def test_noise_fingerprint_reads_the_level_and_colour_of_a_known_noise():
    """NMF fitted to a noise image directly: white noise of variance v reads 10·log10(v) dB per octave band."""
    model = UDiffSE()
    g = gen(0)
    white = 0.1 * torch.randn(32000, generator=g)
    image, peak = model.image(white[None])
    w, h = random_init(*image.shape[-2:], 4, g)
    for _ in range(50):
        w, h = is_update(image[0].abs().pow(2), w, h)
    stats = model.noise_stats(w, h, peak[0])
    assert torch.allclose(stats["noise_band_db"], torch.full((7,), -20.0), atol=1.0), stats
    hum = 0.3 * torch.sin(2 * math.pi * 200 * torch.arange(32000) / 16000) + 0.001 * torch.randn(32000, generator=g)
    image, peak = model.image(hum[None])
    w, h = random_init(*image.shape[-2:], 4, g)
    for _ in range(50):
        w, h = is_update(image[0].abs().pow(2), w, h)
    stats = model.noise_stats(w, h, peak[0])
    assert 150 < float(stats["noise_dominant_hz"]) < 300, stats
    assert int(torch.argmax(stats["noise_band_db"])) == 1  # 125–250 Hz


# --- Training ------------------------------------------------------------------------------------


def test_dsm_loss_ignores_noisy_uses_the_generator_and_decreases():
    clean = torch.stack([speechlike(0.5, s) for s in range(4)])
    cfg = UDiffSELossConfig()
    probe = tiny_model()  # a non-zero output layer, so the loss depends on the network's input
    a, _ = udiffse_loss(probe, torch.randn_like(clean), clean, cfg, gen(0))
    b, _ = udiffse_loss(probe, None, clean, cfg, gen(0))
    c, _ = udiffse_loss(probe, None, clean, cfg, gen(1))
    assert torch.equal(a, b) and not torch.equal(a, c)

    model = UDiffSE(UDiffSEConfig(**TINY))

    def held_loss():
        with torch.no_grad():
            return sum(udiffse_loss(model, None, clean, cfg, gen(100 + i))[1]["total"] for i in range(8)) / 8

    before = held_loss()
    optimiser = torch.optim.Adam(model.trainable_parameters(), lr=3e-3)
    g = gen(5)
    for _ in range(40):
        optimiser.zero_grad()
        loss, _ = udiffse_loss(model, None, clean, cfg, g)
        loss.backward()
        optimiser.step()
    after = held_loss()
    assert after < 0.8 * before, (before, after)


def test_registry_entry_and_checkpoint_round_trip():
    assert spec("udiffse").loss is udiffse_loss and build_model("udiffse").input_unit == "clip"
    model = tiny_model(3)
    ckpt = make_checkpoint(model, {"noise_files": "none"})
    loaded, metadata = model_from_checkpoint(ckpt)
    assert metadata == {"noise_files": "none"} and loaded.config == model.config
    assert loaded.config.channel_mults == (1, 2)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    clip = speechlike(0.4, 3)
    assert torch.equal(model.enhance_chunk(clip, None, gen(9))[0], loaded.enhance_chunk(clip, None, gen(9))[0])


def test_config_rejects_bad_values():
    for bad in (dict(num_e=0), dict(sigma_min=0.6), dict(chunk_seconds=0.0), dict(groups=3), dict(t_eps=1.0)):
        with pytest.raises(ValueError):
            UDiffSEConfig(**{**TINY, **bad})
