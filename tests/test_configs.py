"""Every shipped job config loads into its dataclass (unknown keys would be an error)."""

from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_yaml
from pipeline.denoise import DenoiseConfig
from pipeline.train_job import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "jobs" / "configs"


def test_denoise_example_config_loads():
    config = load_yaml(DenoiseConfig, str(CONFIGS / "denoise.yaml"))
    assert config.actors.max_actors == 4 and config.model.enhance.window.window_seconds == 2.0


def test_default_training_recipe_loads_and_matches_the_shipped_model():
    from pipeline.checkpoints import load_model

    config = load_yaml(TrainConfig, str(CONFIGS / "train-default.yaml"))
    shipped = load_model().model.config
    assert (config.model.num_steps, config.model.num_components) == (shipped.num_steps, shipped.num_components)
    assert config.loss.stft_weight == 0.0 and "zalozba_" in config.data.exclude_prefixes


def test_overrides_are_typed_and_checked(tmp_path):
    config = load_yaml(TrainConfig, str(CONFIGS / "train-default.yaml"), {"optim.epochs": 3, "model.num_components": 1})
    assert config.optim.epochs == 3 and config.model.num_components == 1
    with pytest.raises(ConfigError, match="learning_rat"):
        load_yaml(TrainConfig, str(CONFIGS / "train-default.yaml"), {"optim.learning_rat": 1.0})
    with pytest.raises(ConfigError, match="expected int"):
        load_yaml(TrainConfig, str(CONFIGS / "train-default.yaml"), {"optim.epochs": "many"})


@pytest.mark.parametrize(
    "actors, cluster, expected",
    [
        ({}, {"CPU": 2.0}, (False, 2, 2)),  # 3/4 of 2 CPUs at 0.75 each
        ({}, {"CPU": 16.0}, (False, 16, 16)),
        ({}, {"CPU": 1.0}, (False, 1, 1)),
        ({}, {"CPU": 32.0, "GPU": 4.0}, (True, 4, 4)),  # one per GPU
        ({"gpus_per_actor": 0.5}, {"CPU": 8.0, "GPU": 2.0}, (True, 4, 4)),
        ({"use_gpu": "no"}, {"CPU": 4.0, "GPU": 1.0}, (False, 4, 4)),
        ({"use_gpu": "yes"}, {"CPU": 4.0}, (True, 1, 1)),
        ({"min_actors": 1, "max_actors": 4}, {"CPU": 2.0}, (False, 1, 4)),
        ({"max_actors": 3}, {"CPU": 64.0}, (False, 3, 3)),
    ],
)
def test_actor_pool_size_follows_the_cluster(actors, cluster, expected):
    from pipeline.denoise import ActorConfig

    assert ActorConfig(**actors).resolve(cluster) == expected


def test_automatic_actor_pool_never_exceeds_the_input_blocks():
    from pipeline.denoise import ActorConfig

    assert ActorConfig().resolve({"CPU": 16.0}, blocks=3) == (False, 3, 3)
    assert ActorConfig().resolve({"CPU": 32.0, "GPU": 4.0}, blocks=1) == (True, 1, 1)
    assert ActorConfig(max_actors=4).resolve({"CPU": 16.0}, blocks=1) == (False, 4, 4)  # explicit wins


def test_actor_settings_are_checked_for_every_job_that_wires_the_model():
    from pipeline.denoise import ActorConfig
    from pipeline.evaluate import EvaluateConfig

    with pytest.raises(ValueError, match="use_gpu"):
        ActorConfig(use_gpu="maybe")
    same = ActorConfig(cpus_per_actor=0.5)
    with pytest.raises(ValueError, match="fuses"):
        DenoiseConfig(input_uri="a", output_uri="b", cpus_per_cpu_task=0.5, actors=same)
    with pytest.raises(ValueError, match="fuses"):
        EvaluateConfig(output_uri="b", clean_uri="c", noisy_uri="n", cpus_per_cpu_task=0.5, actors=same)
    DenoiseConfig(input_uri="a", output_uri="b", cpus_per_cpu_task=0.5, actors=ActorConfig(cpus_per_actor=0.75))
