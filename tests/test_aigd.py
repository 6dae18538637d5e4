"""AIGD: complex layers, the image losses, geometry, training on a toy problem, checkpoints, the recipe."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import noisy_tone, recorded_overrides
from torch.nn import functional as F

from model import AIGD, AIGDConfig, AIGDLossConfig, aigd_loss, make_checkpoint, model_from_checkpoint
from model.complex import ComplexConv2d, cat, from_parts, to_parts
from model.image_losses import bounded_sdr_loss, gaussian_window, ssim

# A test-size AIGD: 64-point FFT (33 bins), 4 complex channels, two levels.
TINY_AIGD = dict(n_fft=64, win_length=60, hop_length=16, channels=4, channel_mults=(1, 2), groups=2)
RECIPE = Path(__file__).resolve().parents[1] / "jobs" / "configs" / "train-aigd.yaml"


def test_complex_convolution_is_the_four_real_convolutions_it_expands_to():
    torch.manual_seed(0)
    conv = ComplexConv2d(3, 5, 3, stride=2, padding=1, mode="complex")
    with torch.no_grad():
        conv.bias_real.normal_(), conv.bias_imag.normal_()
    x = torch.randn(2, 3, 9, 11, dtype=torch.complex64)
    a, b = x.real, x.imag
    wr, wi, br, bi = conv.weight_real, conv.weight_imag, conv.bias_real, conv.bias_imag

    def c(t, w):
        return F.conv2d(t, w, None, 2, 1)

    expected = torch.complex(c(a, wr) - c(b, wi) + br.view(1, -1, 1, 1), c(b, wr) + c(a, wi) + bi.view(1, -1, 1, 1))
    got = from_parts(conv(to_parts(x)))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # The same layer is torch's own complex convolution (weights W_r + iW_i, bias b_r + ib_i).
    native = F.conv2d(x, torch.complex(wr, wi), torch.complex(br, bi), 2, 1)
    torch.testing.assert_close(got, native, atol=1e-5, rtol=1e-5)


def test_split_mode_is_the_papers_same_real_layer_on_both_images():
    torch.manual_seed(0)
    conv = ComplexConv2d(2, 3, 3, padding=1, mode="split")
    x = torch.randn(2, 2, 8, 8, dtype=torch.complex64)
    got = from_parts(conv(to_parts(x)))
    w, b = conv.weight_real, conv.bias_real
    torch.testing.assert_close(got.real, F.conv2d(x.real, w, b, 1, 1))
    torch.testing.assert_close(got.imag, F.conv2d(x.imag, w, b, 1, 1))


def test_complex_concatenation_keeps_real_and_imaginary_apart():
    a, b = torch.randn(1, 2, 4, 4, dtype=torch.complex64), torch.randn(1, 3, 4, 4, dtype=torch.complex64)
    torch.testing.assert_close(from_parts(cat(to_parts(a), to_parts(b))), torch.cat([a, b], dim=1))


def _direct_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """SSIM by its definition: Gaussian-weighted statistics at every valid window position, then the mean."""
    w = gaussian_window(11, 1.5)[0, 0].double().numpy()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_direct_computation_on_a_known_pair():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 19))
    y = 0.7 * x + 0.3 * rng.standard_normal((16, 19))
    got = ssim(torch.tensor(x[None]).float(), torch.tensor(y[None]).float(), torch.tensor([x.max() - x.min()]).float())
    expected = _direct_ssim(x, y, x.max() - x.min())
    assert abs(float(got[0]) - expected) < 1e-4
    assert 0.3 < expected < 0.95  # a partly similar pair: the test would notice a constant
    same = ssim(torch.tensor(x[None]).float(), torch.tensor(x[None]).float(), torch.tensor([4.0]))
    assert abs(float(same[0]) - 1.0) < 1e-5


def test_sdr_loss_is_bounded_at_the_upper_constant():
    torch.manual_seed(0)
    clean = torch.randn(1, 16000)
    noise = torch.randn(1, 16000)
    at_10_db = clean + noise * clean.norm() / noise.norm() * 10 ** (-10 / 20)
    assert abs(float(bounded_sdr_loss(at_10_db, clean, 30.0)[0]) - 20.0) < 1e-3
    # Above the bound (here 60 dB) the loss is 0, never negative; a perfect estimate also gives 0.
    at_60_db = clean + noise * clean.norm() / noise.norm() * 1e-3
    assert float(bounded_sdr_loss(at_60_db, clean, 30.0)[0]) == 0.0
    assert float(bounded_sdr_loss(clean, clean, 30.0)[0]) == 0.0


def test_magnitude_term_is_phase_blind_and_matches_a_direct_computation():
    import dataclasses

    torch.manual_seed(0)
    clean = torch.randn(2, 8000)
    out = AIGD(AIGDConfig(**TINY_AIGD))(clean + 0.1 * torch.randn(2, 8000))
    target = out.image_of(clean / out.scale)
    only_mag = AIGDLossConfig(alpha=1.0, l2_weight=0.0, ssim_weight=0.0, mag_weight=1.0)
    # Every pixel's phase turned at random: the complex L2 sees it, the magnitude term does not.
    turned = dataclasses.replace(out, image_out=target * torch.exp(1j * 2 * math.pi * torch.rand(target.shape)))
    total, parts = aigd_loss(turned, clean, only_mag)
    assert float(total) == pytest.approx(0.0, abs=1e-6) and parts["cl2"] > 0.1
    # 10 % louder everywhere: (0.1·|I|)² on average.
    louder = dataclasses.replace(out, image_out=1.1 * target)
    total, _ = aigd_loss(louder, clean, only_mag)
    assert float(total) == pytest.approx(float((0.1 * target.abs()).square().mean()), rel=1e-4)
    # The paper's loss (mag_weight 0) is unchanged by the new term.
    paper, _ = aigd_loss(louder, clean, AIGDLossConfig())
    with_mag, _ = aigd_loss(louder, clean, AIGDLossConfig(mag_weight=2.0))
    assert float(with_mag - paper) == pytest.approx(0.5 * 2.0 * float(total), rel=1e-4)


@pytest.mark.parametrize("length", [1, 300, 777, 16001])
@pytest.mark.parametrize("image_width", [0, 64], ids=["fixed-hop", "paper-width"])
def test_output_length_is_exact_at_odd_lengths(length, image_width):
    model = AIGD(AIGDConfig(**TINY_AIGD, image_width=image_width)).eval()
    x = torch.randn(2, length)
    y, stats = model.enhance(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert stats["image_ssim"].shape == (2,)


def test_paper_geometry_makes_images_of_the_set_width():
    config = AIGDConfig(**TINY_AIGD, image_width=64)
    out = AIGD(config)(torch.randn(1, 1600))
    assert out.stft.hop_length == 1600 // 64
    assert abs(out.image_in.shape[-1] - 64) <= 1
    # Beyond image_width · win_length / 2 samples the hop stops at half the window (exact inverse).
    assert config.stft_for(64000).hop_length == 30


def test_untrained_model_is_the_identity_and_silence_stays_silent():
    model = AIGD(AIGDConfig(**TINY_AIGD)).eval()
    x = torch.randn(2, 4000)
    y, stats = model.enhance(x)
    torch.testing.assert_close(y, x, atol=1e-4, rtol=1e-4)
    assert torch.allclose(stats["image_ssim"], torch.ones(2), atol=1e-4)
    silent, _ = model.enhance(torch.zeros(1, 4000))
    assert torch.count_nonzero(silent) == 0


def test_tiny_aigd_overfits_a_few_seconds():
    from pipeline.quality.metrics import score_si_sdr

    torch.manual_seed(0)
    clean, noisy = noisy_tone(3)
    model = AIGD(AIGDConfig(**TINY_AIGD))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    config = AIGDLossConfig()
    first = None
    for _ in range(80):
        optimizer.zero_grad()
        loss, parts = aigd_loss(model(noisy), clean, config)
        loss.backward()
        optimizer.step()
        first = first if first is not None else parts["total"]
    assert parts["total"] < 0.6 * first
    model.eval()
    enhanced, _ = model.enhance(noisy)
    before = np.mean([score_si_sdr(c.numpy(), n.numpy(), 16000).value for c, n in zip(clean, noisy)])
    after = np.mean([score_si_sdr(c.numpy(), e.numpy(), 16000).value for c, e in zip(clean, enhanced)])
    assert after > before + 3.0, (before, after)


def test_checkpoint_round_trip_through_the_file_format(tmp_path):
    from pipeline.core.checkpoints import load_model, save_checkpoint

    torch.manual_seed(0)
    model = AIGD(AIGDConfig(**TINY_AIGD, mode="split")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = str(tmp_path / "aigd.pt")
    save_checkpoint(make_checkpoint(model, {"note": "round trip"}), path)
    loaded = load_model(path)
    assert loaded.model.name == "aigd" and loaded.model_id.startswith("aigd-")
    assert loaded.model.config == model.config and loaded.model.config.channel_mults == (1, 2)
    x = torch.randn(2, 3000)
    torch.testing.assert_close(loaded.model.enhance(x)[0], model.enhance(x)[0])
    again, meta = model_from_checkpoint(make_checkpoint(loaded.model, {}))
    assert isinstance(again, AIGD)


def test_the_aigd_recipe_parses_and_its_model_fits_the_budget():
    from pipeline.core.config import load_yaml
    from pipeline.train.configs import TrainConfig

    recipe = load_yaml(TrainConfig, str(RECIPE))
    assert (
        recipe.model_name == "aigd" and isinstance(recipe.model, AIGDConfig) and isinstance(recipe.loss, AIGDLossConfig)
    )
    params = sum(p.numel() for p in AIGD(recipe.model).parameters())
    size_mb = params * 4 / 1e6
    assert size_mb < 20, f"the shipped AIGD must stay below 20 MB, this recipe gives {size_mb:.1f} MB"
    assert math.isclose(recipe.loss.alpha, 0.5)


@pytest.fixture(scope="module")
def tiny_aigd_checkpoint(tmp_path_factory) -> str:
    from pipeline.core.checkpoints import save_checkpoint

    torch.manual_seed(0)
    model = AIGD(AIGDConfig(**TINY_AIGD))
    with torch.no_grad():  # not the identity: the zero output layer gets weights
        for p in model.unet.out.parameters():
            p.normal_(0, 0.05)
    path = str(tmp_path_factory.mktemp("aigd") / "aigd.pt")
    save_checkpoint(make_checkpoint(model, {"note": "test"}), path)
    return path


@pytest.mark.slow
def test_aigd_through_the_denoise_and_evaluate_jobs_on_real_ray(
    ray_local, tmp_path, tiny_aigd_checkpoint, tiny_checkpoint, capsys
):
    import json
    import os

    import pyarrow.parquet as pq
    import soundfile as sf

    from pipeline.audio.demo_data import generate_pair
    from pipeline.core import schema as S
    from pipeline.denoise.job import DenoiseConfig, RunPaths, run_denoise
    from pipeline.evaluate.job import EvaluateConfig, run_evaluate
    from pipeline.inference.model_stage import ModelStageConfig

    root = str(tmp_path)
    os.makedirs(f"{root}/noisy"), os.makedirs(f"{root}/clean")
    rng = np.random.default_rng(5)
    for i in range(2):
        noisy, clean = generate_pair(1.0 + i, 5.0, 16000, rng)
        sf.write(f"{root}/noisy/c{i}.wav", noisy, 16000)
        sf.write(f"{root}/clean/c{i}.wav", clean, 16000)
    with open(f"{root}/noisy/broken.wav", "wb") as f:
        f.write(b"RIFF....WAVEjunk")

    # Denoise with the AIGD checkpoint: its stats land in the model_stats map, DiffGMM's columns stay empty.
    config = DenoiseConfig(
        input_uri=f"{root}/noisy",
        output_uri=f"{root}/out",
        run_id="a1",
        model=ModelStageConfig(checkpoint_uri=tiny_aigd_checkpoint),
    )
    run_denoise(config)
    rows = {r[S.INPUT_KEY]: r for r in pq.read_table(RunPaths.of(f"{root}/out", "a1").clips_uri).to_pylist()}
    assert set(rows) == {"c0.wav", "c1.wav", "broken.wav"} and rows["broken.wav"][S.STATUS] == "error"
    for key in ("c0.wav", "c1.wav"):
        row = rows[key]
        assert row[S.STATUS] == "ok" and row[S.MODEL_ID].startswith("aigd-")
        stats = dict(row[S.MODEL_STATS])
        assert set(stats) == {"image_ssim"} and 0.0 < stats["image_ssim"] <= 1.0
        assert row[S.GMM_NLL] is None
        out, rate = sf.read(f"{root}/out/runs/a1/audio/{key}")
        assert rate == 16000 and len(out) == len(sf.read(f"{root}/noisy/{key}")[0])

    # The report of the AIGD run shows its own stat beside each clip (and draws its distribution).
    from jobs.cli import main
    from pipeline.reporting.report import model_stat_values

    assert (
        main(["report", f"{root}/out", "--out", f"{root}/report.html", "--clips", "1", "--excerpt-seconds", "1"]) == 0
    )
    page = open(f"{root}/report.html", encoding="utf-8").read()
    facts = re.findall(r'<p class="facts">(.*?)</p>', page)
    assert len(facts) == 2 and all("image_ssim 0." in f and "gmm_nll" not in f for f in facts), (
        facts
    )  # one worst, one best
    table = pq.read_table(RunPaths.of(f"{root}/out", "a1").clips_uri)
    assert list(model_stat_values(table)) == ["image_ssim"] and len(model_stat_values(table)["image_ssim"]) == 2

    # Two neural models and a baseline in one evaluation table, each with its own model id and stats.
    models = ("diffgmm", f"small_aigd={tiny_aigd_checkpoint}", "noisy")
    evaluation = EvaluateConfig(
        clean_uri=f"{root}/clean",
        noisy_uri=f"{root}/noisy",
        output_uri=f"{root}/eval",
        run_id="e1",
        models=models,
        metrics=("si_sdr_db",),
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
    )
    summary = run_evaluate(evaluation)
    df = pq.read_table(f"{root}/eval/runs/e1/clips").to_pandas()
    ok = df[df[S.STATUS] == "ok"]
    assert sorted(ok[S.MODEL].unique()) == ["diffgmm", "noisy", "small_aigd"] and len(ok) == 6
    assert ok[ok[S.MODEL] == "small_aigd"][S.MODEL_ID].str.startswith("aigd-").all()
    assert ok[ok[S.MODEL] == "diffgmm"][S.MODEL_ID].str.startswith("diffgmm-").all()
    aigd_stats = [dict(m) for m in ok[ok[S.MODEL] == "small_aigd"][S.MODEL_STATS]]
    gmm_stats = [dict(m) for m in ok[ok[S.MODEL] == "diffgmm"][S.MODEL_STATS]]
    assert all("image_ssim" in m for m in aigd_stats) and all(
        "gmm_nll" in m and "gmm_occupancy_0" in m for m in gmm_stats
    )
    # The two neural models produced different audio (their scores differ), so the columns did not cross.
    by_model = ok.pivot(index=S.NOISY_KEY, columns=S.MODEL, values="si_sdr_db")
    assert (by_model["diffgmm"] - by_model["small_aigd"]).abs().max() > 1e-3
    assert set(summary["model_ids"]) == {"diffgmm", "small_aigd"}

    # `diffgmm query --model-stats` on the evaluation: each label's own stats, nothing crossed.
    capsys.readouterr()
    assert main(["query", f"{root}/eval", "--model-stats", "--run-id", "e1", "--format", "json"]) == 0
    stats = {(s[S.MODEL], s["stat"]): s for s in json.loads(capsys.readouterr().out)}
    assert {m for m, _ in stats} == {"diffgmm", "small_aigd"} and ("small_aigd", "gmm_nll") not in stats
    assert stats[("small_aigd", "image_ssim")]["mean"] == pytest.approx(np.mean([m["image_ssim"] for m in aigd_stats]))
    assert stats[("diffgmm", "gmm_nll")]["clips"] == 2


def test_unknown_evaluation_model_names_the_choices():
    from pipeline.evaluate.job import EvaluateConfig

    with pytest.raises(ValueError, match="LABEL=CHECKPOINT"):
        EvaluateConfig(clean_uri="a", noisy_uri="b", output_uri="c", models=("diffgmm", "aigdd"))
    with pytest.raises(ValueError, match="once"):
        EvaluateConfig(clean_uri="a", noisy_uri="b", output_uri="c", models=("x=a.pt", "x=b.pt"))


def test_the_papers_configuration_is_a_recipe_of_the_papers_size():
    from pipeline.core.config import load_yaml
    from pipeline.train.configs import TrainConfig

    recipe = load_yaml(TrainConfig, str(RECIPE.with_name("train-aigd-paper.yaml")))
    c = recipe.model
    assert (c.n_fft, c.win_length, c.window, c.image_width, c.mode) == (1023, 1000, "hamming", 512, "split")
    assert c.stft_for(16000 * 3).hop_length == 16000 * 3 // 512 and 1023 // 2 + 1 == 512
    params = sum(p.numel() for p in AIGD(c).parameters())
    assert 25e6 < params < 40e6, params  # the paper reports 35 M


def test_the_shipped_aigd_checkpoint_came_from_its_recipe():
    """Stage 1 (train-aigd.yaml), then stage 2 with the magnitude term, launched as train-aigd-stage2.yaml
    plus overrides: the recipe file, unchanged since (its hash), with those overrides is train-aigd-stage2-mag.yaml."""

    from pipeline.core.checkpoints import load_model
    from pipeline.core.config import load_yaml
    from pipeline.train.configs import TrainConfig

    shipped = load_model("aigd")
    meta, root = shipped.metadata, RECIPE.parents[2]
    machine = ("storage_path", "init_checkpoint_uri", "data.clean_uri", "data.noise_uri")  # this machine's paths
    overrides = recorded_overrides(meta, machine)
    recipe = load_yaml(TrainConfig, str(RECIPE.parent / "train-aigd-stage2-mag.yaml"))
    assert load_yaml(TrainConfig, str(root / meta["recipe"]), overrides) == recipe
    assert (
        shipped.model.name == "aigd"
        and shipped.model.config == recipe.model == load_yaml(TrainConfig, str(RECIPE)).model
    )
    assert meta["step"] > 0 and Path(shipped.uri).stat().st_size < 20e6


@pytest.mark.parametrize("command", ["denoise", "nightly", "evaluate", "enhance"])
def test_every_job_picks_a_model_by_name_with_model_or_checkpoint(command):
    from jobs.cli import build_parser

    head = {"enhance": ["enhance", "x.wav", "--output-dir", "o"]}.get(command, [command])
    for flag in ("--model", "--checkpoint"):
        args = build_parser().parse_args([*head, flag, "aigd"])
        assert args.checkpoint == "aigd", (command, flag)
