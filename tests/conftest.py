"""Shared fixtures: seeded audio, the shared data folder, identity models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(os.environ.get("DIFFGMM_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A file under ../shared/; fails (not skips) with a clear message when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared test data missing: {path} (set DIFFGMM_SHARED to the shared/ folder)")
    return path


# Test tiers (markers registered in pyproject.toml): a test is marked by the fixtures it uses, so
# `make test-fast` (-m "not slow and not ray and not browser") needs no list of files to keep.
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        closure = set(getattr(item, "fixturenames", ()))
        own = set(getattr(getattr(item, "_fixtureinfo", None), "argnames", ()))
        if "ray_local" in closure:
            item.add_marker(pytest.mark.ray)
        if "s3_bucket" in closure or "s3_endpoint" in own:  # ray_local starts moto too, only for its env
            item.add_marker(pytest.mark.s3)
        if "chromium" in closure:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless Chromium binary (``make test`` installs Debian's); fails, not skips, without one."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("headless Chromium is needed for the report test: apt-get install chromium (make test installs it)")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


class ParameterFreeFamily:
    """What a test family without weights needs beyond its enhance method: device moves and eval
    are no-ops, and it has no trainable parameters."""

    def to(self, device):
        return self

    def eval(self):
        return self

    def trainable_parameters(self):
        return iter(())


class IdentityModel(ParameterFreeFamily):
    """A "windows" family (model.family) that returns its input: isolates windowing from the network.

    Its stats are under its own names, as any family's: ``identity_unit`` (batch,) all ones and
    ``identity_profile`` (batch, 2) all ones, so weighted clip means are exactly 1.
    """

    name = "identity"
    input_unit = "windows"

    class config:  # noqa: N801 - mimics a dataclass instance attribute
        sample_rate = 16000

    def enhance(self, windows, generator=None):
        import torch

        batch = windows.shape[0]
        return windows.clone(), {"identity_unit": torch.ones(batch), "identity_profile": torch.ones(batch, 2)}


@pytest.fixture
def identity_model() -> IdentityModel:
    return IdentityModel()


TINY_CONFIG = dict(hidden_channels=8, depth=3, bottleneck_blocks=1, feature_channels=8, num_steps=2)
# FUSE at test size: fits and samples in seconds on one CPU thread (tests/test_fuse.py, test_family_pipelines.py).
TINY_FUSE_CONFIG = dict(
    latent_channels=24,
    vae_channels=32,
    vae_blocks=1,
    denoiser_channels=32,
    denoiser_blocks=2,
    groups=4,
    guidance_channels=8,
)
# The STFT representation at test size: 33 bins, 16 channels over frames.
SMALL_STFT_CONFIG = dict(
    representation="stft",
    n_fft=64,
    hop_length=32,
    hidden_channels=16,
    depth=2,
    growth=1.0,
    kernel_size=4,
    stride=2,
    bottleneck_blocks=1,
    feature_channels=16,
    num_steps=2,
    num_components=3,
)


def recorded_overrides(meta: dict, machine: tuple[str, ...]) -> dict:
    """A shipped checkpoint's ``--set`` overrides (parsed as YAML) beyond this machine's ``machine`` keys, after
    asserting that its recipe file (a path from the repository root) is unchanged: its sha256 is the recorded one."""
    import hashlib

    import yaml

    root = Path(__file__).resolve().parents[1]
    assert hashlib.sha256((root / meta["recipe"]).read_bytes()).hexdigest() == meta["recipe_sha256"], meta["recipe"]
    return {k: yaml.safe_load(v) for k, v in meta["overrides"].items() if k not in machine}


def paired_tree(root: str, rng, pairs: int = 8, **data):
    """Write ``pairs`` seeded 1 s speech-like clips under ``root/clean`` and their noisy copies (same names) under
    ``root/noisy``, and return the paired-mode ``DataConfig`` over them (``data`` overrides its fields)."""
    import soundfile as sf

    from pipeline.audio.demo_data import noise_like, speech_like
    from pipeline.train.configs import DataConfig

    for side in ("clean", "noisy"):
        os.makedirs(f"{root}/{side}")
    for i in range(pairs):
        clean = speech_like(1.0, 16000, rng)
        sf.write(f"{root}/clean/spk{i}_utt.wav", clean, 16000)
        sf.write(f"{root}/noisy/spk{i}_utt.wav", clean + 0.05 * noise_like(1.0, 16000, rng), 16000)
    settings = dict(clean_holdout_fraction=0.3, valid_pairs=1) | data
    return DataConfig(mode="paired", paired_clean_uri=f"{root}/clean", paired_noisy_uri=f"{root}/noisy", **settings)


def noisy_tone(seconds: int = 3):
    """A seeded toy denoising problem: an amplitude-modulated 220 Hz tone plus white noise, 16 kHz.

    Returns (clean, noisy), each (seconds, 16000) float32 tensors: one row per second.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    t = torch.arange(seconds * 16000) / 16000
    clean = 0.3 * torch.sin(2 * torch.pi * 220 * t) * (0.5 + 0.5 * torch.sin(2 * torch.pi * 2 * t))
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    return clean.view(seconds, 16000), noisy.view(seconds, 16000)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A small random DiffGMM checkpoint: fast enough for job tests, real format."""
    import torch

    from model import DiffGMM, DiffGMMConfig, make_checkpoint
    from pipeline.core.checkpoints import save_checkpoint

    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    save_checkpoint(make_checkpoint(DiffGMM(DiffGMMConfig(**TINY_CONFIG)), {"note": "test"}), path)
    return path


def _write(path, data, rate, subtype="PCM_16", fmt=None):
    import soundfile as sf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, data, rate, subtype=subtype, format=fmt)


def make_corpus(root: str) -> dict[str, str]:
    """Good and bad inputs, with clean references for the good mono ones; returns {key: expectation}."""
    from pipeline.audio.demo_data import generate_pair

    rng = np.random.default_rng(0)
    expect = {}
    for i, seconds in enumerate((1.3, 2.7)):
        noisy, clean = generate_pair(seconds, 5.0, 16000, rng)
        key = f"speaker{i}/clip_{i}.wav"
        _write(f"{root}/noisy/{key}", noisy, 16000)
        _write(f"{root}/clean/{key}", clean, 16000)
        expect[key] = "ok"
    noisy, _ = generate_pair(1.1, 5.0, 44100, rng)
    _write(f"{root}/noisy/stereo_24bit.flac", np.stack([noisy, 0.5 * noisy], axis=1), 44100, "PCM_24")
    expect["stereo_24bit.flac"] = "ok"
    _write(f"{root}/noisy/float_8k.wav", generate_pair(0.9, 5.0, 8000, rng)[0], 8000, "FLOAT")
    expect["float_8k.wav"] = "ok"
    _write(f"{root}/noisy/silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    _write(f"{root}/clean/silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    expect["silent.wav"] = "ok"
    os.makedirs(f"{root}/noisy", exist_ok=True)
    with open(f"{root}/noisy/corrupt.wav", "wb") as f:
        f.write(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    expect["corrupt.wav"] = "error"
    open(f"{root}/noisy/empty.flac", "wb").close()
    expect["empty.flac"] = "error"
    with open(f"{root}/noisy/notes.txt", "w") as f:
        f.write("not audio, filtered out by extension")
    return expect


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible server (moto in server mode) on 127.0.0.1, with throwaway credentials.

    Started before Ray so Ray's workers inherit the same environment. The endpoint reaches every
    client through ``AWS_ENDPOINT_URL_S3``, as the README tells users to set it; tests that pass
    ``storage.endpoint_url`` as well check that the explicit setting still wins.
    """
    from moto.server import ThreadedMotoServer

    env = {
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-value",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    port = _free_port()
    env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{port}"
    old = {k: os.environ.get(k) for k in (*env, "AWS_ENDPOINT_URL")}
    os.environ.update(env)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on a freshly reset server; yields (endpoint, bucket name)."""
    import boto3
    import requests

    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="audio")
    return s3_endpoint, "audio"


@pytest.fixture(scope="session")
def ray_local(s3_endpoint):
    """Local Ray with 2 CPUs, shared by every test that needs it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
