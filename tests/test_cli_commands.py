"""Subcommands through the real console script, with every shipped model where they take --model.

Here: ``enhance`` and ``nightly`` with each shipped model, and ``demo``; denoise, evaluate, train,
export, query and report run in their own job tests. A test that runs every README line is on the
way (issue 18).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.core.checkpoints import SHIPPED_CHECKPOINTS

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "diffgmm"
# Each family's per-clip stats under its own names (model/registry.py's families).
FAMILY_STATS = {"diffgmm": "gmm_nll", "aigd": "image_ssim", "fuse": "fuse_noisy_recon_mse", "udiffse": "em_nll"}


def diffgmm(*argv: str, cwd: str, expect_rc: int = 0) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([str(CLI), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect_rc, (
        f"diffgmm {' '.join(argv)} → {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _clips(folder: Path, rng, n: int = 2) -> list[Path]:
    from pipeline.audio.demo_data import generate_pair

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip_{i}.wav"
        sf.write(path, generate_pair(0.7 + 0.4 * i, 5.0, 16000, rng)[0], 16000)
        paths.append(path)
    return paths


def test_every_shipped_model_has_its_stat_names_here():
    assert set(FAMILY_STATS) == set(SHIPPED_CHECKPOINTS)


@pytest.mark.parametrize("model", sorted(SHIPPED_CHECKPOINTS))
def test_enhance_writes_every_good_file_and_names_the_bad_one(model, tmp_path, rng):
    inputs = _clips(tmp_path / "in", rng)
    stereo = tmp_path / "in" / "stereo.flac"
    sf.write(stereo, np.stack([sf.read(inputs[0])[0]] * 2, axis=1), 16000, subtype="PCM_24")
    bad = tmp_path / "in" / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    out = diffgmm(
        "enhance",
        *map(str, inputs),
        str(stereo),
        str(bad),
        "--output-dir",
        str(tmp_path / "out"),
        "--model",
        model,
        "--device",
        "cpu",
        cwd=str(tmp_path),
        expect_rc=1,
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_0.wav", "clip_1.wav", "stereo.flac"]
    for path in [*inputs, stereo]:
        written, rate = sf.read(tmp_path / "out" / path.name)
        original, _ = sf.read(path)
        assert rate == 16000 and written.shape == original.shape and np.isfinite(written).all()
        assert not np.allclose(written, original, atol=1e-3)  # the model did something
        line = re.search(rf"^ok +{re.escape(str(path))} -> \S+ .*$", out, re.M)
        assert line, out
        assert re.search(rf"  {FAMILY_STATS[model]}=-?\d+\.\d{{3}}(  |$)", line.group(0)), line.group(0)
    assert re.search(rf"^error +{re.escape(str(bad))}: bad_header", out, re.M), out
    assert re.search(rf"^3 enhanced, 1 failed, model {model}-[0-9a-f]{{12}}$", out, re.M), out


def test_enhance_runs_the_peer_by_name_at_the_files_own_rate(tmp_path, rng):
    from pipeline.quality.peers import deepfilternet3

    (path,) = _clips(tmp_path / "in", rng, n=1)
    out = diffgmm(
        "enhance", str(path), "--output-dir", str(tmp_path / "out"), "--model", "deepfilternet3", cwd=str(tmp_path)
    )
    written, rate = sf.read(tmp_path / "out" / path.name, dtype="float32")
    original, _ = sf.read(path, dtype="float32")
    assert rate == 16000 and written.shape == original.shape
    # DFN3 through the project's resampler, as evaluate's peer; 16-bit WAV rounding apart.
    np.testing.assert_allclose(written, deepfilternet3(original, 16000), atol=2 / 32768)
    assert re.search(r"^1 enhanced, 0 failed, model deepfilternet3-[0-9a-f]{12}$", out, re.M), out


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("model", sorted(SHIPPED_CHECKPOINTS))
def test_nightly_runs_each_shipped_model_then_finds_nothing_new(model, tmp_path, rng):
    _clips(tmp_path / "in", rng)
    args = ("nightly", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--model", model)
    out = diffgmm(*args, "--run-id", "n1", cwd=str(tmp_path))
    assert re.search(r"^nightly n1: 2 new, 0 changed", out, re.M) and re.search(
        r"^run n1: 2 clips \(2 ok, 0 errors\)", out, re.M
    ), out
    table = pq.read_table(tmp_path / "out" / "runs" / "n1" / "clips").to_pylist()
    assert {r["model_id"].rsplit("-", 1)[0] for r in table} == {model}
    assert all(FAMILY_STATS[model] in dict(r["model_stats"]) for r in table)
    again = diffgmm(*args, "--run-id", "n2", cwd=str(tmp_path))
    assert "nothing new: no run was started" in again and re.search(r"^ledger: 2 inputs", again, re.M), again


@pytest.mark.slow
@pytest.mark.ray
def test_demo_generates_a_corpus_and_denoises_it(tmp_path):
    out = diffgmm("demo", "--workdir", str(tmp_path / "demo"), "--num-clips", "2", cwd=str(tmp_path))
    assert f"generated 2 demo pairs under {tmp_path / 'demo' / 'corpus'}" in out
    assert re.search(r"^run \S+: 2 clips \(2 ok, 0 errors\)", out, re.M), out
    run_uri = re.search(r"^outputs: (\S+)", out, re.M).group(1)
    table = pq.read_table(Path(run_uri) / "clips")
    assert table.num_rows == 2 and set(table.column("status").to_pylist()) == {"ok"}
    assert all(v is not None and np.isfinite(v) for v in table.column("pesq_wb").to_pylist())  # references were found
    assert len(list((tmp_path / "demo" / "out").rglob("*.wav"))) == 2
