"""A seeded corpus of bad, odd and edge-case inputs, with what the denoise job must do with each.

Used by ``tests/test_bad_inputs.py`` and ``bench/reliability_report.py``
(which writes ``docs/reliability.md``). Every case is one file; the job must
give it exactly one row whose status and error kind are the expected ones, with
a message a person can read (no object reprs), and finish.

Truncation policy: a file that holds less audio than its header declares is an
error row (``truncated: header declares N frames, file holds M``), never a
shorter output that looks fine.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class Case:
    key: str
    description: str
    status: str  # "ok" or "error"
    kind: str | None = None  # expected error kind (the text before ':'), or None for ok
    streamed: bool = False


def _speechy(seconds: float, rate: int, rng: np.random.Generator, channels: int = 1) -> np.ndarray:
    from pipeline.audio.demo_data import noise_like, speech_like

    x = speech_like(seconds, rate, rng) + 0.05 * noise_like(seconds, rate, rng)
    x = (0.3 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)
    return x if channels == 1 else np.stack([x * (0.5 + 0.1 * c) for c in range(channels)], axis=1)


def _encode(x: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def cases(stream_seconds: float) -> list[tuple[Case, bytes]]:
    """Every case with its bytes; files that should stream are just over ``stream_seconds`` long."""
    rng = np.random.default_rng(2026)
    sig = _speechy(1.0, 16000, rng)
    wav = _encode(sig, 16000, "WAV", "PCM_16")
    flac = _encode(sig, 16000, "FLAC", "PCM_16")
    ogg = _encode(_speechy(2.0, 16000, rng), 16000, "OGG", "VORBIS")
    mp3 = _encode(_speechy(2.0, 16000, rng), 16000, "MP3", "MPEG_LAYER_III")
    nan = sig.copy()
    nan[100] = np.nan
    inf = sig.copy()
    inf[200] = np.inf
    zero_rate = bytearray(wav)
    zero_rate[24:28] = (0).to_bytes(4, "little")  # the fmt chunk's sample rate
    corrupt_flac = flac[: len(flac) // 3] + bytes(len(flac) // 3) + flac[2 * len(flac) // 3 :]
    out = [
        (Case("plain/ok_16k_pcm16.wav", "a plain 1 s 16 kHz PCM-16 WAV", "ok"), wav),
        (
            Case("truncated/cut.wav", "WAV whose header declares 1 s, holding a third of it", "error", "truncated"),
            wav[: 44 + len(wav) // 3 // 2 * 2],
        ),
        (Case("truncated/cut.flac", "FLAC cut at half its bytes", "error", "corrupt"), flac[: len(flac) // 2]),
        (
            Case(
                "truncated/cut.ogg", "Ogg Vorbis cut at a third of its bytes (Ogg declares no length)", "error", "empty"
            ),
            ogg[: len(ogg) // 3],
        ),
        (Case("truncated/cut.mp3", "MP3 cut at a third of its bytes", "error", "truncated"), mp3[: len(mp3) // 3]),
        (
            Case(
                "corrupt/zeroed_middle.flac", "FLAC with its middle third zeroed: fails mid-decode", "error", "corrupt"
            ),
            corrupt_flac,
        ),
        (Case("empty/zero_bytes.wav", "0-byte file", "error", "empty"), b""),
        (Case("empty/header_only.wav", "a WAV header and no data", "error", "truncated"), wav[:44]),
        (
            Case("content/silence.wav", "1 s of digital silence (stays silent)", "ok"),
            _encode(np.zeros(16000, np.float32), 16000, "WAV", "PCM_16"),
        ),
        (
            Case("content/nan.wav", "float WAV with a NaN sample", "error", "non_finite"),
            _encode(nan, 16000, "WAV", "FLOAT"),
        ),
        (
            Case("content/inf.wav", "float WAV with an Inf sample", "error", "non_finite"),
            _encode(inf, 16000, "WAV", "FLOAT"),
        ),
        (
            Case("content/hot_float.wav", "float WAV peaking at +18 dBFS (8× full scale): kept, not clipped", "ok"),
            _encode(8.0 * sig / 0.3, 16000, "WAV", "FLOAT"),
        ),
        (Case("formats/pcm_u8.wav", "8-bit unsigned PCM", "ok"), _encode(sig, 16000, "WAV", "PCM_U8")),
        (Case("formats/pcm_24.wav", "24-bit PCM", "ok"), _encode(sig, 16000, "WAV", "PCM_24")),
        (Case("formats/float32.wav", "32-bit float", "ok"), _encode(sig, 16000, "WAV", "FLOAT")),
        (Case("formats/ok.mp3", "a whole MP3", "ok"), mp3),
        (Case("rates/8k.wav", "8 kHz", "ok"), _encode(_speechy(1.0, 8000, rng), 8000, "WAV", "PCM_16")),
        (Case("rates/44k1.flac", "44.1 kHz FLAC", "ok"), _encode(_speechy(1.0, 44100, rng), 44100, "FLAC", "PCM_16")),
        (Case("rates/96k.wav", "96 kHz", "ok"), _encode(_speechy(0.5, 96000, rng), 96000, "WAV", "PCM_24")),
        (
            Case("channels/six.wav", "6 channels (downmixed)", "ok"),
            _encode(_speechy(1.0, 16000, rng, channels=6), 16000, "WAV", "PCM_16"),
        ),
        (Case("length/10ms.wav", "10 ms: shorter than one window", "ok"), _encode(sig[:160], 16000, "WAV", "PCM_16")),
        (
            Case("length/at_stream_threshold.wav", "exactly stream_seconds long: decoded whole", "ok"),
            _encode(_speechy(stream_seconds, 16000, rng), 16000, "WAV", "PCM_16"),
        ),
        (
            Case(
                "length/over_stream_threshold.wav",
                "just over stream_seconds: streamed block by block",
                "ok",
                streamed=True,
            ),
            _encode(_speechy(stream_seconds + 0.25, 16000, rng), 16000, "WAV", "PCM_16"),
        ),
        (
            Case("names/not_audio.wav", "a text file with an audio extension", "error", "not_audio"),
            b"This is a shopping list, not audio.\n" * 8,
        ),
        (Case("names/zero_rate.wav", "WAV header with sample rate 0", "error", "bad_header"), bytes(zero_rate)),
        (Case("names/with space/clip 1.wav", "spaces in folder and file name", "ok"), wav),
        (Case("names/ünïcødé/音声.wav", "non-ASCII names", "ok"), wav),
        (Case("names/a;b&c=d.wav", "';', '&' and '=' in the name", "ok"), wav),
    ]
    return out


def write_corpus(root: str, stream_seconds: float) -> list[Case]:
    """Write every case under the local folder ``root``; returns the cases."""
    written = []
    for case, data in cases(stream_seconds):
        path = os.path.join(root, case.key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        written.append(case)
    return written


def judge(case: Case, row: dict | None) -> tuple[bool, str]:
    """Whether a job's row for ``case`` is what the case expects, and what went wrong if not."""
    if row is None:
        return False, "no row"
    status, error = row["status"], row["error"] or ""
    if status != case.status:
        return False, f"status {status} ({error})"
    if case.kind is not None and not error.startswith(f"{case.kind}:"):
        return False, f"error kind {error.split(':', 1)[0]!r}, expected {case.kind!r}"
    if " object at 0x" in error or "<_io." in error:
        return False, f"object repr in the message: {error}"
    if case.status == "ok" and bool(row.get("streamed")) != case.streamed:
        return False, f"streamed={row.get('streamed')}, expected {case.streamed}"
    return True, ""
