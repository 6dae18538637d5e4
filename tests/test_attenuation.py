"""The attenuation limit: at N dB the output is never more than N dB below the input in any STFT band and frame."""

import numpy as np
import pytest

from pipeline.audio.attenuation import AttenuationLimiter, limit_attenuation, stft_geometry

RATE = 16000
TOLERANCE_DB = 1.5
BANDS = 32


def _signals(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded noisy signal (harmonics + noise) and a harsh 'enhancement' of it: whole frames and bands cut by 40-80 dB."""
    rng = np.random.default_rng(seed)
    t = np.arange(3 * RATE) / RATE
    noisy = sum(np.sin(2 * np.pi * 180 * k * t + rng.uniform(0, 6)) / k for k in range(1, 20)) * 0.1
    noisy = (noisy + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    spec = np.fft.rfft(noisy)
    freqs = np.fft.rfftfreq(len(noisy), 1 / RATE)
    enhanced = np.fft.irfft(spec * np.where((freqs > 2000) & (freqs < 5000), 1e-4, 1.0), len(noisy))
    gate = np.repeat(rng.uniform(0, 1, len(t) // 800 + 1) < 0.4, 800)[: len(t)]
    enhanced = np.where(gate, enhanced * 1e-3, enhanced).astype(np.float32)
    return noisy, enhanced


def _band_db(signal: np.ndarray) -> np.ndarray:
    """(frames, BANDS) band energies in dB on the limiter's own STFT grid."""
    frame, hop = stft_geometry(RATE)
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame))
    padded = np.concatenate([np.zeros(hop), signal, np.zeros(frame)])
    count = (len(padded) - frame) // hop + 1
    frames = np.stack([padded[i * hop : i * hop + frame] * window for i in range(count)])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    edges = np.linspace(0, power.shape[1], BANDS + 1).astype(int)
    return 10 * np.log10(np.stack([power[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1) + 1e-12)


@pytest.mark.parametrize("limit_db", [6.0, 12.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_output_is_never_more_than_the_limit_below_the_input(limit_db, seed):
    noisy, enhanced = _signals(seed)
    before = _band_db(noisy) - _band_db(enhanced)
    assert before.max() > 40, "the test signal must be suppressed far beyond the limit somewhere"
    out = limit_attenuation(noisy, enhanced, RATE, limit_db)
    assert out.shape == noisy.shape and out.dtype == np.float32
    cut = _band_db(noisy) - _band_db(out)
    live = _band_db(noisy) > -60  # bins with input at all
    assert cut[live].max() <= limit_db + TOLERANCE_DB
    # Where the enhancement left the input as it was, so does the limit.
    kept = (np.abs(before) < 0.5) & live
    assert kept.sum() > 1000 and np.abs(_band_db(out) - _band_db(enhanced))[kept].max() < 1.0


def test_none_leaves_the_output_bit_identical():
    noisy, enhanced = _signals(0)
    assert limit_attenuation(noisy, enhanced, RATE, None) is enhanced


def test_chunked_equals_whole():
    noisy, enhanced = _signals(2)
    whole = limit_attenuation(noisy, enhanced, RATE, 6.0)
    limiter, outs, pos = AttenuationLimiter(6.0, RATE), [], 0
    for size in (1, 700, 5, 13000, 256, 999_999):
        outs.append(limiter.push(noisy[pos : pos + size], enhanced[pos : pos + size]))
        pos += size
    outs.append(limiter.finish())
    np.testing.assert_allclose(np.concatenate(outs), whole, atol=1e-6)


def test_a_limit_must_be_positive():
    with pytest.raises(ValueError, match="atten_lim_db must be > 0"):
        AttenuationLimiter(0.0, RATE)


def test_the_enhance_config_limit_applies_to_a_real_model_whole_and_streamed(tiny_checkpoint):
    from pipeline.core.checkpoints import load_model
    from pipeline.inference.enhance import EnhanceConfig
    from pipeline.inference.peer import LimitedEnhancer, make_enhancer

    model = load_model(tiny_checkpoint).model
    noisy, _ = _signals(4)
    plain = make_enhancer(model, EnhanceConfig()).enhance_many([noisy])[0][0]
    limited = make_enhancer(model, EnhanceConfig(atten_lim_db=6.0))
    assert isinstance(limited, LimitedEnhancer)
    whole = limited.enhance_many([noisy])[0][0]
    np.testing.assert_allclose(whole, limit_attenuation(noisy, plain, RATE, 6.0), atol=1e-6)
    streamed = np.concatenate([out for out, _ in limited.enhance_stream(iter(np.array_split(noisy, 5)), len(noisy))])
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
    live = _band_db(noisy) > -60
    assert (_band_db(noisy) - _band_db(whole))[live].max() <= 6.0 + TOLERANCE_DB
    with pytest.raises(ValueError, match="atten_lim_db must be > 0"):
        EnhanceConfig(atten_lim_db=-3.0)


def test_the_cli_flag_sets_the_enhance_config_key(tmp_path):
    from jobs.cli import build_parser
    from pipeline.core.cli_flags import denoise_flags, overrides_from
    from pipeline.core.config import load_yaml
    from pipeline.denoise.job import DenoiseConfig

    def config(argv):  # what jobs/denoise.py and jobs/nightly.py build from the parsed flags
        args = build_parser().parse_args(argv)
        return load_yaml(DenoiseConfig, args.config, overrides_from(args, denoise_flags()))

    for command in ("denoise", "nightly"):
        cfg = config([command, "--input", str(tmp_path / "i"), "--output", str(tmp_path / "o"), "--atten-lim-db", "12"])
        assert cfg.model.enhance.atten_lim_db == 12.0
    assert (
        config(["denoise", "--input", str(tmp_path / "i"), "--output", str(tmp_path / "o")]).model.enhance.atten_lim_db
        is None
    )
