"""DiffGMM's banded backbone (model/banded.py): band maps, shapes, length, config, checkpoints, train → enhance."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SMALL_STFT_CONFIG
from test_cli_commands import diffgmm
from test_recipe import _corpus

from model import DiffGMM, DiffGMMConfig, config_from_dict, make_checkpoint, model_from_checkpoint
from model.banded import BandedConfig, band_centres, band_matrices
from model.diffgmm import BANDED_ENHANCE_WINDOWS
from pipeline.core.checkpoints import load_checkpoint_dict, save_checkpoint
from pipeline.core.config import ConfigError, load_yaml

ROOT = Path(__file__).resolve().parents[1]
# 33 bins (n_fft 64) into 8 bands, two subband groups: the test size.
TINY_BANDED = dict(
    bands=8, channels=8, growth=2.0, depth=2, bottleneck_blocks=1, groups=2, band_channels=2, bin_hidden=4
)
SMALL_BANDED = DiffGMMConfig(**SMALL_STFT_CONFIG, backbone="banded", banded=BandedConfig(**TINY_BANDED))


@pytest.mark.parametrize("bins, bands", [(257, 32), (257, 64), (33, 8), (257, 257), (5, 2)])
def test_band_maps_preserve_constants_and_every_band_sees_its_bins(bins, bands):
    centres = band_centres(bins, bands, 16000)
    assert len(centres) == bands and centres[0] == 0.0 and abs(centres[-1] - (bins - 1)) < 1e-9
    assert min(b - a for a, b in zip(centres, centres[1:])) >= 1.0 - 1e-9  # never two bands inside one bin
    compress, expand = band_matrices(bins, bands, 16000)
    assert compress.shape == (bands, bins) and expand.shape == (bins, bands)
    assert (compress >= 0).all() and (expand >= 0).all()
    torch.testing.assert_close(expand.sum(1), torch.ones(bins))
    torch.testing.assert_close(compress.sum(1), torch.ones(bands))
    assert (expand > 0).sum(1).max() <= 2  # interpolation between two neighbouring bands
    # No band is empty: the bin nearest its centre gives it at least half its value.
    nearest = torch.tensor([round(c) for c in centres])
    assert (expand[nearest, torch.arange(bands)] >= 0.5).all()
    assert ((compress.argmax(1) - nearest).abs() <= 1).all()
    if bins == bands:
        torch.testing.assert_close(compress, torch.eye(bins))


def test_bands_are_narrow_at_low_and_wide_at_high_frequencies():
    compress, _ = band_matrices(257, 32, 16000)
    support = (compress > 0).sum(1)
    assert support[:3].max() <= 3 and support[-4:-1].min() >= 30


@pytest.mark.parametrize("length", [1, 7, 255, 1001, 16000, 32003])
def test_banded_model_keeps_length_and_starts_near_identity(length):
    torch.manual_seed(0)
    model = DiffGMM(SMALL_BANDED).eval()
    x = torch.randn(3, length)
    out, stats = model.enhance(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert stats["gmm_nll"].shape == (3,) and torch.isfinite(stats["gmm_nll"]).all()
    assert stats["gmm_occupancy"].shape == (3, SMALL_BANDED.num_components)
    torch.testing.assert_close(stats["gmm_occupancy"].sum(-1), torch.ones(3))
    if length >= 255:  # the untrained head subtracts little
        assert float((out - x).norm() / x.norm()) < 0.2


def test_backbone_gives_raw_parameters_per_bin_and_frame():
    model = DiffGMM(SMALL_BANDED).eval()
    bins, frames, k = SMALL_BANDED.stft.bins, 50, SMALL_BANDED.num_components
    raw = model.backbone(torch.randn(2, 2 * bins, frames), torch.zeros(2, dtype=torch.long))
    assert raw.shape == (2, 4 * k, bins, frames)


def test_windows_are_independent_across_the_enhance_slices():
    """enhance() runs the banded model a few windows at a time: each window's output is what it gets alone."""
    torch.manual_seed(1)
    model = DiffGMM(SMALL_BANDED).eval()
    x = torch.randn(2 * BANDED_ENHANCE_WINDOWS + 1, 4000)
    together, stats = model.enhance(x)
    for i in (0, BANDED_ENHANCE_WINDOWS, 2 * BANDED_ENHANCE_WINDOWS):
        alone, alone_stats = model.enhance(x[i : i + 1])
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(stats["gmm_nll"][i : i + 1], alone_stats["gmm_nll"], atol=1e-5, rtol=1e-5)
    assert stats["gmm_occupancy"].shape == (x.shape[0], SMALL_BANDED.num_components)


def test_silence_in_gives_silence_out():
    model = DiffGMM(SMALL_BANDED).eval()
    out, _ = model.enhance(torch.zeros(2, 3000))
    assert torch.equal(out, torch.zeros(2, 3000))


def test_default_backbone_is_unchanged():
    config = DiffGMMConfig(**SMALL_STFT_CONFIG)
    assert config.backbone == "unet"
    keys = DiffGMM(config).state_dict().keys()
    assert any(k.startswith("unet.") for k in keys) and not any(k.startswith("backbone.") for k in keys)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(banded=BandedConfig(bands=36)), r"bands \(36\) must be at most the STFT's 33 bins"),
        (dict(backbone="banded", representation="waveform"), r"needs representation 'stft'"),
        (dict(backbone="gtcrn"), r"backbone must be one of"),
    ],
)
def test_config_rejects_bad_backbones(changes, message):
    values = {**SMALL_STFT_CONFIG, "backbone": "banded", **changes}
    with pytest.raises(ValueError, match=message):
        DiffGMMConfig(**values)


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(bands=30, groups=4), r"multiple of banded.groups"),
        (dict(bands=1, groups=1), r"bands must be >= 2"),
        (dict(channels=6, groups=4, bands=8), r"level 0 has 6 channels"),
        (dict(kernel_size=2, stride=3), r"kernel_size must be >= banded.stride"),
        (dict(band_channels=0), r"band_channels must be >= 1"),
    ],
)
def test_banded_config_rejects_bad_sizes(values, message):
    with pytest.raises(ValueError, match=message):
        BandedConfig(**values)


def test_a_recipe_with_a_bad_band_count_fails_before_training(tmp_path):
    """The YAML path (TrainConfig): a bad band count or an unknown key is a config error, not a crash later."""
    from pipeline.train.configs import TrainConfig

    recipe = str(ROOT / "jobs/configs/train-diffgmm-banded.yaml")
    assert load_yaml(TrainConfig, recipe).model.banded.bands == 32
    with pytest.raises(ConfigError, match="multiple of banded.groups"):
        load_yaml(TrainConfig, recipe, {"model.banded.bands": 30})
    with pytest.raises(ConfigError, match="bands"):
        load_yaml(TrainConfig, recipe, {"model.banded.bands": 300})
    with pytest.raises(ConfigError, match="unknown keys"):
        load_yaml(TrainConfig, recipe, {"model.banded.erb_bands": 32})
    with pytest.raises(ValueError, match="unknown banded keys"):
        config_from_dict("diffgmm", {**SMALL_STFT_CONFIG, "backbone": "banded", "banded": {"erb_bands": 8}})


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(2)
    model = DiffGMM(SMALL_BANDED).eval()
    path = str(tmp_path / "banded.pt")
    save_checkpoint(make_checkpoint(model, {"note": "banded"}), path)
    ckpt, _ = load_checkpoint_dict(path)  # torch.load(weights_only=True) inside
    assert ckpt["model_config"]["banded"]["bands"] == TINY_BANDED["bands"]
    assert not any("compress" in k or "expand" in k for k in ckpt["state_dict"])  # fixed maps are rebuilt, not stored
    loaded, meta = model_from_checkpoint(ckpt)
    assert loaded.config == model.config and meta["note"] == "banded"
    x = torch.randn(2, 3000)
    torch.testing.assert_close(loaded.enhance(x)[0], model.enhance(x)[0], atol=0, rtol=0)
    # A checkpoint whose banded section disagrees with its weights is refused with the reason.
    wrong = dict(
        ckpt,
        model_config={
            **ckpt["model_config"],
            "banded": dataclasses.asdict(BandedConfig(**{**TINY_BANDED, "bin_hidden": 6})),
        },
    )
    with pytest.raises(ValueError, match="does not fit"):
        model_from_checkpoint(wrong)


def test_train_local_with_the_banded_backbone_then_enhance_loads_it(tmp_path, rng):
    root = str(tmp_path)
    _corpus(root, rng)
    sets = [f"model.{k}={v}" for k, v in SMALL_STFT_CONFIG.items()]
    sets += ["model.backbone=banded", *[f"model.banded.{k}={v}" for k, v in TINY_BANDED.items()]]
    sets += [
        f"storage_path={root}/runs",
        f"data.clean_uri={root}/clean",
        f"data.noise_uri={root}/noise",
        "data.valid_pairs=1",
        "data.valid_segment_seconds=1.0",
        "mix.segment_seconds=0.5",
        "optim.batch_size=2",
        "optim.steps_per_epoch=3",
        "optim.epochs=1",
        "optim.warmup_steps=1",
    ]
    argv = [
        "train",
        "--config",
        str(ROOT / "jobs/configs/train-default.yaml"),
        "--executor",
        "local",
        "--device",
        "cpu",
        "--name",
        "b",
    ]
    for s in sets:
        argv += ["--set", s]
    from jobs.cli import main

    assert main(argv) == 0
    best = tmp_path / "runs" / "b" / "best.pt"
    last = torch.load(tmp_path / "runs" / "b" / "last.pt", weights_only=True)
    assert last["model_config"]["backbone"] == "banded" and last["metadata"]["step"] == 3
    assert any(k.startswith("backbone.unet.") for k in last["state_dict"])
    clip = tmp_path / "noisy.wav"
    sf.write(clip, 0.1 * rng.standard_normal(16000).astype(np.float32), 16000)
    out = diffgmm(
        "enhance",
        str(clip),
        "--output-dir",
        str(tmp_path / "out"),
        "--checkpoint",
        str(best),
        "--device",
        "cpu",
        cwd=str(tmp_path),
    )
    assert re.search(r"^1 enhanced, 0 failed, model ", out, re.M), out
    written, rate = sf.read(tmp_path / "out" / "noisy.wav")
    assert rate == 16000 and written.shape == (16000,) and np.isfinite(written).all()


# AIGD's band lever: the same maps around its 2D U-Net (cost measured in docs/benchmarks.md, not trained).
SMALL_AIGD = dict(n_fft=127, win_length=120, hop_length=60, channels=4, channel_mults=(1, 2), groups=2)


def test_aigd_with_bands_runs_its_unet_on_bands_and_keeps_length():
    from model import AIGD, AIGDConfig

    model = AIGD(AIGDConfig(**SMALL_AIGD, bands=16)).eval()
    heights = []
    model.unet.register_forward_hook(lambda mod, args, out: heights.append(args[0].shape[-2]))
    x = torch.randn(2, 4001)
    out, stats = model.enhance(x)
    assert out.shape == x.shape and heights == [16]  # 64 bins → 16 bands (already a multiple of 2)
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)  # zero output layer + residual: the identity
    # A trained-looking output layer changes the output, through the expansion back to bins.
    with torch.no_grad():
        for p in model.unet.out.parameters():
            p.normal_(0, 0.1)
    assert float((model.enhance(x)[0] - x).norm() / x.norm()) > 0.01


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(bands=1), r"bands must be 0"),
        (dict(bands=65), r"in \[2, 64\]"),
        (dict(bands=16, residual=False), r"needs residual"),
    ],
)
def test_aigd_config_rejects_bad_bands(values, message):
    from model import AIGDConfig

    with pytest.raises(ValueError, match=message):
        AIGDConfig(**{**SMALL_AIGD, **values})


def test_aigd_banded_checkpoint_round_trip(tmp_path):
    from model import AIGD, AIGDConfig

    torch.manual_seed(3)
    model = AIGD(AIGDConfig(**SMALL_AIGD, bands=16)).eval()
    with torch.no_grad():
        for p in model.unet.out.parameters():
            p.normal_(0, 0.1)
    path = str(tmp_path / "aigd.pt")
    save_checkpoint(make_checkpoint(model), path)
    loaded, _ = model_from_checkpoint(load_checkpoint_dict(path)[0])
    x = torch.randn(1, 3000)
    assert loaded.config.bands == 16
    torch.testing.assert_close(loaded.enhance(x)[0], model.enhance(x)[0], atol=0, rtol=0)
