"""The denoise job's stages as plain callables over pyarrow batches.

Each stage takes a ``pyarrow.Table`` batch and returns one with a fixed
schema, one output row per input row. A failure in a row becomes that row's
``status="error"`` and ``error="<kind>: <message>"`` and the row travels on
with no audio; a stage never raises for a bad file, so one file never loses a
block. Ray resources are set where the stages are wired in
(:mod:`pipeline.denoise`), not here; the stages run as well without Ray.

Audio travels between stages as raw float32 bytes (``(channels, samples)``,
C order) with its channel count: variable-length binary is the most robust
column type Arrow and Ray have.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from pipeline import schema as S
from pipeline import storage
from pipeline.audio import AudioError, decode, encode, fit_length, format_for_key, resample, to_channels
from pipeline.enhance import EnhanceConfig
from pipeline.metrics import removed_noise_db, rms_dbfs, score_all

log = logging.getLogger(__name__)

AUDIO = "audio"  # float32 bytes at the model rate
AUDIO_CHANNELS = "audio_channels"
FRAMES = "frames"  # samples per channel at the input's own rate
SUBTYPE = "subtype"
FORMAT = "format"

_CARRIED = [
    pa.field(S.KEY, pa.string()),
    pa.field(S.SIZE, pa.int64()),
    pa.field(S.ETAG, pa.string()),
    pa.field(S.MTIME, pa.timestamp("us", tz="UTC")),
    pa.field(S.STATUS, pa.string()),
    pa.field(S.ERROR, pa.string()),
    pa.field(S.SAMPLE_RATE, pa.int32()),
    pa.field(S.CHANNELS, pa.int32()),
    pa.field(S.DURATION_SECONDS, pa.float64()),
    pa.field(FRAMES, pa.int64()),
    pa.field(SUBTYPE, pa.string()),
    pa.field(FORMAT, pa.string()),
    pa.field(S.SECONDS_DECODE, pa.float64()),
    pa.field(AUDIO, pa.large_binary()),
    pa.field(AUDIO_CHANNELS, pa.int32()),
]
DECODED_SCHEMA = pa.schema(_CARRIED)

_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS")


def redact(message: str) -> str:
    """Remove credential values from a message before it reaches a table or a log."""
    for var in _SECRET_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            message = message.replace(value, "***")
    return message


def error_text(exc: BaseException) -> str:
    """``kind: message`` for a table's error column (kind is AudioError's label or the type name)."""
    if isinstance(exc, AudioError):
        return redact(str(exc))
    kind = "not_found" if isinstance(exc, FileNotFoundError) else type(exc).__name__
    return redact(f"{kind}: {exc}")[:2000]


def _finite(value: float) -> float | None:
    """NaN/±inf → None would lose the distinction; keep NaN, map ±inf (silence) to NaN."""
    return value if math.isfinite(value) else math.nan


def pack_audio(samples: np.ndarray) -> tuple[bytes, int]:
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    return samples.tobytes(), int(samples.shape[0])


def unpack_audio(data: bytes, channels: int) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).reshape(channels, -1)


@dataclass(frozen=True)
class DecodeConfig:
    """``channel_policy``: downmix (default), first, or per_channel; ``max_seconds``: longer inputs are refused."""

    channel_policy: str = "downmix"
    max_seconds: float = 4 * 3600.0


class DecodeStage:
    """Fetch → decode → validate → channel policy → resample to the model rate (CPU)."""

    def __init__(self, input_uri: str, model_rate: int, config: DecodeConfig, storage_config: storage.StorageConfig) -> None:
        self.input_uri, self.model_rate, self.config, self.storage = input_uri, model_rate, config, storage_config

    def decode_row(self, row: dict) -> dict:
        start = time.perf_counter()
        out = {f.name: row.get(f.name) for f in _CARRIED}
        out.update({S.STATUS: S.STATUS_OK, S.ERROR: None, AUDIO: None, AUDIO_CHANNELS: None})
        try:
            audio = decode(storage.read_bytes(storage.join(self.input_uri, row[S.KEY]), self.storage))
            out.update(
                {
                    S.SAMPLE_RATE: audio.sample_rate,
                    S.CHANNELS: audio.channels,
                    S.DURATION_SECONDS: audio.duration_seconds,
                    FRAMES: int(audio.samples.shape[1]),
                    SUBTYPE: audio.subtype,
                    FORMAT: audio.format,
                }
            )
            if audio.duration_seconds > self.config.max_seconds:
                raise AudioError("too_long", f"{audio.duration_seconds:.0f} s > max_seconds={self.config.max_seconds:.0f}")
            signal = resample(to_channels(audio.samples, self.config.channel_policy), audio.sample_rate, self.model_rate)
            out[AUDIO], out[AUDIO_CHANNELS] = pack_audio(signal)
        except Exception as exc:  # every failure becomes this row's error; the block goes on
            out.update({S.STATUS: S.STATUS_ERROR, S.ERROR: error_text(exc)})
        out[S.SECONDS_DECODE] = time.perf_counter() - start
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist([self.decode_row(r) for r in batch.to_pylist()], schema=DECODED_SCHEMA)


@dataclass(frozen=True)
class ModelStageConfig:
    """Model-actor settings.

    ``torch_threads``: intra-op threads of the actor's torch (0 keeps Ray's
    default, one per reserved CPU). 2 measured best on a 2-core machine, where
    one thread left the model idle while CPU tasks ran (docs/benchmarks.md).
    """

    checkpoint_uri: str | None = None
    torch_threads: int = 2
    enhance: EnhanceConfig = field(default_factory=EnhanceConfig)


class ModelStage:
    """Model actor: loads the checkpoint once, packs windows of all clips in a batch into fixed shapes.

    Reads ``audio`` (float32 bytes at the model rate) of the rows whose status
    is ok and writes the enhanced audio to ``output_column`` (``audio`` by
    default: the noisy audio is not needed downstream); every other column is
    passed through. Construction only reads, so Ray may restart the actor.
    """

    def __init__(self, config: ModelStageConfig, storage_config: storage.StorageConfig, output_column: str = AUDIO) -> None:
        import torch

        from pipeline.checkpoints import load_model
        from pipeline.enhance import Enhancer

        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        loaded = load_model(config.checkpoint_uri, storage_config)
        self.model_id = loaded.model_id
        self.enhancer = Enhancer(loaded.model, config.enhance)
        self.output_column = output_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.select([S.STATUS, AUDIO, AUDIO_CHANNELS]).to_pylist()
        todo = [(i, c) for i, r in enumerate(rows) if r[S.STATUS] == S.STATUS_OK for c in unpack_audio(r[AUDIO], r[AUDIO_CHANNELS])]
        start = time.perf_counter()
        results = self.enhancer.enhance_many([signal for _, signal in todo]) if todo else []
        elapsed = time.perf_counter() - start
        total_samples = sum(len(s) for _, s in todo) or 1
        per_row: dict[int, list] = {}
        for (i, signal), (enhanced, stats) in zip(todo, results):
            per_row.setdefault(i, []).append((signal, enhanced, stats))
        new = {name: [None] * len(rows) for name in MODEL_COLUMNS}
        new[self.output_column] = [None] * len(rows)
        new[S.MODEL_ID] = [self.model_id] * len(rows)
        for i, parts in per_row.items():
            noisy = np.stack([p[0] for p in parts])
            enhanced = np.stack([p[1] for p in parts])
            new[self.output_column][i] = pack_audio(enhanced)[0]
            # The model's time is shared among clips by their length.
            new[S.SECONDS_MODEL][i] = elapsed * noisy.size / total_samples
            new[S.INPUT_RMS_DBFS][i] = _finite(rms_dbfs(noisy))
            new[S.OUTPUT_RMS_DBFS][i] = _finite(rms_dbfs(enhanced))
            new[S.REMOVED_NOISE_DB][i] = _finite(removed_noise_db(noisy.ravel(), enhanced.ravel()))
            new[S.GMM_NLL][i] = float(np.mean([p[2].gmm_nll for p in parts]))
            new[S.GMM_OCCUPANCY][i] = np.mean([p[2].gmm_occupancy for p in parts], axis=0).tolist()
        return with_columns(batch, new, MODEL_FIELDS | {self.output_column: pa.large_binary()})


MODEL_FIELDS = {
    S.MODEL_ID: pa.string(),
    S.SECONDS_MODEL: pa.float64(),
    S.INPUT_RMS_DBFS: pa.float64(),
    S.OUTPUT_RMS_DBFS: pa.float64(),
    S.REMOVED_NOISE_DB: pa.float64(),
    S.GMM_NLL: pa.float64(),
    S.GMM_OCCUPANCY: pa.list_(pa.float32()),
}
MODEL_COLUMNS = tuple(MODEL_FIELDS)


def with_columns(table: pa.Table, columns: dict[str, list], types: dict[str, pa.DataType]) -> pa.Table:
    """Replace or append columns (typed explicitly, so all-null columns keep their type)."""
    for name, values in columns.items():
        array = pa.array(values, type=types[name])
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, array) if index >= 0 else table.append_column(name, array)
    return table


@dataclass(frozen=True)
class WriteConfig:
    """``output_format``: "same" keeps the input's container and sample format, else wav/flac/ogg."""

    output_format: str = "same"
    metrics: tuple[str, ...] = ("pesq_wb", "sdr_db", "si_sdr_db", "stoi")


def output_key_for(key: str, output_format: str) -> str:
    """Mirrored relative key (refusing escapes), with the extension changed when the format is."""
    key = storage.safe_relative_key(key)
    if output_format == "same":
        return key
    stem = key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key
    return f"{stem}.{output_format.lower()}"


class WriteStage:
    """Resample back → encode → write audio → metrics against the reference → one clip row (CPU)."""

    def __init__(
        self,
        run_id: str,
        audio_uri: str,
        reference_uri: str | None,
        model_rate: int,
        config: WriteConfig,
        storage_config: storage.StorageConfig,
    ) -> None:
        self.run_id, self.audio_uri, self.reference_uri = run_id, audio_uri, reference_uri
        self.model_rate, self.config, self.storage = model_rate, config, storage_config

    def _metrics(self, key: str, enhanced: np.ndarray) -> tuple[dict, str | None]:
        """Scores of the (downmixed) model-rate output against the reference at the same key."""
        names = self.config.metrics
        if self.reference_uri is None:
            return {}, None
        try:
            ref = decode(storage.read_bytes(storage.join(self.reference_uri, key), self.storage))
        except Exception as exc:  # a missing or bad reference costs the metrics, not the clip
            return {n: math.nan for n in names}, f"reference: {error_text(exc)}"
        reference = resample(to_channels(ref.samples, "downmix")[0], ref.sample_rate, self.model_rate)
        scores = score_all(reference, enhanced.mean(axis=0), self.model_rate, names)
        errors = "; ".join(f"{n}: {s.error}" for n, s in scores.items() if s.error) or None
        return {n: s.value for n, s in scores.items()}, errors

    def write_row(self, row: dict) -> dict:
        start = time.perf_counter()
        out = S.empty_row(S.CLIP_SCHEMA)
        out.update(
            {
                S.RUN_ID: self.run_id,
                S.INPUT_KEY: row[S.KEY],
                S.INPUT_SIZE: row[S.SIZE],
                S.INPUT_ETAG: row[S.ETAG],
                S.INPUT_MTIME: row[S.MTIME],
                **{c: row.get(c) for c in (S.DURATION_SECONDS, S.SAMPLE_RATE, S.CHANNELS, S.STATUS, S.ERROR, S.MODEL_ID)},
                **{c: row.get(c) for c in (S.SECONDS_DECODE, S.SECONDS_MODEL, S.INPUT_RMS_DBFS, S.OUTPUT_RMS_DBFS)},
                **{c: row.get(c) for c in (S.REMOVED_NOISE_DB, S.GMM_NLL, S.GMM_OCCUPANCY)},
            }
        )
        for name in S.QUALITY_COLUMNS:
            out[name] = math.nan
        if row[S.STATUS] == S.STATUS_OK:
            try:
                enhanced = unpack_audio(row[AUDIO], row[AUDIO_CHANNELS])
                key = output_key_for(row[S.KEY], self.config.output_format)
                fmt = row[FORMAT] if self.config.output_format == "same" else format_for_key(key)
                back = np.stack([fit_length(resample(c, self.model_rate, row[S.SAMPLE_RATE]), row[FRAMES]) for c in enhanced])
                data = encode(back, row[S.SAMPLE_RATE], fmt, row[SUBTYPE] if self.config.output_format == "same" else None)
                storage.write_bytes(storage.join(self.audio_uri, key), data, self.storage)
                out[S.OUTPUT_KEY] = key
                scores, metrics_error = self._metrics(row[S.KEY], enhanced)
                out.update(scores)
                out[S.METRICS_ERROR] = metrics_error
            except Exception as exc:  # a failed write is this clip's error, not the job's
                out.update({S.STATUS: S.STATUS_ERROR, S.ERROR: error_text(exc), S.OUTPUT_KEY: None})
        out[S.SECONDS_WRITE] = time.perf_counter() - start
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        return S.to_table([self.write_row(r) for r in batch.to_pylist()], S.CLIP_SCHEMA)

