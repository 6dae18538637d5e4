"""Every shipped job config loads into its dataclass (unknown keys would be an error)."""

from pathlib import Path

import pytest

from pipeline.core.config import ConfigError, load_yaml
from pipeline.denoise.job import DenoiseConfig
from pipeline.train.configs import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "jobs" / "configs"


@pytest.mark.parametrize("recipe", sorted(p.name for p in CONFIGS.glob("train-*.yaml")))
def test_every_training_recipe_loads(recipe):
    config = load_yaml(TrainConfig, str(CONFIGS / recipe))
    from model.registry import MODELS

    assert config.optim.total_steps > 0 and config.model_name in MODELS


def test_the_second_aigd_stage_starts_from_the_first_and_keeps_its_validation_set():
    first = load_yaml(TrainConfig, str(CONFIGS / "train-aigd.yaml"))
    second = load_yaml(TrainConfig, str(CONFIGS / "train-aigd-stage2.yaml"))
    assert second.init_checkpoint_uri == f"{first.storage_path}/{first.name}/best.pt"
    assert second.model == first.model and second.data == first.data and second.optim.seed != first.optim.seed


def test_the_magnitude_stage_is_stage_two_plus_the_magnitude_term_only():
    import dataclasses

    stage2 = load_yaml(TrainConfig, str(CONFIGS / "train-aigd-stage2.yaml"))
    mag = load_yaml(TrainConfig, str(CONFIGS / "train-aigd-stage2-mag.yaml"))
    assert mag.loss.mag_weight > 0 and stage2.loss.mag_weight == 0
    assert dataclasses.replace(mag, name=stage2.name, loss=stage2.loss) == stage2


def test_denoise_example_config_loads():
    config = load_yaml(DenoiseConfig, str(CONFIGS / "denoise.yaml"))
    assert config.actors.max_actors == 4 and config.model.enhance.window.window_seconds == 2.0


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
    from pipeline.inference.actors import ActorConfig

    assert ActorConfig(**actors).resolve(cluster) == expected


def test_automatic_actor_pool_never_exceeds_the_input_blocks():
    from pipeline.inference.actors import ActorConfig

    assert ActorConfig().resolve({"CPU": 16.0}, blocks=3) == (False, 3, 3)
    assert ActorConfig().resolve({"CPU": 32.0, "GPU": 4.0}, blocks=1) == (True, 1, 1)
    assert ActorConfig(max_actors=4).resolve({"CPU": 16.0}, blocks=1) == (False, 4, 4)  # explicit wins


def test_actor_settings_are_checked_for_every_job_that_wires_the_model():
    from pipeline.evaluate.job import EvaluateConfig
    from pipeline.inference.actors import ActorConfig

    with pytest.raises(ValueError, match="use_gpu"):
        ActorConfig(use_gpu="maybe")
    same = ActorConfig(cpus_per_actor=0.5)
    with pytest.raises(ValueError, match="fuses"):
        DenoiseConfig(input_uri="a", output_uri="b", cpus_per_cpu_task=0.5, actors=same)
    with pytest.raises(ValueError, match="fuses"):
        EvaluateConfig(output_uri="b", clean_uri="c", noisy_uri="n", cpus_per_cpu_task=0.5, actors=same)
    DenoiseConfig(input_uri="a", output_uri="b", cpus_per_cpu_task=0.5, actors=ActorConfig(cpus_per_actor=0.75))


@pytest.mark.parametrize(
    "override, message",
    [
        ({"write.metrics": ["pesq_wbb"]}, "unknown metrics \\['pesq_wbb'\\]"),
        ({"write.output_format": "mp4"}, "write.output_format must be one of"),
        ({"decode.channel_policy": "left"}, "decode.channel_policy must be one of"),
        ({"write.dnsmos.hop_seconds": 0}, "hop_seconds"),
    ],
)
def test_denoise_config_typos_are_refused_before_anything_runs(override, message):
    with pytest.raises(ConfigError, match=message):
        load_yaml(DenoiseConfig, str(CONFIGS / "denoise.yaml"), override)


def test_dnsmos_is_a_known_metric_and_off_by_default():
    config = load_yaml(DenoiseConfig, str(CONFIGS / "denoise.yaml"), {"write.metrics": ["pesq_wb", "dnsmos"]})
    assert config.write.wants_dnsmos and config.write.reference_metrics == ("pesq_wb",)
    assert not load_yaml(DenoiseConfig, str(CONFIGS / "denoise.yaml")).write.wants_dnsmos


def test_lr_schedule_is_a_function_of_the_step():
    from pipeline.train.configs import OptimConfig

    optim = OptimConfig(
        learning_rate=1e-3, steps_per_epoch=10, epochs=10, lr_schedule="cosine", lr_min_fraction=0.1, warmup_steps=10
    )
    assert optim.learning_rate_at(0) == pytest.approx(1e-4) and optim.learning_rate_at(9) == pytest.approx(1e-3)
    assert optim.learning_rate_at(10) == pytest.approx(1e-3)
    assert optim.learning_rate_at(55) == pytest.approx(0.55e-3, rel=1e-6)  # half-way: the mean of max and min
    assert optim.learning_rate_at(100) == pytest.approx(1e-4)
    assert OptimConfig(learning_rate=1e-3).learning_rate_at(123) == 1e-3
    with pytest.raises(ValueError, match="lr_schedule"):
        OptimConfig(lr_schedule="step")


@pytest.mark.parametrize(
    "override",
    [
        {"actors.max_actors": -1},
        {"actors.min_actors": 3, "actors.max_actors": 2},
        {"actors.cpus_per_actor": 0},
        {"actors.cpu_actor_share": 1.5},
    ],
)
def test_actor_settings_out_of_range_are_refused(override):
    with pytest.raises(ConfigError, match="actors"):
        load_yaml(DenoiseConfig, str(CONFIGS / "denoise.yaml"), override)
