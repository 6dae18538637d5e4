"""The train job on a clean-only family (UDiffSE): data.mode clean, no noise files, held-out DSM validation."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import recorded_overrides

TINY = {"channels": 4, "groups": 4, "channel_mults": [1, 2], "num_e": 2, "num_em": 1}


def test_udiffse_trains_locally_on_clean_only_and_checkpoint_says_no_noise(tmp_path, rng):
    from model import model_from_checkpoint
    from pipeline.audio.demo_data import speech_like
    from pipeline.core.config import load_yaml
    from pipeline.train.configs import TrainConfig
    from pipeline.train.executors import run_train_local

    os.makedirs(tmp_path / "clean")
    for i in range(10):
        sf.write(tmp_path / "clean" / f"spk{i}_utt.wav", speech_like(1.0, 16000, rng), 16000)
    overrides = {
        "data.clean_uri": str(tmp_path / "clean"),
        "storage_path": str(tmp_path / "runs"),
        "name": "u",
        "data.clean_holdout_fraction": 0.3,
        "data.valid_pairs": 2,
        "data.valid_segment_seconds": 0.5,
        "mix.segment_seconds": 0.5,
        "optim.batch_size": 2,
        "optim.steps_per_epoch": 2,
        "optim.epochs": 1,
        "optim.warmup_steps": 0,
        **{f"model.{k}": v for k, v in TINY.items()},
    }
    config = load_yaml(TrainConfig, "jobs/configs/train-udiffse.yaml", overrides)
    result = run_train_local(config, {"recipe": "jobs/configs/train-udiffse.yaml"}, device="cpu")
    assert result["metrics"]["step"] == 2 and np.isfinite(result["metrics"]["val_dsm"])
    ckpt = torch.load(tmp_path / "runs" / "u" / "last.pt", weights_only=True)
    meta = ckpt["metadata"]
    assert meta["data_mode"] == "clean" and meta["noise_files"] == "none" and meta["clean_files"] >= 1
    assert (
        meta["recipe"] == "jobs/configs/train-udiffse.yaml"
        and -meta["val"]["loss"] == meta["trainer_state"]["best_score"]
    )
    model, _ = model_from_checkpoint(torch.load(tmp_path / "runs" / "u" / "best.pt", weights_only=True))
    assert model.name == "udiffse" and model.config.num_e == 2


def test_clean_mode_refuses_noise_and_pair_families():
    from pipeline.train.configs import DataConfig, TrainConfig

    with pytest.raises(ValueError, match="no noise files"):
        TrainConfig(model_name="udiffse", data=DataConfig(**{"mode": "clean", "clean_uri": "c", "noise_uri": "n"}))
    with pytest.raises(ValueError, match="clean speech only"):
        TrainConfig(model_name="udiffse", data=DataConfig(**{"mode": "mix", "clean_uri": "c", "noise_uri": "n"}))
    with pytest.raises(ValueError, match="pairs"):
        TrainConfig(model_name="diffgmm", data=DataConfig(**{"mode": "clean", "clean_uri": "c"}))


def test_the_shipped_udiffse_checkpoint_came_from_its_recipe():
    """pipeline/assets/udiffse-default.pt: `diffgmm train --config jobs/configs/train-udiffse.yaml --executor local
    --set optim.epochs=8` (plus this machine's paths and a run name), from the recipe file as it is now (its hash)."""
    from pathlib import Path

    from pipeline.core.checkpoints import load_model
    from pipeline.core.config import load_yaml
    from pipeline.train.configs import TrainConfig

    root = Path(__file__).resolve().parents[1]
    shipped = load_model("udiffse")
    meta = shipped.metadata
    assert meta["recipe"] == "jobs/configs/train-udiffse.yaml"
    overrides = recorded_overrides(meta, ("storage_path", "name", "data.clean_uri"))
    # The one change: 2 000 steps, so that the cosine schedule ended inside one working session.
    assert overrides == {"optim.epochs": 8}
    recipe = load_yaml(TrainConfig, str(root / meta["recipe"]), overrides)
    assert meta["step"] == recipe.optim.epochs * recipe.optim.steps_per_epoch
    assert shipped.model.name == "udiffse" and shipped.model.config == recipe.model
    assert meta["data_mode"] == "clean" and meta["noise_files"] == "none"
    assert meta["train_cpu_seconds"] > 0 and Path(shipped.uri).stat().st_size < 20e6
