"""Decoding, encoding, channel policy and resampling of audio clips.

Arrays are float32. A decoded clip is ``(channels, samples)``; a mono signal is
``(samples,)``. Decoding goes through soundfile (libsndfile: WAV, FLAC, OGG,
8/16/24/32-bit and float); resampling through torchaudio's windowed sinc.
"""

from __future__ import annotations

import io
import math
import re
import struct
from dataclasses import dataclass

import numpy as np

CHANNEL_POLICIES = ("downmix", "first", "per_channel")
# soundfile subtype to write back so an output keeps its input's sample format.
_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
AUDIO_EXTENSIONS = tuple(_FORMATS)


# What can be wrong with a file's content. Another attempt on the same bytes meets the same
# error, so a nightly run does not retry these until the file (or the model/config) changes.
AUDIO_ERROR_KINDS = frozenset(
    {"not_audio", "bad_header", "corrupt", "truncated", "empty", "decode", "non_finite", "too_long"}
)


class AudioError(ValueError):
    """A clip that cannot be used; ``kind`` (one of :data:`AUDIO_ERROR_KINDS`) is a short machine-readable label."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in AUDIO_ERROR_KINDS:
            raise ValueError(f"unknown AudioError kind {kind!r}; add it to AUDIO_ERROR_KINDS")
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass(frozen=True)
class DecodedAudio:
    """``samples``: (channels, samples) float32 in [-1, 1]; ``subtype``: soundfile subtype, e.g. PCM_16."""

    samples: np.ndarray
    sample_rate: int
    subtype: str
    format: str

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_seconds(self) -> float:
        return self.samples.shape[1] / self.sample_rate


# libsndfile's words → what went wrong, for people reading an error column.
_LIBSNDFILE_MESSAGES = (
    (
        re.compile(r"format not recogni[sz]ed|file contains data in an unknown format", re.I),
        "not_audio",
        "not an audio file that can be read (unknown or unsupported format)",
    ),
    (
        re.compile(r"SF_INFO struct incomplete|sample ?rate.*(zero|0)|bad sample ?rate|malformed|chunk", re.I),
        "bad_header",
        "the header is damaged or incomplete (no valid sample rate or channel count)",
    ),
    (
        re.compile(r"unexpected end of file|premature|truncat|Unspecified internal error|decod", re.I),
        "corrupt",
        "the audio data is damaged or cut short and cannot be decoded",
    ),
)
_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>", re.I)


def explain_decode_error(exc: BaseException) -> AudioError:
    """A soundfile/libsndfile exception as an :class:`AudioError` a person can act on (no object reprs)."""
    raw = _OBJECT_REPR.sub("the file", str(exc))
    raw = re.sub(r"^Error opening the file: ", "", raw)
    for pattern, kind, message in _LIBSNDFILE_MESSAGES:
        if pattern.search(raw):
            return AudioError(kind, f"{message} (libsndfile: {raw.strip()})")
    return AudioError("decode", raw.strip() or type(exc).__name__)


def wav_declared_frames(data: bytes) -> int | None:
    """Frames a RIFF/WAVE header declares for its data chunk; None when it is not a plain WAV or does not say.

    Streaming writers put 0 or 0xFFFFFFFF in the size fields: that says nothing, so None.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, block_align = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"fmt " and pos + 22 <= len(data):
            block_align = struct.unpack("<H", data[pos + 20 : pos + 22])[0]
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF) or not block_align:
                return None
            return size // block_align
        pos += 8 + size + (size & 1)
    return None


def decode(data: bytes) -> DecodedAudio:
    """Decode a whole file's bytes; raises :class:`AudioError` for empty, corrupt, truncated or non-finite audio.

    Truncation is an error, not a shorter output: a WAV whose header declares
    more frames than the file holds, or any file that decodes to fewer frames
    than its header says (``truncated: header declares N frames, file holds M``).
    """
    import soundfile as sf

    if not data:
        raise AudioError("empty", "file has 0 bytes")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if f.samplerate <= 0 or f.channels <= 0:
                raise AudioError("bad_header", f"the header gives sample rate {f.samplerate} and {f.channels} channels")
            declared = int(f.frames)
            samples = f.read(dtype="float32", always_2d=True).T
            rate, subtype, fmt = f.samplerate, f.subtype, f.format
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise explain_decode_error(exc) from exc
    held = int(samples.shape[1])
    wav_frames = wav_declared_frames(data) if fmt == "WAV" else None
    for claimed in (wav_frames, declared):
        if claimed is not None and claimed - held > 1:  # one frame of slack: MP3 decoders disagree by one
            raise AudioError("truncated", f"header declares {claimed} frames, file holds {held}")
    if held == 0:
        raise AudioError("empty", "no audio samples could be decoded (a header only, or a file cut right after it)")
    if not np.isfinite(samples).all():
        raise AudioError("non_finite", "NaN or Inf samples")
    return DecodedAudio(np.ascontiguousarray(samples), int(rate), subtype, fmt)


def to_channels(samples: np.ndarray, policy: str) -> np.ndarray:
    """Apply the multichannel policy to (channels, samples): → (n, samples) with n=1 unless per_channel."""
    if policy == "downmix":
        return samples.mean(axis=0, keepdims=True, dtype=np.float32)
    if policy == "first":
        return samples[:1]
    if policy == "per_channel":
        return samples
    raise ValueError(f"channel policy must be one of {CHANNEL_POLICIES}, got {policy!r}")


def resample(signal: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample along the last axis with torchaudio; a no-op when the rates match."""
    if from_rate == to_rate:
        return signal.astype(np.float32, copy=False)
    import torch
    import torchaudio.functional as AF

    # Arrow hands out read-only buffers; torch warns on those, so copy only when the array is not writable.
    out = AF.resample(torch.from_numpy(np.require(signal, np.float32, ["C", "W"])), from_rate, to_rate)
    return out.numpy()


class StreamResampler:
    """Resample a long signal piece by piece, equal (to float rounding) to :func:`resample` of the whole.

    torchaudio's kernel reads ``width`` input samples either side of each
    output sample, so each chunk is resampled with ``margin`` samples of real
    context on both sides and the margins' output is dropped. Chunks hold a
    multiple of the reduced input rate, so every chunk starts on an input
    sample that maps to a whole output sample. Memory: one chunk plus margins.
    """

    def __init__(self, from_rate: int, to_rate: int, chunk_samples: int = 1 << 16) -> None:
        self.from_rate, self.to_rate = from_rate, to_rate
        g = math.gcd(from_rate, to_rate)
        self._orig, self._new = from_rate // g, to_rate // g
        # torchaudio's defaults: lowpass_filter_width=6, rolloff=0.99.
        width = math.ceil(6 * self._orig / (min(self._orig, self._new) * 0.99))
        self.margin = self._orig * (math.ceil((width + self._orig) / self._orig) + 1)
        self.chunk = self._orig * max(1, -(-max(chunk_samples, self.margin) // self._orig))
        self._buffer = np.zeros(0, dtype=np.float32)
        self._history = 0  # samples at the buffer's start that are left context only

    def process(self, piece: np.ndarray) -> np.ndarray:
        """Feed (samples,) float32 at ``from_rate``; returns the output samples that are final."""
        piece = np.asarray(piece, dtype=np.float32)
        if self.from_rate == self.to_rate:
            return piece
        self._buffer = np.concatenate([self._buffer, piece])
        out = []
        while len(self._buffer) - self._history >= self.chunk + self.margin:
            y = resample(self._buffer[: self._history + self.chunk + self.margin], self.from_rate, self.to_rate)
            start = self._history * self._new // self._orig
            out.append(y[start : start + self.chunk * self._new // self._orig])
            self._buffer = self._buffer[self._history + self.chunk - self.margin :]
            self._history = self.margin
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def finish(self) -> np.ndarray:
        """The rest; the total is ``ceil(len(input) · to_rate / from_rate)`` samples, as :func:`resample` gives."""
        if self.from_rate == self.to_rate or len(self._buffer) == self._history:
            return np.zeros(0, dtype=np.float32)
        y = resample(self._buffer, self.from_rate, self.to_rate)
        self._buffer = np.zeros(0, dtype=np.float32)
        return y[self._history * self._new // self._orig :]


def resampled_length(length: int, from_rate: int, to_rate: int) -> int:
    """Samples :func:`resample` returns for ``length`` input samples."""
    if from_rate == to_rate:
        return length
    g = math.gcd(from_rate, to_rate)
    return -(-length * (to_rate // g) // (from_rate // g))


def encode(samples: np.ndarray, sample_rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    """(channels, samples) or (samples,) float32 → file bytes; clips to [-1, 1] for integer formats."""
    import soundfile as sf

    data = samples.T if samples.ndim == 2 else samples
    if subtype is None or not sf.check_format(fmt, subtype):
        subtype = sf.default_subtype(fmt)
    data = clip_for_subtype(data, subtype)
    buf = io.BytesIO()
    sf.write(buf, data, sample_rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def clip_for_subtype(data: np.ndarray, subtype: str) -> np.ndarray:
    """Integer sample formats clip to [-1, 1] (float formats keep overs, as the model may produce them)."""
    return data if subtype.startswith(("FLOAT", "DOUBLE")) else np.clip(data, -1.0, 1.0)


def format_for_key(key: str) -> str:
    """soundfile format name from a key's extension (WAV if unknown)."""
    lower = key.lower()
    for ext, fmt in _FORMATS.items():
        if lower.endswith(ext):
            return fmt
    return "WAV"


def fit_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis to exactly ``length`` samples (resampling can be off by one)."""
    if signal.shape[-1] >= length:
        return signal[..., :length]
    return np.pad(signal, [(0, 0)] * (signal.ndim - 1) + [(0, length - signal.shape[-1])])


def load_mono(uri: str, sample_rate: int, storage_config=None) -> np.ndarray:
    """Fetch and decode one file to mono (downmixed) float32 at ``sample_rate``."""
    from pipeline.core import storage

    audio = decode(storage.read_bytes(uri, storage_config))
    return resample(to_channels(audio.samples, "downmix")[0], audio.sample_rate, sample_rate)
