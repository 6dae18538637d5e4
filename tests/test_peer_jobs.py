"""``--model deepfilternet3`` in the batch jobs: real Ray, real Parquet, the real DFN3 runtime, full band at 48 kHz."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from conftest import shared_path

from pipeline.audio.codec import resample
from pipeline.core import schema as S
from pipeline.core.checkpoints import PEER_MODELS, load_model
from pipeline.denoise.job import DenoiseConfig, RunPaths, run_denoise
from pipeline.inference.longform import StreamConfig
from pipeline.inference.model_stage import ModelStageConfig
from pipeline.inference.peer import PeerEnhancer, make_enhancer
from pipeline.quality.peers import deepfilternet3_48k

pytestmark = pytest.mark.slow


def _band_db(signal: np.ndarray, rate: int, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal)) ** 2
    freqs = np.fft.rfftfreq(len(signal), 1 / rate)
    return float(10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() + 1e-20))


def _noisy_48k(seconds: float = 2.5) -> np.ndarray:
    """VBD speech at 48 kHz with a high band added (seeded, speech-gated noise) and light broadband noise."""
    speech, rate = sf.read(shared_path("testdata", "vbd-debug", "clean", "p287_001.flac"), dtype="float32")
    up = resample(speech, rate, 48000)[: int(seconds * 48000)]
    rng = np.random.default_rng(3)
    envelope = np.convolve(np.abs(up), np.ones(480) / 480, mode="same")
    hiss = np.fft.irfft(
        np.fft.rfft(rng.standard_normal(len(up))) * (np.fft.rfftfreq(len(up), 1 / 48000) > 9000), len(up)
    )
    return (up + 2.0 * envelope * hiss + 0.003 * rng.standard_normal(len(up))).astype(np.float32)


def test_a_peer_loads_by_name_without_a_file_and_streams_as_it_runs_whole():
    loaded = load_model("deepfilternet3")
    assert loaded.model is PEER_MODELS["deepfilternet3"] and loaded.uri == "deepfilternet3"
    assert loaded.model_id.startswith("deepfilternet3-") and len(loaded.model_id) == len("deepfilternet3-") + 12
    enhancer = make_enhancer(loaded.model)
    assert isinstance(enhancer, PeerEnhancer) and enhancer.sample_rate == 48000
    signal = _noisy_48k(1.0)
    whole = enhancer.enhance_many([signal])[0][0]
    parts = list(enhancer.enhance_stream(iter(np.array_split(signal, 7)), len(signal)))
    assert parts[-1][1] == {} and all(stats is None for _, stats in parts[:-1])
    np.testing.assert_array_equal(np.concatenate([p for p, _ in parts]), whole)


def test_denoise_with_deepfilternet3_names_it_and_keeps_the_full_band(ray_local, tmp_path):
    noisy = _noisy_48k()
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a48k.wav", noisy, 48000, subtype="FLOAT")
    direct = deepfilternet3_48k(noisy)
    assert (
        _band_db(direct, 48000, 9000, 20000)
        > _band_db(resample(resample(direct, 48000, 16000), 16000, 48000), 48000, 9000, 20000) + 20
    )
    out = str(tmp_path / "out")
    model = ModelStageConfig(checkpoint_uri="deepfilternet3")
    whole = DenoiseConfig(input_uri=str(tmp_path / "in"), output_uri=out, model=model, run_id="whole")
    streamed = DenoiseConfig(
        input_uri=str(tmp_path / "in"),
        output_uri=out,
        model=model,
        run_id="streamed",
        stream=StreamConfig(stream_seconds=0.0, probe_bytes=1, block_seconds=0.3),
    )
    for config in (whole, streamed):
        summary = run_denoise(config)
        assert summary["ok"] == 1 and summary["model_id"] == load_model("deepfilternet3").model_id
        paths = RunPaths.of(out, config.run_id)
        row = pq.read_table(paths.clips_uri).to_pylist()[0]
        assert row[S.STATUS] == "ok" and row[S.MODEL_ID] == summary["model_id"]
        assert row[S.STREAMED] == (config.run_id == "streamed")
        marker = json.loads(open(paths.commit_uri).read())
        assert marker["model_id"] == summary["model_id"] and marker["checkpoint_uri"] == "deepfilternet3"
        enhanced, rate = sf.read(f"{paths.audio_uri}/a48k.wav", dtype="float32")
        assert rate == 48000 and enhanced.shape == noisy.shape
        # Full band: the job runs DFN3 at the file's 48 kHz, nothing resampled through 16 kHz on the way.
        np.testing.assert_allclose(enhanced, direct, atol=1e-5)
    a, _ = sf.read(f"{RunPaths.of(out, 'whole').audio_uri}/a48k.wav", dtype="float32")
    b, _ = sf.read(f"{RunPaths.of(out, 'streamed').audio_uri}/a48k.wav", dtype="float32")
    np.testing.assert_allclose(b, a, atol=1e-5)
