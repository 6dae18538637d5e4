"""The shipped recipe: `diffgmm train --executor local` runs it without Ray, resumes it, and records it."""

import hashlib
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml
from conftest import SMALL_STFT_CONFIG

from jobs.cli import main

RECIPE = Path(__file__).resolve().parents[1] / "jobs" / "configs" / "train-default.yaml"


def _corpus(root: str, rng) -> None:
    from pipeline.audio.demo_data import noise_like, speech_like

    os.makedirs(f"{root}/clean"), os.makedirs(f"{root}/noise")
    for i in range(5):
        sf.write(f"{root}/clean/spk{i}_utt.flac", speech_like(2.5, 16000, rng), 16000)
    for i in range(3):
        sf.write(f"{root}/noise/n{i}.flac", 0.1 * noise_like(3.0, 16000, rng), 16000)
    # An excluded prefix (licence) that must never be read.
    sf.write(f"{root}/noise/zalozba_crowd.flac", 0.1 * noise_like(3.0, 16000, rng), 16000)


def _train(root: str, epochs: int) -> int:
    tiny = [f"model.{k}={v}" for k, v in SMALL_STFT_CONFIG.items()]
    sets = [
        *tiny,
        f"storage_path={root}/runs",
        f"data.clean_uri={root}/clean",
        f"data.noise_uri={root}/noise",
        "data.valid_pairs=1",
        "data.valid_segment_seconds=1.0",
        "mix.segment_seconds=0.5",
        "optim.batch_size=2",
        "optim.steps_per_epoch=2",
        f"optim.epochs={epochs}",
        "optim.warmup_steps=1",
    ]
    argv = ["train", "--config", str(RECIPE), "--executor", "local", "--device", "cpu", "--name", "tiny"]
    for s in sets:
        argv += ["--set", s]
    return main(argv)


def test_recipe_trains_without_ray_resumes_and_names_itself(tmp_path, rng):
    root = str(tmp_path)
    _corpus(root, rng)
    assert _train(root, epochs=1) == 0
    run = Path(root, "runs", "tiny")
    last = torch.load(run / "last.pt", weights_only=True)
    meta = last["metadata"]
    assert meta["step"] == 2 and meta["trainer_state"]["step"] == 2 and meta["examples"] == 4
    assert meta["recipe"] == str(RECIPE) and meta["executor"] == "local"
    assert meta["recipe_sha256"] == hashlib.sha256(RECIPE.read_bytes()).hexdigest()
    assert meta["overrides"]["model.representation"] == "stft"
    assert last["model_config"]["representation"] == "stft" and last["model_config"]["n_fft"] == 64
    assert np.isfinite(meta["val"]["pesq_wb"]) and (run / "best.pt").exists()
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["config"]["optim"]["epochs"] == 1 and resolved["run"]["recipe"] == str(RECIPE)
    # The licence exclusion of the recipe applies: the excluded file is in no split.
    from pipeline.core.config import load_yaml
    from pipeline.train.configs import TrainConfig
    from pipeline.train.data import corpus_keys

    config = load_yaml(TrainConfig, str(RECIPE), {"data.clean_uri": f"{root}/clean", "data.noise_uri": f"{root}/noise"})
    keys = corpus_keys(config)
    assert not any("zalozba" in k for split in keys.values() for k in split)

    # The same name with a longer budget continues from step 2, with the optimizer state.
    assert _train(root, epochs=2) == 0
    again = torch.load(run / "last.pt", weights_only=True)
    assert again["metadata"]["step"] == 4
    assert not torch.equal(again["state_dict"]["head.weight"], last["state_dict"]["head.weight"])


def test_the_shipped_checkpoint_came_from_the_recipe():
    from pipeline.core.checkpoints import load_model
    from pipeline.core.config import load_yaml
    from pipeline.train.configs import TrainConfig

    recipe = load_yaml(TrainConfig, str(RECIPE))
    shipped = load_model()
    assert shipped.model.config == recipe.model
    meta = shipped.metadata
    assert meta["recipe"].endswith("jobs/configs/train-default.yaml")
    assert meta["step"] > 0 and meta["executor"] in ("local", "ray")
    assert meta["step"] <= recipe.optim.total_steps
