"""Every registered model family through ``diffgmm denoise`` on real Ray, over a local folder and moto S3.

One parametrised test over :data:`model.registry.MODELS`: a family registered later is run
here too, and fails until :data:`TINY_CONFIGS` names a test-size config for it. Each run
goes through the CLI with a tiny randomly initialised checkpoint written by the project's
checkpoint writer (on S3 the checkpoint itself is read from the bucket), over a small
seeded bucket in two folders plus one file longer than ``stream.stream_seconds``, which
must take the streaming path (``streamed = true`` in its row). The same committed runs
feed ``diffgmm query --noise-profile`` (UDiffSE's NMF noise fingerprint beside DiffGMM's
mixture occupancy).
"""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from conftest import TINY_FUSE_CONFIG

from model.registry import MODELS
from pipeline.core import schema as S

pytestmark = pytest.mark.slow

# Test-size configs: a few seconds per run on one CPU thread, minimal samplers (DDIM 2 steps,
# 2 predictor-corrector steps x 2 EM iterations). UDiffSE keeps its 510-point FFT so every
# octave band of the noise fingerprint has bins; its 1 s chunks make the long file 3 chunks.
TINY_CONFIGS: dict[str, dict] = {
    "diffgmm": dict(hidden_channels=8, depth=3, bottleneck_blocks=1, feature_channels=8, num_steps=2),
    "aigd": dict(n_fft=64, win_length=60, hop_length=16, channels=4, channel_mults=(1, 2), groups=2),
    "fuse": dict(TINY_FUSE_CONFIG, num_steps=2),
    "udiffse": dict(channels=4, channel_mults=(1, 2), groups=2, time_features=8, num_e=2, num_em=2, chunk_seconds=1.0),
}
# Stat names each family must report per clip (on top of "whatever it reports is finite").
REQUIRED_STATS: dict[str, set[str]] = {
    "diffgmm": {"gmm_nll"},
    "fuse": {"fuse_noisy_recon_mse", "fuse_final_eps_rms"},
    "udiffse": {S.EM_NLL, S.NOISE_DOMINANT_HZ, *(f"{S.NOISE_BAND_DB}_{i}" for i in range(7))},
}
# (relative key, seconds, sample rate); the last one is longer than stream_seconds below.
CLIPS = (("street/a.wav", 1.2, 16000), ("hum/b.flac", 0.9, 44100), ("hum/long.wav", 2.6, 16000))
LONG_KEY = "hum/long.wav"
STREAM_SETS = ("stream.stream_seconds=2.0", "stream.probe_bytes=1", "stream.block_seconds=0.5")
RUN_ID = "fam-1"


def write_checkpoint(family: str, path: str) -> None:
    """A randomly initialised test-size model of ``family``, saved as any checkpoint of this project is."""
    import torch

    from model import make_checkpoint
    from model.registry import build_model, config_from_dict
    from pipeline.core.checkpoints import save_checkpoint
    from pipeline.core.pretrained import attach_pretrained

    if family not in TINY_CONFIGS:
        pytest.fail(
            f"family {family!r} is registered but has no test-size config: add it to TINY_CONFIGS in {__file__}"
        )
    torch.manual_seed(0)
    model = build_model(family, config_from_dict(family, TINY_CONFIGS[family]))
    attach_pretrained(model, None, require_record=False)  # a family with a frozen extractor records it
    save_checkpoint(make_checkpoint(model, {"note": "test-size, untrained"}), path)


def write_corpus(root: str) -> dict[str, int]:
    """Seeded noisy speech-like clips under ``root``; returns {key: frames}."""
    from pipeline.audio.demo_data import generate_pair

    rng = np.random.default_rng(7)
    frames = {}
    for key, seconds, rate in CLIPS:
        noisy, _ = generate_pair(seconds, 5.0, rate, rng)
        os.makedirs(os.path.dirname(f"{root}/{key}"), exist_ok=True)
        sf.write(f"{root}/{key}", noisy, rate, subtype="PCM_16")
        frames[key] = sf.info(f"{root}/{key}").frames
    return frames


def _cli(*argv: str) -> None:
    from jobs.cli import main

    assert main(list(argv)) == 0


def _denoise(input_uri: str, output_uri: str, checkpoint: str) -> None:
    argv = ["denoise", "--input", input_uri, "--output", output_uri, "--model", checkpoint, "--run-id", RUN_ID]
    for s in STREAM_SETS:
        argv += ["--set", s]
    _cli(*argv)


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory):
    """Runs each (family, store) at most once per module: {(family, store): (output_uri, rows, output frames, input frames)}."""
    return {}


def run_family(family: str, store: str, family_runs, tmp_path_factory, s3=None):
    if (family, store) in family_runs:
        return family_runs[(family, store)]
    tmp = tmp_path_factory.mktemp(f"{family}-{store}")
    corpus, checkpoint = str(tmp / "noisy"), str(tmp / "tiny.pt")
    frames = write_corpus(corpus)
    write_checkpoint(family, checkpoint)
    if store == "local":
        out = str(tmp / "out")
        _denoise(corpus, out, checkpoint)
        run = f"{out}/runs/{RUN_ID}"
        marker = json.loads(open(f"{run}/_COMMITTED.json").read())
        rows = pq.read_table([f"{run}/{f}" for f in marker["table_files"]]).to_pylist()
        out_frames = {
            r["output_key"]: sf.info(f"{run}/audio/{r['output_key']}").frames for r in rows if r["output_key"]
        }
    else:
        import boto3

        endpoint, bucket = s3
        client = boto3.client("s3", endpoint_url=endpoint)
        for key, *_ in CLIPS:
            client.upload_file(f"{corpus}/{key}", bucket, f"{family}/noisy/{key}")
        client.upload_file(checkpoint, bucket, f"{family}/models/tiny.pt")
        out = f"s3://{bucket}/{family}/results"
        # Only AWS_ENDPOINT_URL_S3 tells the clients where S3 is (the s3_endpoint fixture sets nothing else).
        assert "AWS_ENDPOINT_URL_S3" in os.environ and "AWS_ENDPOINT_URL" not in os.environ
        _denoise(f"s3://{bucket}/{family}/noisy", out, f"s3://{bucket}/{family}/models/tiny.pt")
        run = f"{family}/results/runs/{RUN_ID}"

        def body(key: str) -> bytes:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()

        marker = json.loads(body(f"{run}/_COMMITTED.json"))
        rows = [r for f in marker["table_files"] for r in pq.read_table(io.BytesIO(body(f"{run}/{f}"))).to_pylist()]
        out_frames = {
            r["output_key"]: sf.info(io.BytesIO(body(f"{run}/audio/{r['output_key']}"))).frames
            for r in rows
            if r["output_key"]
        }
    family_runs[(family, store)] = (out, rows, out_frames, frames)
    return family_runs[(family, store)]


@pytest.mark.parametrize("store", ["local", "s3"])
@pytest.mark.parametrize("family", list(MODELS))
def test_every_family_denoises_a_bucket_with_a_streamed_long_file(
    family, store, ray_local, request, family_runs, tmp_path_factory
):
    s3 = request.getfixturevalue("s3_bucket") if store == "s3" else None
    _, rows, out_frames, frames = run_family(family, store, family_runs, tmp_path_factory, s3)
    by_key = {r["input_key"]: r for r in rows}
    assert set(by_key) == set(frames)
    for key, row in by_key.items():
        assert row["status"] == "ok", (key, row["error"])
        assert row["model_id"].startswith(f"{family}-")
        # The output has exactly the input's number of frames (its rate is the input's too).
        assert row["output_key"] == key and out_frames[key] == frames[key]
        stats = dict(row["model_stats"] or {})
        assert stats, f"{family}: no model_stats for {key}"
        assert all(math.isfinite(v) for v in stats.values()), (key, stats)
        assert REQUIRED_STATS.get(family, set()) <= set(stats), (key, sorted(stats))
        assert row["seconds_model"] > 0 and math.isfinite(row["removed_noise_db"])
    # The long file went through the model actor's streaming path, the short ones did not.
    assert by_key[LONG_KEY]["streamed"] is True
    assert not any(r["streamed"] for k, r in by_key.items() if k != LONG_KEY)


def _noise_profile(capsys, output_uri: str) -> dict[str, dict]:
    from jobs.cli import main

    capsys.readouterr()
    assert main(["query", output_uri, "--noise-profile", "--format", "json"]) == 0
    return {p["folder"]: p for p in json.loads(capsys.readouterr().out)}


def test_noise_profile_shows_udiffse_fingerprint_and_diffgmm_occupancy(
    ray_local, family_runs, tmp_path_factory, capsys
):

    out, rows, _, _ = run_family("udiffse", "local", family_runs, tmp_path_factory)
    profile = _noise_profile(capsys, out)
    folders = {k.split("/")[0] for k, *_ in CLIPS}
    assert set(profile) == folders
    for folder, p in profile.items():
        stats = [dict(r[S.MODEL_STATS]) for r in rows if r[S.INPUT_KEY].startswith(folder + "/")]
        assert p["clips"] == p["fingerprint_clips"] == len(stats)
        bands = [np.mean([s[f"{S.NOISE_BAND_DB}_{i}"] for s in stats]) for i in range(7)]
        assert p["mean_noise_band_db"] == pytest.approx(bands, abs=0.006)
        assert p["median_noise_dominant_hz"] == pytest.approx(
            np.median([s[S.NOISE_DOMINANT_HZ] for s in stats]), abs=0.06
        )
        assert p["mean_em_nll"] == pytest.approx(np.mean([s[S.EM_NLL] for s in stats]), abs=1e-4)
        # No mixture in a UDiffSE run: DiffGMM's columns are empty, not zero.
        assert p["mean_occupancy"] is None and p["mean_gmm_nll"] is None

    out, rows, _, _ = run_family("diffgmm", "local", family_runs, tmp_path_factory)
    profile = _noise_profile(capsys, out)
    assert set(profile) == folders
    for p in profile.values():
        assert sum(p["mean_occupancy"]) == pytest.approx(1.0, abs=1e-3) and math.isfinite(p["mean_gmm_nll"])
        assert p["mean_noise_band_db"] is None and p["fingerprint_clips"] is None
