"""Clip-level enhancement: resample → windows → batched model → overlap-add → resample back.

The model sees only fixed-shape batches of windows ``(batch_windows, window)``
at its own rate; any clip length and rate go in, and exactly as many samples at
the input rate come out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pipeline.audio.codec import fit_length, resample
from pipeline.audio.windowing import PAD_MODES, OverlapAdd, WindowConfig, fill_window, frame, num_windows, overlap_add


@dataclass(frozen=True)
class EnhanceConfig:
    """``batch_windows``: windows per model call; ``device``: "auto" picks CUDA when present.

    ``pad_batches``: "auto" pads the last, partial batch to ``batch_windows``
    on CUDA only (one shape for the GPU's kernels and allocator); on CPU the
    padding would be computed for nothing. "yes"/"no" force it.

    ``short_clip_buckets``: a clip shorter than the window is run in one
    window of window/2, /4, … (this many halvings, the smallest that holds
    it) instead of a full window that is mostly zeros: 0.25 s clips cost
    1/8 of the compute at the defaults, and the model's per-window level
    normalisation sees the clip, not the padding. 0 turns it off.

    ``pad_mode``: how a window that runs past the clip's end is filled
    (:func:`pipeline.audio.windowing.fill_window`): "reflect" or "zeros".

    ``atten_lim_db``: at most this many dB of suppression in any STFT band and
    frame (:mod:`pipeline.audio.attenuation`; applied by
    :func:`pipeline.inference.peer.make_enhancer`); None: no limit.
    """

    window: WindowConfig = field(default_factory=WindowConfig)
    batch_windows: int = 16
    device: str = "auto"
    pad_batches: str = "auto"
    short_clip_buckets: int = 3
    pad_mode: str = "reflect"
    atten_lim_db: float | None = None  # h19

    def __post_init__(self) -> None:
        if self.atten_lim_db is not None and not self.atten_lim_db > 0:
            raise ValueError(f"atten_lim_db must be > 0 dB (or null for no limit), got {self.atten_lim_db!r}")
        if self.pad_batches not in ("auto", "yes", "no"):
            raise ValueError(f"pad_batches must be auto, yes or no, got {self.pad_batches!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got {self.pad_mode!r}")


def pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


# Per-clip model statistics by the model's own stat names (``gmm_nll`` for DiffGMM,
# ``image_ssim`` for AIGD, …): a (batch,) stat becomes a float, a (batch, k) stat a list.
ClipStats = dict[str, "float | list[float]"]


def mean_stats(items: list[ClipStats]) -> ClipStats:
    """Element-wise mean of several clips' (or channels') stats; keys missing from some items are averaged over the rest."""
    keys = dict.fromkeys(k for item in items for k in item)
    out: ClipStats = {}
    for k in keys:
        values = np.array([item[k] for item in items if k in item], dtype=np.float64)
        mean = values.mean(axis=0)
        out[k] = float(mean) if mean.ndim == 0 else mean.tolist()
    return out


class Enhancer:
    """Runs a model-family module (``enhance(windows) -> (windows, stats)``) over whole clips."""

    def __init__(self, model, config: EnhanceConfig | None = None) -> None:
        import torch

        self.config = config or EnhanceConfig()
        self.device = pick_device(self.config.device)
        self.model = model.to(self.device).eval()
        self.sample_rate = int(model.config.sample_rate)
        self.window, self.hop = self.config.window.samples(self.sample_rate)
        pad = self.config.pad_batches
        self.pad = pad == "yes" or (pad == "auto" and self.device.startswith("cuda"))
        self._torch = torch

    def enhance_windows(self, windows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(n, width) float32 → enhanced (n, width) float32 and per-window stats (width: a window or a bucket).

        Calls the model on ``batch_windows`` windows at a time; with padding on,
        the last batch is padded to that size so the device sees one shape, and
        the padding rows are dropped.
        """
        torch = self._torch
        n, width = windows.shape
        size = self.config.batch_windows
        outs, collected = [], {}
        for start in range(0, n, size):
            chunk = windows[start : start + size]
            batch = np.zeros((size if self.pad else len(chunk), width), dtype=np.float32)
            batch[: len(chunk)] = chunk
            enhanced, stats = self.model.enhance(torch.from_numpy(batch).to(self.device))
            outs.append(enhanced[: len(chunk)].float().cpu().numpy())
            for k, v in stats.items():
                collected.setdefault(k, []).append(v[: len(chunk)].float().cpu().numpy())
        return np.concatenate(outs), {k: np.concatenate(v) for k, v in collected.items()}

    @staticmethod
    def valid_samples(length: int, count: int, width: int, hop: int) -> np.ndarray:
        """Real (unpadded) samples in each of a clip's ``count`` windows, at least 1 (weights for stats)."""
        return np.clip(length - np.arange(count) * hop, 1, width).astype(np.float64)

    @staticmethod
    def clip_stats(stats: dict[str, np.ndarray], weights: np.ndarray) -> ClipStats:
        """Sample-weighted mean of per-window stats, (windows,) or (windows, k) arrays → floats or lists."""
        w = weights / weights.sum()
        return {k: float(w @ v) if v.ndim == 1 else [float(x) for x in w @ v] for k, v in stats.items()}

    def geometry(self, length: int) -> tuple[int, int]:
        """(window, hop) for a clip of ``length`` samples: the configured ones, or one bucket window that holds it."""
        width = self.window
        for _ in range(self.config.short_clip_buckets):
            if length > width // 2:
                break
            width //= 2
        # A bucketed clip is a single window, so its hop never matters.
        return (width, self.hop) if width == self.window else (width, width)

    def enhance_many(self, signals: list[np.ndarray]) -> list[tuple[np.ndarray, ClipStats]]:
        """Several (samples,) float32 clips at the model rate → enhanced clips of the same lengths.

        Windows of all clips of one width are packed together, so short clips
        share batches and the device sees ``(batch_windows, width)`` for a
        handful of widths.
        """
        groups: dict[tuple[int, int], list[int]] = {}
        for i, signal in enumerate(signals):
            groups.setdefault(self.geometry(len(signal)), []).append(i)
        out: list = [None] * len(signals)
        for (width, hop), members in groups.items():
            framed = [frame(signals[i], width, hop, self.config.pad_mode) for i in members]
            enhanced, stats = self.enhance_windows(np.concatenate(framed))
            start = 0
            for i, windows in zip(members, framed):
                stop = start + len(windows)
                length = len(signals[i])
                clip = overlap_add(enhanced[start:stop], length, hop)
                weights = self.valid_samples(length, len(windows), width, hop)
                out[i] = (clip, self.clip_stats({k: v[start:stop] for k, v in stats.items()}, weights))
                start = stop
        return out

    def enhance_stream(self, pieces: Iterable[np.ndarray], length: int) -> Iterator[tuple[np.ndarray, ClipStats | None]]:
        """Stream a clip of ``length`` samples (model rate) given as consecutive pieces.

        Yields (finished samples, None) as they become final and, last,
        (remaining samples, ClipStats). Memory is bounded by one batch of
        windows plus one piece, whatever the clip's length. Windows are those
        :meth:`enhance_many` uses, so both give the same samples.
        """
        width, hop = self.geometry(length)
        ola = OverlapAdd(length, width, hop)
        buffer = np.zeros(0, dtype=np.float32)
        consumed = 0  # clip position of buffer[0]
        total = num_windows(length, width, hop)
        done = 0
        pending: list[np.ndarray] = []
        collected: dict[str, list[np.ndarray]] = {}

        def run(batch: list[np.ndarray]) -> np.ndarray:
            nonlocal done
            enhanced, stats = self.enhance_windows(np.stack(batch))
            for k, v in stats.items():
                collected.setdefault(k, []).append(v)
            done += len(batch)
            return np.concatenate([ola.add(w) for w in enhanced])

        source = iter(pieces)
        exhausted = False
        while done + len(pending) < total:
            start = (done + len(pending)) * hop - consumed
            while not exhausted and len(buffer) < start + width:
                try:
                    buffer = np.concatenate([buffer, np.asarray(next(source), dtype=np.float32)])
                except StopIteration:
                    exhausted = True
            pending.append(fill_window(buffer[start : start + width], width, self.config.pad_mode))
            if len(pending) == self.config.batch_windows:
                yield run(pending), None
                pending = []
                drop = done * hop - consumed
                buffer, consumed = buffer[drop:], consumed + drop
        tail = run(pending) if pending else np.zeros(0, dtype=np.float32)
        weights = self.valid_samples(length, total, width, hop)
        stats = self.clip_stats({k: np.concatenate(v) for k, v in collected.items()}, weights)
        yield np.concatenate([tail, ola.finish()]), stats

    def enhance(self, waveform: np.ndarray, sample_rate: int) -> tuple[np.ndarray, ClipStats]:
        """(samples,) or (channels, samples) float32 at any rate → same shape and rate, enhanced.

        Channels are enhanced independently; stats are those of the first channel.
        """
        if waveform.ndim == 2:
            results = [self.enhance(ch, sample_rate) for ch in waveform]
            return np.stack([r[0] for r in results]), results[0][1]
        signal = resample(waveform, sample_rate, self.sample_rate)
        out, stats = self.enhance_many([signal])[0]
        back = resample(out, self.sample_rate, sample_rate)
        return fit_length(back, len(waveform)), stats

