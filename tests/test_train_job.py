"""Ray Train: a 2-worker CPU run on tiny generated data, resume, export, and the mixing maths."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_CONFIG

from model import DiffGMMConfig
from pipeline.audio.mixing import MixConfig, mix_at_snr, mix_example, snr_db
from pipeline.train.configs import DataConfig, OptimConfig, ScalingConfig, TrainConfig
from pipeline.train.executors import run_train


def test_mixing_hits_the_requested_snr_and_is_reproducible(rng):
    clean = rng.standard_normal(16000).astype(np.float32)
    noise = rng.standard_normal(24000).astype(np.float32)
    for target in (-5.0, 0.0, 7.5, 20.0):
        noisy, scaled = mix_at_snr(clean, noise[:16000], target)
        assert abs(snr_db(clean, scaled) - target) < 0.1
        np.testing.assert_allclose(noisy - clean, scaled, atol=1e-6)
    config = MixConfig(segment_seconds=0.5, snr_db_min=0.0, snr_db_max=10.0)
    a = mix_example(clean, noise, config, np.random.default_rng([0, 5]))
    b = mix_example(clean, noise, config, np.random.default_rng([0, 5]))
    c = mix_example(clean, noise, config, np.random.default_rng([0, 6]))
    assert np.array_equal(a[0], b[0]) and a[2] == b[2] and not np.array_equal(a[0], c[0])
    noisy, target, snr = a
    assert 0.0 <= snr <= 10.0 and abs(snr_db(target, noisy - target) - snr) < 0.1
    assert np.abs(noisy).max() < 1.0


def _corpus(root, rng):
    from pipeline.audio.demo_data import noise_like, speech_like

    os.makedirs(f"{root}/clean"), os.makedirs(f"{root}/noise")
    for i in range(6):
        sf.write(f"{root}/clean/spk{i}_utt.wav", speech_like(2.0, 16000, rng), 16000)
    for i in range(3):
        sf.write(f"{root}/noise/n{i}.wav", 0.1 * noise_like(3.0, 16000, rng), 16000)


def _ray_checkpoints(run_dir: str) -> list[str]:
    return [p for p in os.listdir(run_dir) if p.startswith("checkpoint_") and os.path.isdir(os.path.join(run_dir, p))]


@pytest.mark.slow
def test_two_worker_training_resumes_and_exports(ray_local, tmp_path, rng, monkeypatch):
    """A relative ``storage_path``, as the shipped recipes have (``runs/train``): the run folder is the one
    under the driver's directory, with the local executor's layout, although Ray Train runs its workers
    in a directory of its own."""
    from pipeline.core.checkpoints import export_checkpoint, load_model
    from pipeline.denoise.job import DenoiseConfig, run_denoise
    from pipeline.inference.model_stage import ModelStageConfig

    root = str(tmp_path)
    _corpus(root, rng)
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(
        name="tiny",
        storage_path="train",
        model=DiffGMMConfig(**TINY_CONFIG),
        mix=MixConfig(segment_seconds=0.5),
        data=DataConfig(
            mode="mix",
            clean_uri=f"{root}/clean",
            noise_uri=f"{root}/noise",
            clean_holdout_fraction=0.3,
            noise_holdout_fraction=0.3,
            valid_pairs=2,
            valid_segment_seconds=1.0,
        ),
        optim=OptimConfig(learning_rate=3e-3, batch_size=4, steps_per_epoch=4, epochs=1),
        scaling=ScalingConfig(num_workers=2, cpus_per_worker=0.5, cpus_per_data_actor=0.25),
    )
    first = run_train(config)
    assert first["run_uri"] == "train/tiny"  # as given: what `diffgmm train` prints and the README exports from
    assert first["resumed_from_step"] == 0
    assert first["metrics"]["step"] == 4
    assert np.isfinite(first["metrics"]["val_pesq_wb"]) and np.isfinite(first["metrics"]["val_si_sdr_db"])
    assert first["metrics"]["audio_seconds_per_second_per_worker"] > 0
    last = torch.load(f"{root}/train/tiny/last.pt", weights_only=True)
    assert last["metadata"]["trainer_state"]["step"] == 4
    assert os.path.exists(f"{root}/train/tiny/best.pt") and os.path.exists(f"{root}/train/tiny/config.yaml")
    # No Ray checkpoint copies of the model: Ray's one checkpoint_<time>/ holds the metrics it reports, nothing else.
    ray_checkpoints = _ray_checkpoints(f"{root}/train/tiny")
    assert len(ray_checkpoints) == 1, os.listdir(f"{root}/train/tiny")
    assert os.listdir(f"{root}/train/tiny/{ray_checkpoints[0]}") == ["metrics.json"]

    # A rerun with the same name and more epochs continues from step 4.
    longer = TrainConfig(
        **{**config.__dict__, "optim": OptimConfig(learning_rate=3e-3, batch_size=4, steps_per_epoch=4, epochs=2)}
    )
    second = run_train(longer)
    assert second["resumed_from_step"] == 4
    assert second["metrics"]["step"] == 8
    resumed = torch.load(f"{root}/train/tiny/last.pt", weights_only=True)["metadata"]
    assert resumed["trainer_state"]["step"] == 8 and [h["step"] for h in resumed["history"]] == [4, 8]
    assert len(_ray_checkpoints(f"{root}/train/tiny")) == 1  # CheckpointConfig(num_to_keep=1)

    export_checkpoint(f"{root}/train/tiny/best.pt", f"{root}/model.pt")
    loaded = load_model(f"{root}/model.pt")
    assert "optimizer" not in loaded.metadata and loaded.model.config.num_steps == TINY_CONFIG["num_steps"]
    summary = run_denoise(
        DenoiseConfig(
            input_uri=f"{root}/clean",
            output_uri=f"{root}/den",
            run_id="x",
            model=ModelStageConfig(checkpoint_uri=f"{root}/model.pt"),
        )
    )
    assert summary["ok"] == 6


def test_training_loss_falls_on_a_fixed_batch():
    from model import DiffGMM, LossConfig
    from pipeline.train.steps import train_step

    torch.manual_seed(0)
    model = DiffGMM(DiffGMMConfig(**TINY_CONFIG))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / 16000
    clean = (0.3 * torch.sin(2 * torch.pi * 300 * t)).repeat(4, 1)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    losses = [train_step(model, opt, noisy, clean, LossConfig())["l1"] for _ in range(150)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
