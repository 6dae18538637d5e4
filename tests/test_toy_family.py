"""A third model family registered in the test suite only, run through every command that takes a model.

``Gain`` (one parameter: out = g · in) is defined here and added to ``model.registry.MODELS``
by a fixture that removes it afterwards; nothing else in the code base names it. It goes
through ``diffgmm enhance``, ``diffgmm train --executor local``, ``diffgmm denoise`` on
real Ray and ``diffgmm evaluate``, which proves the pipeline needs nothing of a family but
the contract in model/family.py. Ray's workers are separate processes: this module starts
its own local cluster whose workers run :func:`register` at start (Ray's
``worker_process_setup_hook``), and restores the shared test cluster after.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

NAME = "toy_gain"


@dataclass(frozen=True)
class GainConfig:
    sample_rate: int = 16000


@dataclass(frozen=True)
class GainLossConfig:
    weight: float = 1.0


class Gain(nn.Module):
    """windows (batch, samples) float32 → g · windows; stat ``toy_gain`` (batch,): g."""

    name = NAME
    input_unit = "windows"

    def __init__(self, config: GainConfig | None = None) -> None:
        super().__init__()
        self.config = config or GainConfig()
        self.gain = nn.Parameter(torch.tensor(1.0))

    def trainable_parameters(self):
        return self.parameters()

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return noisy * self.gain

    @torch.inference_mode()
    def enhance(self, windows: torch.Tensor, generator: torch.Generator | None = None):
        return self(windows), {"toy_gain": self.gain.detach().expand(windows.shape[0]).clone()}


def gain_loss(model, noisy, clean, config: GainLossConfig, generator=None):
    """Mean squared error of g · noisy against clean, times ``weight``."""
    total = config.weight * (model(noisy) - clean).square().mean()
    return total, {"mse": float(total.detach()) / config.weight, "total": float(total.detach())}


def register() -> None:
    """Add the toy family to the registry (also Ray's worker setup hook)."""
    from model.registry import MODELS, ModelSpec

    MODELS[NAME] = ModelSpec(Gain, GainConfig, GainLossConfig, gain_loss)


@pytest.fixture(scope="module")
def toy_family():
    from model.registry import MODELS

    register()
    yield NAME
    del MODELS[NAME]


@pytest.fixture(scope="module")
def toy_ray(toy_family):
    """A local Ray cluster (2 CPUs) whose workers register the toy family; the shared one is restarted after."""
    import ray

    was_running = ray.is_initialized()
    ray.shutdown()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        runtime_env={
            "worker_process_setup_hook": "tests.test_toy_family.register",
            "env_vars": {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)},
        },
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
    if was_running:  # the session's ray_local fixture expects its cluster back
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False


@pytest.fixture(scope="module")
def half_gain_checkpoint(toy_family, tmp_path_factory) -> str:
    from model import make_checkpoint
    from pipeline.core.checkpoints import save_checkpoint

    model = Gain()
    with torch.no_grad():
        model.gain.fill_(0.5)
    path = str(tmp_path_factory.mktemp("toy") / "gain.pt")
    save_checkpoint(make_checkpoint(model, {"note": "toy"}), path)
    return path


def _clips(root: str, rng) -> None:
    from pipeline.audio.demo_data import generate_pair

    os.makedirs(f"{root}/noisy"), os.makedirs(f"{root}/clean")
    for i in range(2):
        noisy, clean = generate_pair(1.0 + i, 5.0, 16000, rng)
        sf.write(f"{root}/noisy/c{i}.wav", noisy, 16000, subtype="FLOAT")
        sf.write(f"{root}/clean/c{i}.wav", clean, 16000, subtype="FLOAT")


def test_toy_family_through_enhance(half_gain_checkpoint, tmp_path, rng, capsys):
    from jobs.cli import main

    root = str(tmp_path)
    _clips(root, rng)
    code = main(
        [
            "enhance",
            f"{root}/noisy/c0.wav",
            f"{root}/noisy/c1.wav",
            "--model",
            half_gain_checkpoint,
            "--output-dir",
            f"{root}/out",
            "--device",
            "cpu",
        ]
    )
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.out + captured.err
    assert "2 enhanced, 0 failed" in out and f"model {NAME}-" in out
    for i in range(2):
        noisy, _ = sf.read(f"{root}/noisy/c{i}.wav", dtype="float32")
        enhanced, rate = sf.read(f"{root}/out/c{i}.wav", dtype="float32")
        assert rate == 16000 and enhanced.shape == noisy.shape
        np.testing.assert_allclose(enhanced, 0.5 * noisy, atol=1e-6)


def test_toy_family_through_train_local(toy_family, tmp_path, rng):
    from jobs.cli import main

    root = str(tmp_path)
    _clips(root, rng)
    sets = [
        f"model_name={NAME}",
        f"storage_path={root}/runs",
        "data.mode=paired",
        f"data.paired_clean_uri={root}/clean",
        f"data.paired_noisy_uri={root}/noisy",
        "data.clean_holdout_fraction=0.0",
        f"data.valid_clean_uri={root}/clean",
        f"data.valid_noisy_uri={root}/noisy",
        "data.valid_pairs=1",
        "mix.segment_seconds=0.5",
        "optim.batch_size=2",
        "optim.steps_per_epoch=20",
        "optim.epochs=1",
        "optim.learning_rate=0.05",
        "loss.weight=2.0",
    ]
    argv = ["train", "--executor", "local", "--device", "cpu", "--name", "toy"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    last = torch.load(f"{root}/runs/toy/last.pt", weights_only=True)
    assert last["model_name"] == NAME and last["metadata"]["step"] == 20
    # The clean target is quieter than the noisy input: the one gain learnt to shrink.
    assert float(last["state_dict"]["gain"]) < 0.99
    assert last["metadata"]["train_audio_seconds"] == pytest.approx(20 * 2 * 0.5)


@pytest.mark.slow
def test_toy_family_through_denoise_and_evaluate_on_real_ray(toy_ray, half_gain_checkpoint, tmp_path, rng):
    import pyarrow.parquet as pq

    from jobs.cli import main
    from pipeline.core import schema as S
    from pipeline.denoise.job import RunPaths

    root = str(tmp_path)
    _clips(root, rng)
    assert (
        main(
            [
                "denoise",
                "--input",
                f"{root}/noisy",
                "--output",
                f"{root}/out",
                "--model",
                half_gain_checkpoint,
                "--run-id",
                "t1",
            ]
        )
        == 0
    )
    rows = {r[S.INPUT_KEY]: r for r in pq.read_table(RunPaths.of(f"{root}/out", "t1").clips_uri).to_pylist()}
    assert set(rows) == {"c0.wav", "c1.wav"}
    for key, row in rows.items():
        assert row[S.STATUS] == "ok" and row[S.MODEL_ID].startswith(f"{NAME}-")
        assert dict(row[S.MODEL_STATS]) == {"toy_gain": pytest.approx(0.5)}
        noisy, _ = sf.read(f"{root}/noisy/{key}", dtype="float32")
        enhanced, _ = sf.read(f"{root}/out/runs/t1/audio/{key}", dtype="float32")
        np.testing.assert_allclose(enhanced, 0.5 * noisy, atol=1e-3)

    assert (
        main(
            [
                "evaluate",
                "--clean",
                f"{root}/clean",
                "--noisy",
                f"{root}/noisy",
                "--output",
                f"{root}/eval",
                "--models",
                f"half={half_gain_checkpoint},noisy",
                "--run-id",
                "e1",
            ]
        )
        == 0
    )
    df = pq.read_table(f"{root}/eval/runs/e1/clips").to_pandas()
    ok = df[df[S.STATUS] == "ok"]
    assert sorted(ok[S.MODEL].unique()) == ["half", "noisy"] and len(ok) == 4
    half = ok[ok[S.MODEL] == "half"]
    assert half[S.MODEL_ID].str.startswith(f"{NAME}-").all()
    assert all(dict(m) == {"toy_gain": pytest.approx(0.5)} for m in half[S.MODEL_STATS])
    # SI-SDR is scale-invariant: a pure gain scores exactly what the input scores.
    by_model = ok.pivot(index=S.NOISY_KEY, columns=S.MODEL, values="si_sdr_db")
    np.testing.assert_allclose(by_model["half"], by_model["noisy"], atol=0.05)
