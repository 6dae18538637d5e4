"""Column names and explicit Parquet schemas of every table the pipeline writes.

Readers (query, report, nightly) import these constants rather than spelling
column names. Units are in the names: ``*_seconds``, ``*_db``, ``*_dbfs``,
``sample_rate`` in Hz, sizes in bytes.
"""

from __future__ import annotations

import pyarrow as pa

# Manifest: one row per listed input object.
KEY = "key"
SIZE = "size"
ETAG = "etag"
MTIME = "mtime"

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field(SIZE, pa.int64()),
        pa.field(ETAG, pa.string()),
        pa.field(MTIME, pa.timestamp("us", tz="UTC")),
    ]
)

# Per-clip table of the denoise job.
RUN_ID = "run_id"
INPUT_KEY = "input_key"
INPUT_SIZE = "input_size"
INPUT_ETAG = "input_etag"
INPUT_MTIME = "input_mtime"
DURATION_SECONDS = "duration_seconds"
SAMPLE_RATE = "sample_rate"
CHANNELS = "channels"
STATUS = "status"
ERROR = "error"
# The error's kind, set where the error is made (an AudioError's label, "storage", "not_found" or the exception's type):
# what `query --errors` and the run summary count by, so nothing parses the message.
ERROR_KIND = "error_kind"
OUTPUT_KEY = "output_key"
STREAMED = "streamed"  # long file enhanced block by block (no reference metrics)
MODEL_ID = "model_id"
SECONDS_DECODE = "seconds_decode"
SECONDS_MODEL = "seconds_model"
SECONDS_WRITE = "seconds_write"
PESQ_WB = "pesq_wb"
PESQ_NB = "pesq_nb"
SDR_DB = "sdr_db"
SI_SDR_DB = "si_sdr_db"
STOI = "stoi"
METRICS_ERROR = "metrics_error"
INPUT_RMS_DBFS = "input_rms_dbfs"
OUTPUT_RMS_DBFS = "output_rms_dbfs"
REMOVED_NOISE_DB = "removed_noise_db"
GMM_NLL = "gmm_nll"
GMM_OCCUPANCY = "gmm_occupancy"
# UDiffSE's per-clip NMF noise fingerprint in model_stats (model/udiffse/model.py): the EM's final
# noise NLL (nats), the noise model's level per octave band (noise_band_db_0…6, dB; bands
# 0–125–250–500–1k–2k–4k–8k Hz) and its dominant template's centre frequency (Hz).
EM_NLL = "em_nll"
NOISE_BAND_DB = "noise_band_db"
NOISE_DOMINANT_HZ = "noise_dominant_hz"
# Every model family's own per-clip stats, by the model's stat name: one map
# column, so a new family adds keys, not columns (DiffGMM: gmm_nll,
# gmm_occupancy_0…K-1; AIGD: image_ssim). DuckDB: model_stats['image_ssim'].
# gmm_nll and gmm_occupancy keep their own columns for the queries built on them.
MODEL_STATS = "model_stats"
MODEL_STATS_TYPE = pa.map_(pa.string(), pa.float64())

# No-reference quality (DNSMOS P.835 SIG/BAK/OVRL and P.808, MOS 1–5) of the
# output; the input's carry the ``input_`` prefix, output − input the ``delta_``
# prefix. Null when DNSMOS is off (``metrics.dnsmos``) or the clip is streamed.
DNSMOS_SIG = "dnsmos_sig"
DNSMOS_BAK = "dnsmos_bak"
DNSMOS_OVRL = "dnsmos_ovrl"
DNSMOS_P808 = "dnsmos_p808"
DNSMOS_BASE = (DNSMOS_SIG, DNSMOS_BAK, DNSMOS_OVRL, DNSMOS_P808)
DNSMOS_COLUMNS = tuple(f"{prefix}{name}" for name in DNSMOS_BASE for prefix in ("", "input_"))


def dnsmos_fields() -> list[pa.Field]:
    return [pa.field(f"{prefix}{name}", pa.float64()) for name in DNSMOS_BASE for prefix in ("", "input_", "delta_")]


STATUS_OK = "ok"
STATUS_ERROR = "error"

QUALITY_COLUMNS = (PESQ_WB, PESQ_NB, SDR_DB, SI_SDR_DB, STOI)
INPUT_PREFIX = "input_"
# The same reference metrics of the noisy input (against the same reference): the baseline a
# denoise run's scores are read against (the report draws both). Null in runs written before.
INPUT_QUALITY_COLUMNS = tuple(f"{INPUT_PREFIX}{name}" for name in QUALITY_COLUMNS)

CLIP_SCHEMA = pa.schema(
    [
        pa.field(RUN_ID, pa.string(), nullable=False),
        pa.field(INPUT_KEY, pa.string(), nullable=False),
        pa.field(INPUT_SIZE, pa.int64()),
        pa.field(INPUT_ETAG, pa.string()),
        pa.field(INPUT_MTIME, pa.timestamp("us", tz="UTC")),
        pa.field(DURATION_SECONDS, pa.float64()),
        pa.field(SAMPLE_RATE, pa.int32()),
        pa.field(CHANNELS, pa.int32()),
        pa.field(STATUS, pa.string(), nullable=False),
        pa.field(ERROR, pa.string()),
        pa.field(ERROR_KIND, pa.string()),
        pa.field(OUTPUT_KEY, pa.string()),
        pa.field(STREAMED, pa.bool_()),
        pa.field(MODEL_ID, pa.string()),
        pa.field(SECONDS_DECODE, pa.float64()),
        pa.field(SECONDS_MODEL, pa.float64()),
        pa.field(SECONDS_WRITE, pa.float64()),
        pa.field(PESQ_WB, pa.float64()),
        pa.field(PESQ_NB, pa.float64()),
        pa.field(SDR_DB, pa.float64()),
        pa.field(SI_SDR_DB, pa.float64()),
        pa.field(STOI, pa.float64()),
        *(pa.field(name, pa.float64()) for name in INPUT_QUALITY_COLUMNS),
        pa.field(METRICS_ERROR, pa.string()),
        pa.field(INPUT_RMS_DBFS, pa.float64()),
        pa.field(OUTPUT_RMS_DBFS, pa.float64()),
        pa.field(REMOVED_NOISE_DB, pa.float64()),
        pa.field(GMM_NLL, pa.float64()),
        pa.field(GMM_OCCUPANCY, pa.list_(pa.float32())),
        pa.field(MODEL_STATS, MODEL_STATS_TYPE),
        *dnsmos_fields(),
    ]
)

# Evaluation table: one row per (clip, model). Metric columns of the noisy
# input carry the ``input_`` prefix, differences the ``delta_`` prefix.
MODEL = "model"
CLEAN_KEY = "clean_key"
NOISY_KEY = "noisy_key"
EVAL_METRICS = QUALITY_COLUMNS


def _eval_schema() -> pa.Schema:
    fields = [
        pa.field(RUN_ID, pa.string(), nullable=False),
        pa.field(MODEL, pa.string(), nullable=False),
        pa.field(MODEL_ID, pa.string()),
        pa.field(CLEAN_KEY, pa.string()),
        pa.field(NOISY_KEY, pa.string()),
        pa.field(DURATION_SECONDS, pa.float64()),
        pa.field(SAMPLE_RATE, pa.int32()),
        pa.field(STATUS, pa.string(), nullable=False),
        pa.field(ERROR, pa.string()),
        pa.field(METRICS_ERROR, pa.string()),
        pa.field(SECONDS_MODEL, pa.float64()),
        pa.field(MODEL_STATS, MODEL_STATS_TYPE),
    ]
    for name in EVAL_METRICS:
        fields += [
            pa.field(name, pa.float64()),
            pa.field(f"input_{name}", pa.float64()),
            pa.field(f"delta_{name}", pa.float64()),
        ]
    return pa.schema(fields + dnsmos_fields())


EVAL_SCHEMA = _eval_schema()


# The nightly ledger (pipeline.denoise.nightly): one row per input key, its current result.
IDENTITY = "identity"
# The hash of the config keys that shape an output (pipeline.denoise.nightly.output_config_sha256), not
# the runs view's hash of a run's whole config (pipeline.core.results.CONFIG_SHA256).
OUTPUT_CONFIG_SHA256 = "output_config_sha256"
LEGACY_OUTPUT_CONFIG_SHA256 = "config_sha256"  # its name in ledgers and nightly markers written before
ATTEMPTS = "attempts"
UPDATED_AT = "updated_at"
LEDGER_SCHEMA = pa.schema(
    [
        pa.field(INPUT_KEY, pa.string(), nullable=False),
        pa.field(INPUT_SIZE, pa.int64()),
        pa.field(INPUT_ETAG, pa.string()),
        pa.field(INPUT_MTIME, pa.timestamp("us", tz="UTC")),
        pa.field(IDENTITY, pa.string()),
        pa.field(MODEL_ID, pa.string()),
        pa.field(OUTPUT_CONFIG_SHA256, pa.string()),
        pa.field(RUN_ID, pa.string()),
        pa.field(STATUS, pa.string()),
        pa.field(ERROR, pa.string()),
        pa.field(ERROR_KIND, pa.string()),  # decides a retry (pipeline.denoise.nightly.plan); absent in old ledgers
        pa.field(ATTEMPTS, pa.int32()),
        pa.field(OUTPUT_KEY, pa.string()),
        pa.field(UPDATED_AT, pa.timestamp("us", tz="UTC")),
    ]
)


def flat_stats(stats: dict) -> list[tuple[str, float]]:
    """A model's per-clip stats as ``model_stats`` map entries: lists become ``name_0``, ``name_1``, …"""
    entries = []
    for name, value in stats.items():
        if isinstance(value, (list, tuple)):
            entries.extend((f"{name}_{i}", float(v)) for i, v in enumerate(value))
        else:
            entries.append((name, float(value)))
    return entries


def empty_row(schema: pa.Schema) -> dict:
    """A row with every column None, to be filled in; keeps rows complete by construction."""
    return {name: None for name in schema.names}


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows → a table with exactly ``schema`` (missing keys → null, extra keys → error)."""
    extra = {k for r in rows for k in r} - set(schema.names)
    if extra:
        raise ValueError(f"columns not in schema: {sorted(extra)}")
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)
