"""Training steps, corpora loading and validation shared by every executor.

Both executors run :func:`pipeline.train.loop.train_loop`, which calls :func:`train_step`
and :func:`validate`; the benches (``bench/train_throughput.py``, ``bench/ablation.py``) call
the same ones, so what is measured locally is what runs on a cluster.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pipeline.audio.codec import AUDIO_EXTENSIONS, AudioError, load_mono
from pipeline.audio.mixing import MixConfig, holdout, mix_example, speaker_of
from pipeline.core import storage

log = logging.getLogger(__name__)


def list_audio(uri: str, config: storage.StorageConfig | None = None) -> list[str]:
    """Relative keys of the audio files under ``uri``, sorted; none is an error naming where it looked
    (a relative path is relative to the current directory, not to the recipe file)."""
    fs, root = storage.filesystem(uri, config)
    found = fs.find(root)
    keys = [storage.relative_key(uri, p, fs) for p in found if p.lower().endswith(AUDIO_EXTENSIONS)]
    if not keys:
        where = (
            f" (resolved against the current directory: {os.path.abspath(root)})"
            if storage.protocol_of(uri) == "file" and root != uri
            else ""
        )
        raise FileNotFoundError(f"no audio found under {uri}{where}")
    return sorted(keys)


def load_corpus(
    uri: str, sample_rate: int, keys: Iterable[str] | None = None, config: storage.StorageConfig | None = None
) -> dict[str, np.ndarray]:
    """{relative key: mono float32 signal} for ``keys`` (all audio under ``uri`` by default).

    Undecodable files are skipped with a warning: a training corpus with one bad
    file should still train.
    """
    out = {}
    for key in keys if keys is not None else list_audio(uri, config):
        try:
            out[key] = load_mono(storage.join(uri, key), sample_rate, config)
        except AudioError as exc:
            log.warning("skipping %s: %s", key, exc)
    return out


def split_corpus(keys: list[str], fraction: float, by_speaker: bool) -> tuple[list[str], list[str]]:
    """(train, held-out) keys; by speaker for speech so no voice is in both."""
    held = [k for k in keys if holdout(speaker_of(k) if by_speaker else k, fraction)]
    held_set = set(held)
    return [k for k in keys if k not in held_set], held


@dataclass(frozen=True)
class ValidationMixture:
    """One held-out pair, (segment,) float32 each, and where it came from: indices into the clean and noise lists, SNR in dB."""

    noisy: np.ndarray
    clean: np.ndarray
    clean_index: int
    noise_index: int
    snr_db: float


def validation_mixtures(
    clean: list[np.ndarray], noise: list[np.ndarray], config: MixConfig, count: int, seed: int
) -> list[ValidationMixture]:
    """A fixed held-out set of mixtures, the same every epoch: clean file ``i % len(clean)`` with a drawn noise file."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        j = int(rng.integers(len(noise)))
        noisy, target, snr = mix_example(clean[i % len(clean)], noise[j], config, rng)
        out.append(ValidationMixture(noisy, target, i % len(clean), j, snr))
    return out


def validation_pairs(
    clean: list[np.ndarray], noise: list[np.ndarray], config: MixConfig, count: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed held-out set of (noisy, clean) pairs, the same every epoch (:func:`validation_mixtures` without the sources)."""
    return [(m.noisy, m.clean) for m in validation_mixtures(clean, noise, config, count, seed)]


def train_step(
    model, optimizer, noisy, clean, loss_config, grad_clip: float = 5.0, autocast_dtype=None, generator=None
) -> dict[str, float]:
    """One optimisation step on a batch: noisy, clean (batch, samples) float32 on the model's device.

    The family's registered loss (:mod:`model.family`) runs the forward pass, under
    autocast when ``autocast_dtype`` is set, and draws any randomness from
    ``generator``. Returns the loss parts as floats, plus ``grad_norm``.
    """
    import torch

    from model import spec
    from model.family import trainable_parameters

    model.train()
    optimizer.zero_grad(set_to_none=True)
    core = model.module if hasattr(model, "module") else model
    with torch.autocast(device_type=noisy.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss, parts = spec(core.name).loss(model, noisy, clean, loss_config, generator)
    if not math.isfinite(parts["total"]):
        raise FloatingPointError(f"non-finite loss {parts}")
    loss.backward()
    parts["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(list(trainable_parameters(model)), grad_clip))
    optimizer.step()
    return parts


def validate(enhancer, pairs: list[tuple[np.ndarray, np.ndarray]], sample_rate: int) -> dict[str, float]:
    """Mean PESQ-WB, SI-SDR, STOI (0-1) and their input baselines (``input_*``) over the validation pairs.

    Pairs are (noisy, clean), each (samples,) float32 at ``sample_rate``. STOI is
    always scored: a ``best.pt`` rule may use it, and every run's history then
    holds the STOI-per-CPU-hour curve (pystoi costs little beside PESQ).
    """
    from pipeline.quality.metrics import score_pesq, score_si_sdr, score_stoi

    enhancer.model.eval()
    names = ["pesq_wb", "si_sdr_db", "stoi"]
    rows: dict[str, list[float]] = {prefix + name: [] for prefix in ("", "input_") for name in names}
    for noisy, clean in pairs:
        enhanced, _ = enhancer.enhance(noisy, sample_rate)
        for prefix, sig in (("", enhanced), ("input_", noisy)):
            rows[prefix + "pesq_wb"].append(score_pesq(clean, sig, sample_rate, "wb").value)
            rows[prefix + "si_sdr_db"].append(score_si_sdr(clean, sig, sample_rate).value)
            rows[prefix + "stoi"].append(score_stoi(clean, sig, sample_rate).value)
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for k, v in rows.items()}


def validate_loss(model, pairs: list[tuple[np.ndarray, np.ndarray]], loss_config, seed: int) -> dict[str, float]:
    """The family's loss on held-out (noisy, clean) pairs, each part averaged: for families validated without enhancing.

    A clean-only prior (UDiffSE) has nothing to enhance in clean validation data; its
    held-out score-matching loss says how well the prior fits unseen speakers. Pair *i*
    draws its t and noise from a generator seeded by (``seed``, i), so every epoch is
    scored on the same draws and two checkpoints compare like for like. Keys: the loss's
    parts ("total", …) plus "loss" (= total).
    """
    import torch

    from model import spec
    from pipeline.inference.enhance import derived_seed

    core = model.module if hasattr(model, "module") else model
    device = next(core.parameters()).device
    loss_fn = spec(core.name).loss
    core.eval()
    sums: dict[str, float] = {}
    with torch.no_grad():
        for i, (noisy, clean) in enumerate(pairs):
            generator = torch.Generator(device=device).manual_seed(derived_seed(seed, i))
            n = torch.from_numpy(np.asarray(noisy, dtype=np.float32)).to(device).unsqueeze(0)
            c = torch.from_numpy(np.asarray(clean, dtype=np.float32)).to(device).unsqueeze(0)
            _, parts = loss_fn(core, n, c, loss_config, generator)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
    out = {k: v / max(len(pairs), 1) for k, v in sums.items()}
    out["loss"] = out["total"]
    return out
