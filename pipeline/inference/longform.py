"""Long files, streamed block by block through the model actor.

A file longer than ``stream_seconds`` is not decoded into the dataset: the
decode stage only probes its header, and the model actor reads it in blocks of
``block_seconds``, resamples each channel blockwise (:class:`StreamResampler`),
enhances it with :meth:`Enhancer.enhance_stream`, resamples back, and writes the
result block by block to a local temporary file that is then uploaded to the
output key. Memory is a few blocks and one batch of windows, whatever the
file's length; nothing reaches the output prefix until the whole file is done.
"""

from __future__ import annotations

import collections
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.audio.codec import (
    AudioError,
    StreamResampler,
    clip_for_subtype,
    explain_decode_error,
    resampled_length,
    to_channels,
)
from pipeline.audio.fullband import FullBandStream
from pipeline.core import storage
from pipeline.inference.enhance import mean_stats


@dataclass(frozen=True)
class StreamConfig:
    """``stream_seconds``: longer files stream; only files of at least ``probe_bytes`` are probed for it.

    Probing costs one small ranged read, so small files (which cannot hold
    ``stream_seconds`` of audio at any usual bit rate) are decoded whole
    without it. ``block_seconds``: read size at the input rate.
    """

    stream_seconds: float = 600.0
    probe_bytes: int = 1 << 20
    block_seconds: float = 10.0


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of a file, from soundfile without decoding it."""

    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate


def probe(uri: str, storage_config: storage.StorageConfig | None = None) -> AudioInfo:
    """Read only the header of ``uri`` (ranged reads on object stores)."""
    import soundfile as sf

    fs, path = storage.filesystem(uri, storage_config)
    with fs.open(path, "rb") as raw:
        try:
            with sf.SoundFile(raw) as f:
                return AudioInfo(int(f.samplerate), int(f.channels), int(f.frames), f.format, f.subtype)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise explain_decode_error(exc) from exc


def fan_out(source: Iterator[np.ndarray], count: int) -> list[Iterator[np.ndarray]]:
    """Split an iterator of (count, n) blocks into ``count`` iterators of (n,) rows.

    Consumers that advance in lockstep (as identical per-channel pipelines do)
    keep each queue at about one block.
    """
    queues = [collections.deque() for _ in range(count)]

    def channel(index: int) -> Iterator[np.ndarray]:
        while True:
            if not queues[index]:
                block = next(source, None)
                if block is None:
                    return
                for q, row in zip(queues, block):
                    q.append(row)
            yield queues[index].popleft()

    return [channel(i) for i in range(count)]


def _resampled(pieces: Iterator[np.ndarray], resampler: StreamResampler) -> Iterator[np.ndarray]:
    for piece in pieces:
        yield resampler.process(piece)
    yield resampler.finish()


class _Tee:
    """Keeps the model-rate input of one channel until the matching output arrives (for the level figures)."""

    def __init__(self, pieces: Iterator[np.ndarray]) -> None:
        self.pieces, self.pending = pieces, collections.deque()

    def __iter__(self) -> Iterator[np.ndarray]:
        for piece in self.pieces:
            self.pending.append(piece)
            yield piece

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` input samples, in order (fewer where the input has ended)."""
        parts, need = [], count
        while need and self.pending:
            head = self.pending.popleft()
            if len(head) > need:
                self.pending.appendleft(head[need:])
                head = head[:need]
            parts.append(head)
            need -= len(head)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


@dataclass
class StreamResult:
    """Figures of one streamed file; levels over all channels at the model rate."""

    stats: dict  # the model's per-clip stats (pipeline.inference.enhance.ClipStats), mean over channels
    input_power: float  # mean square
    output_power: float
    removed_power: float
    seconds: float


class LongFileWriter:
    """Streams one long input through an :class:`Enhancer` to its output key (runs inside the model actor)."""

    def __init__(
        self,
        input_uri: str,
        audio_uri: str,
        channel_policy: str,
        output_format: str,
        config: StreamConfig,
        storage_config: storage.StorageConfig,
        full_band: bool = True,
    ) -> None:
        self.input_uri, self.audio_uri, self.channel_policy = input_uri, audio_uri, channel_policy
        self.output_format, self.config, self.storage = output_format, config, storage_config
        self.full_band = full_band  # as decode.full_band (pipeline.audio.fullband)

    def run(self, enhancer, key: str, output_key: str, output_format: str, output_subtype: str | None) -> StreamResult:
        """Enhance ``input_uri/key`` into ``audio_uri/output_key`` as ``output_format``/``output_subtype``.

        Raises on a bad file; nothing is written then.
        """
        import soundfile as sf

        start = time.perf_counter()
        fs, path = storage.filesystem(storage.join(self.input_uri, key), self.storage)
        with fs.open(path, "rb") as raw, sf.SoundFile(raw) as src, tempfile.TemporaryDirectory() as tmp:
            rate, frames = int(src.samplerate), int(src.frames)
            block = max(1, int(self.config.block_seconds * rate))

            def blocks() -> Iterator[np.ndarray]:
                while True:
                    data = src.read(block, dtype="float32", always_2d=True)
                    if not len(data):
                        return
                    if not np.isfinite(data).all():
                        raise AudioError("non_finite", "NaN or Inf samples")
                    yield to_channels(np.ascontiguousarray(data.T), self.channel_policy)

            channels = 1 if self.channel_policy != "per_channel" else int(src.channels)
            model_rate = enhancer.sample_rate
            model_length = resampled_length(frames, rate, model_rate)
            widen = self.full_band and rate > model_rate
            # Own-rate input is kept until its output arrives only when the full band needs it.
            raws = [_Tee(p) if widen else p for p in fan_out(blocks(), channels)]
            tees = [_Tee(_resampled(iter(r), StreamResampler(rate, model_rate))) for r in raws]
            wide = [FullBandStream(rate, model_rate) if widen else None for _ in range(channels)]
            streams = [enhancer.enhance_stream(iter(t), model_length) for t in tees]
            backs = [StreamResampler(model_rate, rate) for _ in range(channels)]
            subtype = output_subtype if output_subtype and sf.check_format(output_format, output_subtype) else None
            local = os.path.join(tmp, "out." + output_format.lower())
            power = np.zeros(3)  # input, output, removed: sums of squares
            written, stats = 0, []
            with sf.SoundFile(local, "w", rate, channels, format=output_format, subtype=subtype) as dst:
                for parts in zip(*streams):
                    outs = []
                    for tee, back, raw, fb, (enhanced, clip_stats) in zip(tees, backs, raws, wide, parts):
                        noisy, clean = tee.take(len(enhanced)).astype(np.float64), enhanced.astype(np.float64)
                        power += [np.dot(noisy, noisy), np.dot(clean, clean), np.sum(np.square(noisy - clean))]
                        outs.append(back.process(enhanced))
                        if clip_stats is not None:
                            outs[-1] = np.concatenate([outs[-1], back.finish()])
                            stats.append(clip_stats)
                        if fb is not None:  # the input's own-rate samples under the model's top-band gain
                            x = raw.take(len(outs[-1]))  # the resampler may give a few samples past the file's end
                            y = outs[-1][: len(x)]
                            outs[-1] = (
                                fb.push(x, y) if clip_stats is None else np.concatenate([fb.push(x, y), fb.finish()])
                            )
                    data = np.stack(outs)[:, : frames - written]
                    dst.write(clip_for_subtype(data, dst.subtype).T)
                    written += data.shape[1]
                if written < frames:
                    dst.write(np.zeros((frames - written, channels), dtype=np.float32))
            storage.put_file(local, storage.join(self.audio_uri, output_key), self.storage)
        total = max(model_length * channels, 1)
        return StreamResult(
            stats=mean_stats(stats),
            input_power=power[0] / total,
            output_power=power[1] / total,
            removed_power=power[2] / total,
            seconds=time.perf_counter() - start,
        )
