"""Decode stage: fetch → decode → validate → channel policy → resample to the model rate (CPU). Row contract: :mod:`pipeline.inference.rows`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa

from pipeline.audio.codec import (
    CHANNEL_POLICIES,
    AudioError,
    decode,
    resample,
    to_channels,
)
from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.inference.longform import StreamConfig, probe
from pipeline.inference.rows import (
    AUDIO,
    AUDIO_CHANNELS,
    AUDIO_FULL,
    DECODED_SCHEMA,
    FORMAT,
    FRAMES,
    SUBTYPE,
    error_columns,
    pack_audio,
)


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
            raise ValueError(
                f"decode.channel_policy must be one of {list(CHANNEL_POLICIES)}, got {self.channel_policy!r}"
            )
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
        out.update(
            {
                S.SAMPLE_RATE: info.sample_rate,
                S.CHANNELS: info.channels,
                S.DURATION_SECONDS: info.duration_seconds,
                FRAMES: info.frames,
                SUBTYPE: info.subtype,
                FORMAT: info.format,
                S.STREAMED: True,
            }
        )
        return True

    def decode_row(self, row: dict) -> dict:
        start = time.perf_counter()
        out = {f.name: row.get(f.name) for f in DECODED_SCHEMA}
        out.update(
            {
                S.STATUS: S.STATUS_OK,
                S.ERROR: None,
                S.ERROR_KIND: None,
                AUDIO: None,
                AUDIO_CHANNELS: None,
                AUDIO_FULL: None,
                S.STREAMED: False,
            }
        )
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
                raise AudioError(
                    "too_long", f"{audio.duration_seconds:.0f} s > max_seconds={self.config.max_seconds:.0f}"
                )
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
