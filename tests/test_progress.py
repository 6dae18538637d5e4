"""Progress of batch jobs: a rate-limited line without a terminal, a bar with one, counted on the driver."""

from __future__ import annotations

import logging

import numpy as np
import soundfile as sf
from conftest import TINY_CONFIG, paired_tree

from pipeline.core.progress import Progress, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_lines_come_at_most_every_n_seconds(caplog):
    clock = FakeClock()
    progress = Progress("denoise", 10, every_seconds=30.0, tty=False, clock=clock)
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        for _ in range(7):  # 7 inputs of 2 s, one every 10 s: lines at 30 s and 60 s only
            clock.now += 10.0
            progress.update(1, 2.0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "denoise: 3/10 inputs, 0.00 audio-h, 0.2x real time, ETA 1m10s",
        "denoise: 6/10 inputs, 0.00 audio-h, 0.2x real time, ETA 40s",
    ]


def test_a_terminal_gets_a_bar_and_no_lines(caplog, capsys):
    progress = Progress("evaluate", 4, every_seconds=0.0, tty=True)
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        progress.update(2, 7200.0)
        progress.close()
    assert not caplog.records
    err = capsys.readouterr().err
    assert "evaluate" in err and "2/4" in err and "2.00 audio-h" in err


def test_durations_read_at_a_glance():
    assert [format_duration(s) for s in (0, 42, 130, 3 * 3600 + 300)] == ["0s", "42s", "2m10s", "3h05m"]


def test_a_real_denoise_logs_done_over_total(ray_local, tiny_checkpoint, tmp_path, caplog):
    from pipeline.audio.demo_data import generate_pair
    from pipeline.denoise.job import DenoiseConfig, run_denoise
    from pipeline.inference.actors import ActorConfig
    from pipeline.inference.model_stage import ModelStageConfig

    (tmp_path / "in").mkdir()
    for i in range(6):
        sf.write(tmp_path / "in" / f"c{i}.wav", generate_pair(0.5, 5.0, 16000, np.random.default_rng(i))[0], 16000)
    config = DenoiseConfig(
        input_uri=str(tmp_path / "in"),
        output_uri=str(tmp_path / "out"),
        run_id="p",
        progress_seconds=1e-6,
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
        actors=ActorConfig(max_actors=1, clips_per_batch=2),
    )
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        run_denoise(config)
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.core.progress"]
    assert lines and lines[-1].startswith("denoise: 6/6 inputs, 0.00 audio-h,"), lines
    import ray.data

    assert ray.data.DataContext.get_current().enable_progress_bars is False


def test_training_logs_step_of_total_rate_and_eta(tmp_path, rng, caplog, monkeypatch):
    from model.diffgmm import DiffGMMConfig
    from pipeline.audio.mixing import MixConfig
    from pipeline.train import loop
    from pipeline.train.configs import OptimConfig, TrainConfig
    from pipeline.train.executors import run_train_local

    data = paired_tree(str(tmp_path), rng)
    monkeypatch.setattr(loop, "LOG_EVERY_STEPS", 1)
    config = TrainConfig(
        name="eta",
        storage_path=f"{tmp_path}/runs",
        model=DiffGMMConfig(**TINY_CONFIG),
        mix=MixConfig(segment_seconds=0.25),
        data=data,
        optim=OptimConfig(batch_size=2, steps_per_epoch=3, epochs=1),
    )
    with caplog.at_level(logging.INFO, logger="pipeline.train.loop"):
        run_train_local(config, device="cpu")
    lines = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("step ") and "audio-s/s" in r.getMessage()
    ]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"], lines
    assert lines[-1].endswith("ETA 0s") and "ETA" in lines[0]
