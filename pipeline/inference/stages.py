"""The denoise job's stages as plain callables over pyarrow batches.

Each stage takes a ``pyarrow.Table`` batch and returns one with a fixed
schema, one output row per input row. A failure in a row becomes that row's
``status="error"`` and ``error="<kind>: <message>"`` and the row travels on
with no audio; a stage never raises for a bad file, so one file never loses a
block. Ray resources are set where the stages are wired in
(:mod:`pipeline.denoise.job`), not here; the stages run as well without Ray.

Audio travels between stages as raw float32 bytes (``(channels, samples)``,
C order) with its channel count: variable-length binary is the most robust
column type Arrow and Ray have.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.audio.codec import (
    AUDIO_EXTENSIONS,
    CHANNEL_POLICIES,
    AudioError,
    decode,
    encode,
    fit_length,
    format_for_key,
    resample,
    to_channels,
)
from pipeline.audio.fullband import full_band
from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.redact import redact
from pipeline.inference.enhance import EnhanceConfig, mean_stats
from pipeline.inference.longform import LongFileWriter, StreamConfig, probe
from pipeline.quality.dnsmos import DNSMOSConfig, dnsmos_columns
from pipeline.quality.metrics import (
    DNSMOS,
    METRIC_NAMES,
    check_metric_names,
    join_errors,
    power_db,
    removed_noise_db,
    rms_dbfs,
    score_all,
)

log = logging.getLogger(__name__)

AUDIO = "audio"  # float32 bytes at the model rate
AUDIO_CHANNELS = "audio_channels"
# The model's output when the noisy input must travel on too (DNSMOS of both).
ENHANCED_AUDIO = "enhanced_audio"
FRAMES = "frames"  # samples per channel at the input's own rate
# float32 bytes at the input's own rate, only for inputs above the model's rate with decode.full_band on.
AUDIO_FULL = "audio_full"
SUBTYPE = "subtype"
FORMAT = "format"

_CARRIED = [
    pa.field(S.KEY, pa.string()),
    pa.field(S.SIZE, pa.int64()),
    pa.field(S.ETAG, pa.string()),
    pa.field(S.MTIME, pa.timestamp("us", tz="UTC")),
    pa.field(S.STATUS, pa.string()),
    pa.field(S.ERROR, pa.string()),
    pa.field(S.ERROR_KIND, pa.string()),
    pa.field(S.SAMPLE_RATE, pa.int32()),
    pa.field(S.CHANNELS, pa.int32()),
    pa.field(S.DURATION_SECONDS, pa.float64()),
    pa.field(FRAMES, pa.int64()),
    pa.field(SUBTYPE, pa.string()),
    pa.field(FORMAT, pa.string()),
    pa.field(S.SECONDS_DECODE, pa.float64()),
    pa.field(S.STREAMED, pa.bool_()),
    pa.field(AUDIO, pa.large_binary()),
    pa.field(AUDIO_CHANNELS, pa.int32()),
    pa.field(AUDIO_FULL, pa.large_binary()),
]
DECODED_SCHEMA = pa.schema(_CARRIED)

def error_kind(exc: BaseException) -> str:
    """The short label of an error: an AudioError's ``kind``, ``storage``, ``not_found`` or the exception's type name."""
    if isinstance(exc, AudioError):
        return exc.kind
    if isinstance(exc, storage.StorageError):
        return "storage"
    return "not_found" if isinstance(exc, FileNotFoundError) else type(exc).__name__


def error_text(exc: BaseException) -> str:
    """``kind: message`` for a table's error column (kind: :func:`error_kind`), credentials redacted."""
    if isinstance(exc, AudioError):  # its message already starts with its kind
        return redact(str(exc))[:2000]
    return redact(f"{error_kind(exc)}: {exc}")[:2000]


def error_columns(exc: BaseException) -> dict[str, str]:
    """A failed row's ``error`` and ``error_kind``, both made here from the exception."""
    return {S.ERROR: error_text(exc), S.ERROR_KIND: error_kind(exc)}


def _finite(value: float) -> float | None:
    """NaN/±inf → None would lose the distinction; keep NaN, map ±inf (silence) to NaN."""
    return value if math.isfinite(value) else math.nan


def pack_audio(samples: np.ndarray) -> tuple[bytes, int]:
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    return samples.tobytes(), int(samples.shape[0])


def unpack_audio(data: bytes, channels: int) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).reshape(channels, -1)


# "same": the input's container and sample format; else a container by name.
OUTPUT_FORMATS = ("same", *(ext.lstrip(".") for ext in AUDIO_EXTENSIONS))


@dataclass(frozen=True)
class DecodeConfig:
    """``channel_policy``: downmix (default), first, or per_channel; ``max_seconds``: longer inputs are refused.

    ``full_band``: an input above the model's rate keeps its band above the
    model's Nyquist (:mod:`pipeline.audio.fullband`); its own-rate audio
    travels to the write stage for that.
    """

    channel_policy: str = "downmix"
    max_seconds: float = 24 * 3600.0
    full_band: bool = True

    def __post_init__(self) -> None:
        if self.channel_policy not in CHANNEL_POLICIES:
            raise ValueError(f"decode.channel_policy must be one of {list(CHANNEL_POLICIES)}, got {self.channel_policy!r}")
        if not self.max_seconds > 0:
            raise ValueError("decode.max_seconds must be > 0")


class DecodeStage:
    """Fetch → decode → validate → channel policy → resample to the model rate (CPU).

    Files longer than ``stream.stream_seconds`` are only probed and marked
    ``streamed``: the model actor reads them block by block (:mod:`pipeline.inference.longform`).
    """

    def __init__(
        self,
        input_uri: str,
        model_rate: int,
        config: DecodeConfig,
        storage_config: storage.StorageConfig,
        stream: StreamConfig | None = None,
    ) -> None:
        self.input_uri, self.model_rate, self.config, self.storage = input_uri, model_rate, config, storage_config
        self.stream = stream or StreamConfig()

    def _probe_long(self, uri: str, out: dict) -> bool:
        """Fill ``out`` from the header and return True when the file is to be streamed."""
        info = probe(uri, self.storage)
        # A header without a length (some Ogg streams) says nothing: decode the file whole, which names it if empty.
        if info.frames == 0 or info.duration_seconds <= self.stream.stream_seconds:
            return False
        if info.duration_seconds > self.config.max_seconds:
            raise AudioError("too_long", f"{info.duration_seconds:.0f} s > max_seconds={self.config.max_seconds:.0f}")
        out.update({S.SAMPLE_RATE: info.sample_rate, S.CHANNELS: info.channels, S.DURATION_SECONDS: info.duration_seconds,
                    FRAMES: info.frames, SUBTYPE: info.subtype, FORMAT: info.format, S.STREAMED: True})
        return True

    def decode_row(self, row: dict) -> dict:
        start = time.perf_counter()
        out = {f.name: row.get(f.name) for f in _CARRIED}
        out.update({S.STATUS: S.STATUS_OK, S.ERROR: None, S.ERROR_KIND: None, AUDIO: None, AUDIO_CHANNELS: None,
                    AUDIO_FULL: None, S.STREAMED: False})
        uri = storage.join(self.input_uri, row[S.KEY])
        try:
            size = row.get(S.SIZE) or 0  # 0-byte files go to decode(), which names them empty
            if size and size >= self.stream.probe_bytes and self._probe_long(uri, out):
                out[S.SECONDS_DECODE] = time.perf_counter() - start
                return out
            audio = decode(storage.read_bytes(uri, self.storage))
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
            channels = to_channels(audio.samples, self.config.channel_policy)
            signal = resample(channels, audio.sample_rate, self.model_rate)
            out[AUDIO], out[AUDIO_CHANNELS] = pack_audio(signal)
            if self.config.full_band and audio.sample_rate > self.model_rate:  # full-band output
                out[AUDIO_FULL] = pack_audio(channels)[0]
        except Exception as exc:  # every failure becomes this row's error; the block goes on
            out.update({S.STATUS: S.STATUS_ERROR, **error_columns(exc)})
        out[S.SECONDS_DECODE] = time.perf_counter() - start
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist([self.decode_row(r) for r in batch.to_pylist()], schema=DECODED_SCHEMA)


@dataclass(frozen=True)
class ModelStageConfig:
    """Model-actor settings.

    ``torch_threads``: intra-op threads of the actor's torch (0 keeps Ray's
    default, one per reserved CPU). 1 with several actors measured best on
    CPU (docs/benchmarks.md); GPU actors need no more.
    """

    checkpoint_uri: str | None = None
    torch_threads: int = 1
    enhance: EnhanceConfig = field(default_factory=EnhanceConfig)
    # Inference-time values of the family's sampler settings (``ModelSpec.sampler_fields``: UDiffSE's
    # num_e/num_em/nbatch…, FUSE's num_steps), e.g. ``--set model.sampler.num_e=30``; {}: the checkpoint's.
    sampler: dict[str, Any] = field(default_factory=dict)


class ModelStage:
    """Model actor: loads the checkpoint once, packs windows of all clips in a batch into fixed shapes.

    Reads ``audio`` (float32 bytes at the model rate) of the rows whose status
    is ok and writes the enhanced audio to ``output_column`` (``audio`` by
    default: the noisy audio is not needed downstream); every other column is
    passed through. Construction only reads, so Ray may restart the actor.
    """

    def __init__(
        self,
        config: ModelStageConfig,
        storage_config: storage.StorageConfig,
        output_column: str = AUDIO,
        long_files: LongFileWriter | None = None,
        prefix: str = "",
    ) -> None:
        import torch

        from pipeline.core.checkpoints import load_model
        from pipeline.inference.peer import make_enhancer  # a peer model (deepfilternet3) or a family

        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        loaded = load_model(config.checkpoint_uri, storage_config, config.sampler)
        self.model_id = loaded.model_id
        self.enhancer = make_enhancer(loaded.model, config.enhance)
        self.output_column = output_column
        self.long_files = long_files
        # Several model stages in one dataset (an evaluation of several models) keep
        # their columns apart by a prefix: "<label>:seconds_model", …
        self.prefix = prefix

    def __call__(self, batch: pa.Table) -> pa.Table:
        optional = [c for c in (S.ERROR_KIND, S.STREAMED, S.KEY, FORMAT, SUBTYPE) if c in batch.column_names]
        rows = batch.select([S.STATUS, S.ERROR, AUDIO, AUDIO_CHANNELS, *optional]).to_pylist()
        streamed = [i for i, r in enumerate(rows) if r[S.STATUS] == S.STATUS_OK and r.get(S.STREAMED)]
        todo = [
            (i, c)
            for i, r in enumerate(rows)
            if r[S.STATUS] == S.STATUS_OK and not r.get(S.STREAMED)
            for c in unpack_audio(r[AUDIO], r[AUDIO_CHANNELS])
        ]
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
            _set_stats(new, i, mean_stats([p[2] for p in parts]))
        new[S.STATUS] = [r[S.STATUS] for r in rows]
        new[S.ERROR] = [r[S.ERROR] for r in rows]
        new[S.ERROR_KIND] = [r.get(S.ERROR_KIND) for r in rows]
        for i in streamed:
            self._stream(rows[i], i, new)
        types = {self.prefix + k: v for k, v in MODEL_FIELDS.items()}
        types |= {self.output_column: pa.large_binary(), S.STATUS: pa.string(), S.ERROR: pa.string(), S.ERROR_KIND: pa.string()}
        new = {(k if k in (self.output_column, S.STATUS, S.ERROR, S.ERROR_KIND) else self.prefix + k): v for k, v in new.items()}
        return with_columns(batch, new, types)

    def _stream(self, row: dict, i: int, new: dict[str, list]) -> None:
        """Enhance a long file straight from the input to its output key (see :mod:`pipeline.inference.longform`)."""
        try:
            if self.long_files is None:
                raise RuntimeError("streamed row but the model stage has no long-file writer")
            key, fmt, subtype = output_target(row, self.long_files.output_format)
            result = self.long_files.run(self.enhancer, row[S.KEY], key, fmt, subtype)
        except Exception as exc:  # the file's error, not the actor's
            new[S.STATUS][i], new[S.ERROR][i], new[S.ERROR_KIND][i] = S.STATUS_ERROR, error_text(exc), error_kind(exc)
            return
        new[S.SECONDS_MODEL][i] = result.seconds
        new[S.INPUT_RMS_DBFS][i] = _finite(power_db(result.input_power))
        new[S.OUTPUT_RMS_DBFS][i] = _finite(power_db(result.output_power))
        ratio = result.removed_power / result.input_power if result.input_power > 0 else math.nan
        new[S.REMOVED_NOISE_DB][i] = _finite(power_db(ratio))
        _set_stats(new, i, result.stats)


def _set_stats(new: dict[str, list], i: int, stats: dict) -> None:
    """The model's clip stats into row ``i``, under the family's own names in the map.

    A stat whose name is a legacy column (``gmm_nll``, ``gmm_occupancy``: DiffGMM's, from before the
    map) also fills that column, so existing tables and queries keep their shape; the match is by
    stat name, never by family.
    """
    new[S.MODEL_STATS][i] = S.flat_stats(stats)
    new[S.GMM_NLL][i] = stats.get(S.GMM_NLL)
    new[S.GMM_OCCUPANCY][i] = stats.get(S.GMM_OCCUPANCY)


MODEL_FIELDS = {
    S.MODEL_ID: pa.string(),
    S.SECONDS_MODEL: pa.float64(),
    S.INPUT_RMS_DBFS: pa.float64(),
    S.OUTPUT_RMS_DBFS: pa.float64(),
    S.REMOVED_NOISE_DB: pa.float64(),
    S.GMM_NLL: pa.float64(),
    S.GMM_OCCUPANCY: pa.list_(pa.float32()),
    S.MODEL_STATS: S.MODEL_STATS_TYPE,
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
    """``output_format``: "same" keeps the input's container and sample format, else wav/flac/ogg.

    ``metrics``: reference metrics (computed when the job has a reference
    prefix, for the output and, in the ``input_*`` columns, for the noisy input:
    the baseline the report draws beside the output) and "dnsmos" (no reference needed: DNSMOS of input and output,
    settings in ``dnsmos``). DNSMOS is off by default: on CPU it costs more
    than the model itself (docs/benchmarks.md).
    """

    output_format: str = "same"
    metrics: tuple[str, ...] = ("pesq_wb", "sdr_db", "si_sdr_db", "stoi")
    dnsmos: DNSMOSConfig = field(default_factory=DNSMOSConfig)

    def __post_init__(self) -> None:
        check_metric_names(self.metrics, "write.metrics")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"write.output_format must be one of {list(OUTPUT_FORMATS)}, got {self.output_format!r}")

    @property
    def reference_metrics(self) -> tuple[str, ...]:
        return tuple(m for m in self.metrics if m in METRIC_NAMES)

    @property
    def wants_dnsmos(self) -> bool:
        return DNSMOS in self.metrics


def output_key_for(key: str, output_format: str) -> str:
    """Mirrored relative key (refusing escapes), with the extension changed when the format is."""
    key = storage.safe_relative_key(key)
    if output_format == "same":
        return key
    stem = key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key
    return f"{stem}.{output_format.lower()}"


def output_target(row: dict, output_format: str) -> tuple[str, str, str | None]:
    """(output key, soundfile format, subtype) of a decoded row: the input's own unless ``output_format`` says otherwise."""
    key = output_key_for(row[S.KEY], output_format)
    if output_format == "same":
        return key, row[FORMAT], row[SUBTYPE]
    return key, format_for_key(key), None


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

    def _metrics(self, key: str, enhanced: np.ndarray, noisy: np.ndarray | None) -> tuple[dict, str | None]:
        """Scores of the (downmixed) model-rate output against the reference at the same key, and the same
        scores of the noisy input (``input_*`` columns) when it is given.

        ``enhanced``, ``noisy``: (channels, samples) float32 at the model's rate.
        """
        names = self.config.reference_metrics
        if self.reference_uri is None or not names:
            return {}, None
        inputs = [S.INPUT_PREFIX + n for n in names] if noisy is not None else []
        try:
            ref = decode(storage.read_bytes(storage.join(self.reference_uri, key), self.storage))
        except Exception as exc:  # a missing or bad reference costs the metrics, not the clip
            return {n: math.nan for n in [*names, *inputs]}, f"reference: {error_text(exc)}"
        reference = resample(to_channels(ref.samples, "downmix")[0], ref.sample_rate, self.model_rate)
        scores = score_all(reference, enhanced.mean(axis=0), self.model_rate, names)
        values = {n: s.value for n, s in scores.items()}
        errors = join_errors(scores)
        if noisy is not None:
            before = score_all(reference, noisy.mean(axis=0), self.model_rate, names)
            values.update({S.INPUT_PREFIX + n: s.value for n, s in before.items()})
            errors = "; ".join(filter(None, [errors, join_errors({S.INPUT_PREFIX + n: s for n, s in before.items()})])) or None
        return values, errors

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
                **{c: row.get(c) for c in (S.DURATION_SECONDS, S.SAMPLE_RATE, S.CHANNELS, S.STATUS, S.ERROR, S.ERROR_KIND, S.MODEL_ID)},
                **{c: row.get(c) for c in (S.SECONDS_DECODE, S.SECONDS_MODEL, S.INPUT_RMS_DBFS, S.OUTPUT_RMS_DBFS)},
                **{c: row.get(c) for c in (S.REMOVED_NOISE_DB, S.GMM_NLL, S.GMM_OCCUPANCY, S.MODEL_STATS, S.STREAMED)},
            }
        )
        for name in (*S.QUALITY_COLUMNS, *S.INPUT_QUALITY_COLUMNS):
            out[name] = math.nan
        if row[S.STATUS] == S.STATUS_OK and row.get(S.STREAMED):
            # The model actor already wrote it; metrics would need the whole hour in memory.
            out[S.OUTPUT_KEY] = output_target(row, self.config.output_format)[0]
            if self.reference_uri is not None:
                out[S.METRICS_ERROR] = "streamed: reference metrics are not computed for streamed (long) files"
        elif row[S.STATUS] == S.STATUS_OK:
            try:
                with_input = ENHANCED_AUDIO in row
                enhanced = unpack_audio(row[ENHANCED_AUDIO if with_input else AUDIO], row[AUDIO_CHANNELS])
                key, fmt, subtype = output_target(row, self.config.output_format)
                back = np.stack([fit_length(resample(c, self.model_rate, row[S.SAMPLE_RATE]), row[FRAMES]) for c in enhanced])
                if row.get(AUDIO_FULL):  # the input's band above the model's Nyquist, under the model's gain
                    full = unpack_audio(row[AUDIO_FULL], row[AUDIO_CHANNELS])
                    back = np.stack([full_band(x, y, row[S.SAMPLE_RATE], self.model_rate) for x, y in zip(full, back)])
                data = encode(back, row[S.SAMPLE_RATE], fmt, subtype)
                storage.write_bytes(storage.join(self.audio_uri, key), data, self.storage)
                out[S.OUTPUT_KEY] = key
                noisy = unpack_audio(row[AUDIO], row[AUDIO_CHANNELS]) if with_input else None
                scores, metrics_error = self._metrics(row[S.KEY], enhanced, noisy)
                out.update(scores)
                if self.config.wants_dnsmos and noisy is not None:
                    try:
                        out.update(dnsmos_columns(noisy.mean(axis=0), [enhanced.mean(axis=0)], self.model_rate, self.config.dnsmos)[0])
                    except Exception as exc:  # DNSMOS failing costs its columns, not the clip
                        metrics_error = "; ".join(filter(None, [metrics_error, f"dnsmos: {error_text(exc)}"]))
                out[S.METRICS_ERROR] = metrics_error
            except Exception as exc:  # a failed write is this clip's error, not the job's
                out.update({S.STATUS: S.STATUS_ERROR, **error_columns(exc), S.OUTPUT_KEY: None})
        out[S.SECONDS_WRITE] = time.perf_counter() - start
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        return S.to_table([self.write_row(r) for r in batch.to_pylist()], S.CLIP_SCHEMA)

