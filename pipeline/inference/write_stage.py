"""Write stage: resample back → encode → write audio → metrics against the reference → one clip row (CPU). Row contract: :mod:`pipeline.inference.rows`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from pipeline.audio.codec import (
    decode,
    encode,
    fit_length,
    resample,
    to_channels,
)
from pipeline.audio.fullband import full_band
from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.inference.rows import (
    AUDIO,
    AUDIO_CHANNELS,
    AUDIO_FULL,
    ENHANCED_AUDIO,
    FRAMES,
    OUTPUT_FORMATS,
    error_columns,
    error_text,
    output_target,
    unpack_audio,
)
from pipeline.quality.dnsmos import DNSMOSConfig, dnsmos_columns
from pipeline.quality.metrics import (
    DNSMOS,
    METRIC_NAMES,
    check_metric_names,
    join_errors,
    score_all,
)


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
            errors = (
                "; ".join(filter(None, [errors, join_errors({S.INPUT_PREFIX + n: s for n, s in before.items()})]))
                or None
            )
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
                **{
                    c: row.get(c)
                    for c in (
                        S.DURATION_SECONDS,
                        S.SAMPLE_RATE,
                        S.CHANNELS,
                        S.STATUS,
                        S.ERROR,
                        S.ERROR_KIND,
                        S.MODEL_ID,
                    )
                },
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
                back = np.stack(
                    [fit_length(resample(c, self.model_rate, row[S.SAMPLE_RATE]), row[FRAMES]) for c in enhanced]
                )
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
                        out.update(
                            dnsmos_columns(
                                noisy.mean(axis=0), [enhanced.mean(axis=0)], self.model_rate, self.config.dnsmos
                            )[0]
                        )
                    except Exception as exc:  # DNSMOS failing costs its columns, not the clip
                        metrics_error = "; ".join(filter(None, [metrics_error, f"dnsmos: {error_text(exc)}"]))
                out[S.METRICS_ERROR] = metrics_error
            except Exception as exc:  # a failed write is this clip's error, not the job's
                out.update({S.STATUS: S.STATUS_ERROR, **error_columns(exc), S.OUTPUT_KEY: None})
        out[S.SECONDS_WRITE] = time.perf_counter() - start
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        return S.to_table([self.write_row(r) for r in batch.to_pylist()], S.CLIP_SCHEMA)
