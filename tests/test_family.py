"""The model-family contract (model/family.py) as the pipeline honours it.

Clip families get one clip at a time, in chunks with state; a sampling family is
reproducible through the explicit generator; the one training loop runs paired data
locally and adds up the compute of resumed runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_CONFIG, ParameterFreeFamily, paired_tree

from model import DiffGMM, DiffGMMConfig
from pipeline.audio.windowing import WindowConfig
from pipeline.inference.enhance import EnhanceConfig, Enhancer


class RunningMeanClip(ParameterFreeFamily):
    """A toy "clip" family: each output sample is the input minus the running mean of the clip so far.

    The running (sum, count) is the state carried chunk to chunk, so the output of a chunk
    depends on every earlier chunk of the same clip, and chunked equals whole only if the
    pipeline carries the state right and never mixes clips. ``calls`` records (chunk length,
    state given?) for every call; ``seen`` the chunks themselves.
    """

    name = "running_mean"
    input_unit = "clip"

    class config:  # noqa: N801 - mimics a dataclass instance attribute
        sample_rate = 16000
        chunk_seconds = 0.1

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.seen: list[np.ndarray] = []

    def enhance_chunk(self, chunk, state, generator=None):
        self.calls.append((len(chunk), state is not None))
        self.seen.append(chunk.numpy().copy())
        total = state["sum"] if state else torch.zeros((), dtype=torch.float64)
        count = state["count"] if state else torch.zeros((), dtype=torch.float64)
        cumsum = total + torch.cumsum(chunk.double(), 0)
        counts = count + torch.arange(1, len(chunk) + 1, dtype=torch.float64)
        out = (chunk.double() - cumsum / counts).float()
        return out, {"mean_level": chunk.abs().mean()}, {"sum": cumsum[-1], "count": counts[-1]}


def running_mean_reference(x: np.ndarray) -> np.ndarray:
    wide = x.astype(np.float64)
    return (wide - np.cumsum(wide) / np.arange(1, len(x) + 1)).astype(np.float32)


def test_clip_family_chunked_equals_whole_and_state_carries(rng):
    model = RunningMeanClip()
    enhancer = Enhancer(model, EnhanceConfig(device="cpu"))
    x = (0.1 * rng.standard_normal(5555)).astype(np.float32)
    out, stats = enhancer.enhance(x, 16000)
    np.testing.assert_allclose(out, running_mean_reference(x), atol=1e-6)
    # 0.1 s chunks: 1600, 1600, 1600, 755; the state is None only at the clip's start.
    assert model.calls == [(1600, False), (1600, True), (1600, True), (755, True)]
    assert stats["mean_level"] == pytest.approx(float(np.abs(x).mean()), rel=1e-5)


def test_clip_family_never_sees_two_clips_in_one_call(rng):
    model = RunningMeanClip()
    enhancer = Enhancer(model, EnhanceConfig(device="cpu", batch_windows=16))
    # Each clip is a constant of its own: a chunk holding two clips would hold two values.
    signals = [np.full(n, 0.01 * (i + 1), dtype=np.float32) for i, n in enumerate([100, 3000, 1600, 10])]
    results = enhancer.enhance_many(signals)
    assert all(len(np.unique(chunk)) == 1 for chunk in model.seen)
    assert [state for _, state in model.calls] == [False, False, True, False, False]
    for signal, (out, stats) in zip(signals, results):
        np.testing.assert_allclose(out, running_mean_reference(signal), atol=1e-6)
        assert stats["mean_level"] == pytest.approx(float(signal[0]))


def test_clip_family_streams_as_it_runs_whole(rng):
    model = RunningMeanClip()
    enhancer = Enhancer(model, EnhanceConfig(device="cpu"))
    x = (0.1 * rng.standard_normal(7001)).astype(np.float32)
    whole, whole_stats = enhancer.enhance_many([x])[0]
    # Pieces of a length unrelated to the chunk's: the stream re-chunks them.
    parts = list(enhancer.enhance_stream(iter([x[i : i + 999] for i in range(0, len(x), 999)]), len(x)))
    streamed = np.concatenate([p for p, _ in parts])
    assert streamed.shape == x.shape and parts[-1][1] is not None and all(s is None for _, s in parts[:-1])
    np.testing.assert_allclose(streamed, whole, atol=1e-7)
    assert parts[-1][1]["mean_level"] == pytest.approx(whole_stats["mean_level"], rel=1e-6)


def test_a_windows_only_path_refuses_a_clip_family():
    enhancer = Enhancer(RunningMeanClip(), EnhanceConfig(device="cpu"))
    with pytest.raises(ValueError, match="whole clips"):
        enhancer.enhance_windows(np.zeros((2, 100), dtype=np.float32))


def test_sampling_noise_estimate_is_reproducible_through_the_seed(rng):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DiffGMM(DiffGMMConfig(**{**TINY_CONFIG, "noise_estimate": "sample"}))
    x = (0.1 * rng.standard_normal(20000)).astype(np.float32)

    def run(seed: int) -> np.ndarray:
        config = EnhanceConfig(device="cpu", seed=seed, window=WindowConfig(0.5, 0.1), batch_windows=4)
        return Enhancer(model, config).enhance(x, 16000)[0]

    a, b, c = run(3), run(3), run(4)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-6)
    # The draw comes from the handed generator only: the global one is neither used nor moved.
    before = torch.random.get_rng_state()
    run(3)
    assert torch.equal(before, torch.random.get_rng_state())


def test_local_executor_trains_paired_data_and_adds_up_compute_on_resume(tmp_path, rng):
    from pipeline.audio.mixing import MixConfig
    from pipeline.train.configs import OptimConfig, TrainConfig
    from pipeline.train.executors import run_train_local

    root = str(tmp_path)
    data = paired_tree(root, rng)

    def config(epochs: int) -> TrainConfig:
        return TrainConfig(
            name="paired",
            storage_path=f"{root}/runs",
            model=DiffGMMConfig(**TINY_CONFIG),
            mix=MixConfig(segment_seconds=0.25),
            data=data,
            optim=OptimConfig(batch_size=2, steps_per_epoch=2, epochs=epochs),
        )

    first = run_train_local(config(1), device="cpu")
    assert (
        first["metrics"]["step"] == 2
        and first["resumed_from_step"] == 0
        and np.isfinite(first["metrics"]["val_pesq_wb"])
    )
    meta = torch.load(f"{root}/runs/paired/last.pt", weights_only=True)["metadata"]
    assert meta["executor"] == "local"
    assert meta["train_audio_seconds"] == pytest.approx(2 * 2 * 0.25)
    assert meta["train_cpu_seconds"] > 0
    second = run_train_local(config(2), device="cpu")
    assert second["resumed_from_step"] == 2 and second["metrics"]["step"] == 4
    again = torch.load(f"{root}/runs/paired/last.pt", weights_only=True)["metadata"]
    assert again["train_audio_seconds"] == pytest.approx(4 * 2 * 0.25)
    assert again["train_cpu_seconds"] > meta["train_cpu_seconds"]
    assert again["trainer_state"]["audio_seconds"] == again["train_audio_seconds"]
    # The validation history survives the resume: one entry per epoch, CPU-seconds rising, the last one the run's.
    history = again["history"]
    assert [e["step"] for e in history] == [2, 4]
    assert history[0]["cpu_seconds"] == pytest.approx(meta["train_cpu_seconds"])
    assert history[1]["cpu_seconds"] == pytest.approx(again["train_cpu_seconds"])
    assert history[1]["cpu_seconds"] > history[0]["cpu_seconds"]
    assert history[1]["val"]["pesq_wb"] == pytest.approx(second["metrics"]["val_pesq_wb"])
    from bench.quality_curves import best_points, load_history, markdown

    rows = best_points({"paired": load_history(f"{root}/runs/paired/last.pt")})
    assert rows[0]["step"] in (2, 4) and "| paired |" in markdown(rows)


@pytest.mark.parametrize("name", sorted(__import__("model.registry", fromlist=["MODELS"]).MODELS))
def test_every_registered_family_meets_the_contract(name):
    """Each registered family: its key is its name, a known input unit, a config with a rate, a working enhance and loss."""
    import dataclasses
    import inspect

    from model.family import INPUT_UNITS, ModelFamily
    from model.registry import build_model, spec

    s = spec(name)
    model = build_model(name).eval()
    assert model.name == name and isinstance(model, ModelFamily) and model.input_unit in INPUT_UNITS
    assert {f.name for f in dataclasses.fields(s.config_cls)} >= {"sample_rate"}
    params = {id(p) for p in model.parameters()}
    assert {id(p) for p in model.trainable_parameters()} <= params
    generator = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(2, int(model.config.sample_rate) // 4, generator=generator)
    if model.input_unit == "windows":
        assert "generator" in inspect.signature(model.enhance).parameters
        out, stats = model.enhance(x, generator=generator)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert all(v.shape[0] == 2 for v in stats.values())
    else:
        assert float(model.config.chunk_seconds) > 0
        out, stats, state = model.enhance_chunk(x[0], None, generator=generator)
        assert out.shape == x[0].shape and isinstance(state, dict)
    total, parts = s.loss(model.train(), x, 0.5 * x, s.loss_config_cls(), torch.Generator().manual_seed(1))
    assert total.dim() == 0 and np.isfinite(parts["total"])
    total.backward()


@pytest.mark.parametrize("policy", ["downmix", "per_channel"])
def test_long_file_streaming_gives_a_clip_family_whole_channels_in_chunks(tmp_path, rng, policy):
    from pipeline.core.storage import StorageConfig
    from pipeline.inference.longform import LongFileWriter, StreamConfig

    rate, frames = 16000, 16000 * 3 + 77
    samples = (0.1 * rng.standard_normal((2, frames)) + np.array([[0.05], [-0.05]])).astype(np.float32)
    sf.write(tmp_path / "long.wav", samples.T, rate, subtype="FLOAT")
    model = RunningMeanClip()
    enhancer = Enhancer(model, EnhanceConfig(device="cpu"))
    writer = LongFileWriter(
        str(tmp_path), str(tmp_path / "out"), policy, "same", StreamConfig(block_seconds=0.33), StorageConfig()
    )
    result = writer.run(enhancer, "long.wav", "long.wav", "WAV", "FLOAT")
    out = sf.read(tmp_path / "out" / "long.wav", dtype="float32", always_2d=True)[0].T
    channels = samples if policy == "per_channel" else samples.mean(axis=0, keepdims=True)
    # The running mean carries over every chunk and block boundary of each channel, and never across channels.
    np.testing.assert_allclose(out, np.stack([running_mean_reference(c) for c in channels]), atol=1e-5)
    assert all(n <= 1600 for n, _ in model.calls) and sum(n for n, _ in model.calls) == frames * len(channels)
    assert sum(not carried for _, carried in model.calls) == len(channels)
    assert result.stats["mean_level"] == pytest.approx(float(np.mean([np.abs(c).mean() for c in channels])), rel=1e-3)
