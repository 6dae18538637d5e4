"""What travels between the denoise job's stages: column names, the decoded schema, audio bytes, error columns.

The stages (:mod:`pipeline.inference.decode_stage`, :mod:`~pipeline.inference.model_stage`,
:mod:`~pipeline.inference.write_stage`) are plain callables over pyarrow batches. Each takes a
``pyarrow.Table`` batch and returns one with a fixed schema, one output row per input row. A failure
in a row becomes that row's ``status="error"`` and ``error="<kind>: <message>"`` and the row travels
on with no audio; a stage never raises for a bad file, so one file never loses a block. Ray
resources are set where the stages are wired in (:mod:`pipeline.denoise.job`), not there; the stages
run as well without Ray.

Audio travels between stages as raw float32 bytes (``(channels, samples)``, C order) with its
channel count: variable-length binary is the most robust column type Arrow and Ray have.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from pipeline.audio.codec import (
    AUDIO_EXTENSIONS,
    AudioError,
    format_for_key,
)
from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.redact import redact

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


def finite(value: float) -> float | None:
    """NaN/±inf → None would lose the distinction; keep NaN, map ±inf (silence) to NaN."""
    return value if math.isfinite(value) else math.nan


def pack_audio(samples: np.ndarray) -> tuple[bytes, int]:
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    return samples.tobytes(), int(samples.shape[0])


def unpack_audio(data: bytes, channels: int) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).reshape(channels, -1)


# "same": the input's container and sample format; else a container by name.
OUTPUT_FORMATS = ("same", *(ext.lstrip(".") for ext in AUDIO_EXTENSIONS))


def with_columns(table: pa.Table, columns: dict[str, list], types: dict[str, pa.DataType]) -> pa.Table:
    """Replace or append columns (typed explicitly, so all-null columns keep their type)."""
    for name, values in columns.items():
        array = pa.array(values, type=types[name])
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, array) if index >= 0 else table.append_column(name, array)
    return table


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
