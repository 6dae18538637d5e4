"""The GPU sprint's CPU dry run: prepare a (tiny) subset, run bench/device_sprint.sh with a budget of seconds,
on an interpreter where soundfile and Ray cannot be imported, as on the device machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_sprint_dry_run_on_cpu_trains_saves_and_measures_without_soundfile_or_ray(tmp_path):
    subset = tmp_path / "device_data" / "subset.npz"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    prep = subprocess.run(
        [sys.executable, "bench/prepare_device_subset.py", str(subset), "--max-mib", "0.15"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert prep.returncode == 0, prep.stderr
    with np.load(subset) as data:
        assert int(data["sample_rate"]) == 16000 and data["clean"].dtype == np.int16
        assert data["clean_offsets"][-1] == len(data["clean"]) and len(data["noise"]) > 16000

    # The device machine has neither: modules that refuse to import stand in for their absence.
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("soundfile", "ray"):
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} is not on the device machine')\n")
    out = tmp_path / "out"
    env = {
        **env,
        "PYTHONPATH": f"{blocked}{os.pathsep}{ROOT}",
        "OUT": str(out),
        "DEVICE": "cpu",
        "TRAIN_SECONDS": "3",
        "BENCH_SECONDS": "0.3",
        "CLIP_SECONDS": "0.5",
        "BATCH_SIZE": "2",
        "DTYPE": "float32",
        "SUBSET": str(subset),
        "PYTHON": sys.executable,
    }
    run = subprocess.run(
        ["bash", "bench/device_sprint.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]

    summary = json.loads((out / "sprint.json").read_text())
    assert summary["model_name"] == "aigd" and summary["sprint_steps"] >= 1 and summary["curve"]
    assert all(np.isfinite(point["total"]) for point in summary["curve"])
    from pipeline.core.checkpoints import load_model

    loaded = load_model(str(out / "last.pt"))  # weights_only, as every checkpoint
    assert loaded.model_id.startswith("aigd-") and loaded.metadata["sprint_steps"] == summary["sprint_steps"]
    from pipeline.core.checkpoints import SHIPPED_CHECKPOINTS

    measured_families = set()
    for path in out.glob("throughput-*.json"):
        (measured,) = json.loads(path.read_text())
        assert measured["audio_seconds_per_second"] > 0 and measured["gflops_per_audio_second"] > 0, path.name
        measured_families.add(measured["model"])
    assert measured_families == set(SHIPPED_CHECKPOINTS)  # every shipped family, a clip family included
