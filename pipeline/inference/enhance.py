"""Clip-level enhancement: resample → windows → batched model → overlap-add → resample back.

What the model sees depends on its family's ``input_unit`` (:mod:`model.family`):
a "windows" family sees fixed-shape batches of windows ``(batch_windows, window)``
at its own rate, packed from several clips; a "clip" family sees one clip at a
time, in consecutive chunks of ``config.chunk_seconds`` with its state carried
from chunk to chunk. Any clip length and rate go in, and exactly as many samples
at the input rate come out.

Randomness: every model call gets its own ``torch.Generator`` seeded from
``EnhanceConfig.seed`` and the call's index within the clip group (or clip), so
a sampling family gives the same output for the same input and seed.
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

    ``seed``: seeds the generator handed to every model call (see the module
    docstring); a deterministic family ignores it.

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
    seed: int = 0
    atten_lim_db: float | None = None

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.atten_lim_db is not None and not self.atten_lim_db > 0:
            raise ValueError(f"atten_lim_db must be > 0 dB (or null for no limit), got {self.atten_lim_db!r}")
        if self.pad_batches not in ("auto", "yes", "no"):
            raise ValueError(f"pad_batches must be auto, yes or no, got {self.pad_batches!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got {self.pad_mode!r}")


def derived_seed(*keys: int) -> int:
    """A 63-bit seed mixed from non-negative ``keys`` (e.g. run seed, call index).

    Mixed, not concatenated: torch's CPU generator uses only the low 32 bits of its
    seed, so ``seed << 32 | call`` would give every seed the same stream.
    """
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0] >> np.uint64(1))


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
    """Runs a model family (:class:`model.family.ModelFamily`) over whole clips, honouring its ``input_unit``."""

    def __init__(self, model, config: EnhanceConfig | None = None) -> None:
        import torch

        from model.family import input_unit

        self.config = config or EnhanceConfig()
        self.device = pick_device(self.config.device)
        self.model = model.to(self.device).eval()
        self.sample_rate = int(model.config.sample_rate)
        self.input_unit = input_unit(model)
        self.window, self.hop = self.config.window.samples(self.sample_rate)
        if self.input_unit == "clip":
            self.chunk = max(1, int(round(float(model.config.chunk_seconds) * self.sample_rate)))
        pad = self.config.pad_batches
        self.pad = pad == "yes" or (pad == "auto" and self.device.startswith("cuda"))
        self._torch = torch

    def generator(self, call: int):
        """The generator of model call number ``call`` (from 0) of one clip group or clip, on the model's device."""
        return self._torch.Generator(device=self.device).manual_seed(derived_seed(self.config.seed, call))

    def enhance_windows(self, windows: np.ndarray, first_call: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(n, width) float32 → enhanced (n, width) float32 and per-window stats (width: a window or a bucket).

        Calls the model on ``batch_windows`` windows at a time; with padding on,
        the last batch is padded to that size so the device sees one shape, and
        the padding rows are dropped. Call *j* of this batch sequence gets
        :meth:`generator` ``(first_call + j)``.
        """
        if self.input_unit != "windows":
            raise ValueError(f"model {self.model.name!r} takes whole clips (input_unit 'clip'), not windows")
        torch = self._torch
        n, width = windows.shape
        size = self.config.batch_windows
        outs, collected = [], {}
        for call, start in enumerate(range(0, n, size), start=first_call):
            chunk = windows[start : start + size]
            batch = np.zeros((size if self.pad else len(chunk), width), dtype=np.float32)
            batch[: len(chunk)] = chunk
            enhanced, stats = self.model.enhance(
                torch.from_numpy(batch).to(self.device), generator=self.generator(call)
            )
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

        A "windows" family: windows of all clips of one width are packed
        together, so short clips share batches and the device sees
        ``(batch_windows, width)`` for a handful of widths. A "clip" family:
        each clip on its own, in chunks (:meth:`enhance_clip`).
        """
        if self.input_unit == "clip":
            return [self.enhance_clip(signal) for signal in signals]
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

    def enhance_chunks(self, chunks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, ClipStats | None]]:
        """A "clip" family over ONE clip given as consecutive chunks (samples,) float32 at the model rate.

        Each chunk is one ``enhance_chunk`` call (call *j* gets :meth:`generator`
        ``(j)``), the state carried from one to the next, None at the start.
        Yields (enhanced chunk, None) per chunk and, last, (empty, ClipStats):
        the chunks' stats weighted by their lengths.
        """
        torch = self._torch
        state, collected, weights = None, {}, []
        for call, chunk in enumerate(chunks):
            if not len(chunk):
                continue
            x = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)).to(self.device)
            with torch.inference_mode():
                enhanced, stats, state = self.model.enhance_chunk(x, state, generator=self.generator(call))
            for k, v in stats.items():
                collected.setdefault(k, []).append(v.float().cpu().numpy())
            weights.append(len(chunk))
            yield enhanced.float().cpu().numpy(), None
        stacked = {k: np.stack(v) for k, v in collected.items()}
        yield (
            np.zeros(0, dtype=np.float32),
            (self.clip_stats(stacked, np.asarray(weights, dtype=np.float64)) if weights else {}),
        )

    def _rechunk(self, pieces: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Consecutive pieces of any lengths → chunks of ``self.chunk`` samples (the last one shorter)."""
        buffer = np.zeros(0, dtype=np.float32)
        for piece in pieces:
            buffer = np.concatenate([buffer, np.asarray(piece, dtype=np.float32)])
            while len(buffer) >= self.chunk:
                yield buffer[: self.chunk]
                buffer = buffer[self.chunk :]
        if len(buffer):
            yield buffer

    def enhance_clip(self, signal: np.ndarray) -> tuple[np.ndarray, ClipStats]:
        """A "clip" family over one whole (samples,) float32 clip at the model rate, in chunks of ``chunk_seconds``."""
        parts, stats = [], {}
        for samples, clip_stats in self.enhance_chunks(self._rechunk([signal])):
            parts.append(samples)
            stats = clip_stats if clip_stats is not None else stats
        return np.concatenate(parts)[: len(signal)], stats

    def enhance_stream(
        self, pieces: Iterable[np.ndarray], length: int
    ) -> Iterator[tuple[np.ndarray, ClipStats | None]]:
        """Stream a clip of ``length`` samples (model rate) given as consecutive pieces.

        Yields (finished samples, None) as they become final and, last,
        (remaining samples, ClipStats). Memory is bounded by one batch of
        windows (or one chunk, for a "clip" family) plus one piece, whatever the
        clip's length. Windows and chunks are those :meth:`enhance_many` uses,
        so both give the same samples.
        """
        if self.input_unit == "clip":
            emitted = 0
            for samples, stats in self.enhance_chunks(self._rechunk(pieces)):
                samples = samples[: max(0, length - emitted)]
                emitted += len(samples)
                if stats is not None:  # the last item: exactly ``length`` samples in all
                    samples = np.concatenate([samples, np.zeros(max(0, length - emitted), dtype=np.float32)])
                yield samples, stats
            return
        width, hop = self.geometry(length)
        ola = OverlapAdd(length, width, hop)
        buffer = np.zeros(0, dtype=np.float32)
        consumed = 0  # clip position of buffer[0]
        total = num_windows(length, width, hop)
        done = 0
        pending: list[np.ndarray] = []
        collected: dict[str, list[np.ndarray]] = {}

        calls = 0

        def run(batch: list[np.ndarray]) -> np.ndarray:
            nonlocal done, calls
            enhanced, stats = self.enhance_windows(np.stack(batch), first_call=calls)
            calls += 1
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
