"""DNSMOS (P.835 SIG/BAK/OVRL and P.808): no-reference estimates of listener scores, batched.

The ONNX models are the ones the ``speechmos`` wheel ships (MIT,
``speechmos/dnsmos_models/sig_bak_ovr.onnx`` and ``model_v8.onnx``, the
DNS-Challenge models); we load the files and run them with onnxruntime,
without ``speechmos.dnsmos`` itself (it imports librosa for one mel
spectrogram, computed here with torch to the same definition).

What differs from the stock scoring, and why (``docs/benchmarks.md`` has the
cost and the agreement with the stock hop):

* The stock code scores 9.01 s windows with a 1 s hop: an 8 s overlap, so a
  clip costs ~9× its length. ``hop_seconds`` (default 4.5 s, half a window)
  sets it; clips shorter than a window are tiled to one window, as in the
  stock code, so short clips cost one window each whatever the hop.
* All windows of all clips of a call go through each model in one batched
  ``run``; on GPU nodes onnxruntime's CUDA provider is used when it is there.

A clip's score is the mean over its windows. Scores are MOS on a 1–5 scale.
DNSMOS rewards removing noise even where speech suffers: show it beside the
reference metrics and the model's own figures, never alone as "quality".
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
WINDOW_SECONDS = 9.01
WINDOW = int(WINDOW_SECONDS * SAMPLE_RATE)  # 144160 samples, the models' fixed input
# P.835 polynomial calibration of the raw network outputs (DNSMOS, non-personalised).
_POLY_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_POLY_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_POLY_OVR = np.poly1d([-0.06766283, 1.11546468, 0.04602535])
# P.808 input: a 120-band mel spectrogram (n_fft 321, hop 160) of the window less its last 160 samples.
_MEL_BANDS, _MEL_FFT, _MEL_HOP = 120, 321, 160


@dataclass(frozen=True)
class DNSMOSConfig:
    """``hop_seconds``: step between the 9.01 s windows of a long clip (stock: 1.0)."""

    hop_seconds: float = 4.5
    use_gpu: bool = False
    threads: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.hop_seconds <= WINDOW_SECONDS:
            raise ValueError(f"dnsmos hop_seconds must be in (0, {WINDOW_SECONDS}], got {self.hop_seconds}")
        if self.threads < 1:
            raise ValueError("dnsmos threads must be >= 1")


def models_dir() -> str:
    """Where the ``speechmos`` wheel keeps the DNSMOS ONNX files (without importing its librosa-based module)."""
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("DNSMOS needs the speechmos package (pip install speechmos), which ships the ONNX models")
    return os.path.join(list(spec.submodule_search_locations)[0], "dnsmos_models")


def windows_of(signal: np.ndarray, hop_seconds: float) -> np.ndarray:
    """(n, 144160) float32 windows of a 16 kHz clip: tiled to one window if shorter, else hopped.

    The last window ends at the clip's end, so every sample is scored.
    """
    signal = np.asarray(signal, dtype=np.float32)
    if len(signal) == 0:
        raise ValueError("DNSMOS of an empty signal")
    if len(signal) < WINDOW:
        return np.tile(signal, -(-WINDOW // len(signal)))[:WINDOW][None, :]
    hop = int(hop_seconds * SAMPLE_RATE)
    starts = list(range(0, len(signal) - WINDOW + 1, hop))
    if starts[-1] != len(signal) - WINDOW:
        starts.append(len(signal) - WINDOW)
    return np.stack([signal[s : s + WINDOW] for s in starts])


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(f < 1000.0, f * 3.0 / 200.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    logstep = np.log(6.4) / 27.0
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp(logstep * (m - 15.0)))


def mel_bank(n_fft: int = _MEL_FFT, n_mels: int = _MEL_BANDS, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney-normalised triangular filters, as ``librosa.filters.mel`` builds them.

    Written out because the bins of an odd ``n_fft`` (321) sit at k·rate/n_fft,
    not on torchaudio's linspace(0, rate/2): its bank differs by up to 10 %.
    """
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def mel_features(windows: np.ndarray) -> np.ndarray:
    """(n, 144160) → (n, 900, 120) float32: what the P.808 model reads.

    librosa's ``melspectrogram(n_fft=321, hop_length=160, n_mels=120)`` (centred,
    zero-padded frames, periodic Hann, power 2, Slaney mel bank) then
    ``(power_to_db(ref=max) + 40) / 40``, per window, as DNSMOS defines it.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(windows[:, :-_MEL_HOP], dtype=np.float32))
    window = torch.hann_window(_MEL_FFT, periodic=True, dtype=torch.float32)
    spec = torch.stft(x, _MEL_FFT, _MEL_HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (n, 161, frames)
    bank = torch.from_numpy(mel_bank())  # (120, 161) float64
    mel = torch.einsum("nft,mf->ntm", power.double(), bank)
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    ref = 10.0 * torch.log10(mel.amax(dim=(1, 2), keepdim=True).clamp_min(1e-10))
    db = torch.maximum(db - ref, torch.full_like(db, -80.0))  # top_db = 80
    return ((db + 40.0) / 40.0).float().numpy()[:, :900, :]


class DNSMOS:
    """Scores clips; one instance per process (the sessions are loaded once)."""

    def __init__(self, config: DNSMOSConfig | None = None) -> None:
        import onnxruntime as ort

        self.config = config or DNSMOSConfig()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if self.config.use_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        folder = models_dir()
        self.primary = ort.InferenceSession(os.path.join(folder, "sig_bak_ovr.onnx"), options, providers=providers)
        self.p808 = ort.InferenceSession(os.path.join(folder, "model_v8.onnx"), options, providers=providers)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """(n, 144160) windows → (n, 4) calibrated SIG, BAK, OVRL, P.808."""
        if not len(windows):
            return np.zeros((0, 4))
        raw = self.primary.run(None, {"input_1": windows.astype(np.float32)})[0]
        p808 = self.p808.run(None, {"input_1": mel_features(windows)})[0][:, 0]
        return np.stack([_POLY_SIG(raw[:, 0]), _POLY_BAK(raw[:, 1]), _POLY_OVR(raw[:, 2]), p808], axis=1)

    def score(self, signals: list[np.ndarray]) -> list[tuple[float, float, float, float]]:
        """16 kHz mono clips → per clip (SIG, BAK, OVRL, P.808), the means over its windows; one batch for all."""
        per_clip = [windows_of(s, self.config.hop_seconds) for s in signals]
        if not per_clip:
            return []
        scores = self.score_windows(np.concatenate(per_clip))
        out, start = [], 0
        for windows in per_clip:
            clip = scores[start : start + len(windows)].mean(axis=0)
            out.append(tuple(float(v) for v in clip))
            start += len(windows)
        return out


# One scorer per worker process: Ray reuses task workers, so the ONNX sessions
# are loaded once per process rather than once per batch.
_SCORERS: dict[DNSMOSConfig, DNSMOS] = {}


def shared_scorer(config: DNSMOSConfig) -> DNSMOS:
    if config not in _SCORERS:
        _SCORERS[config] = DNSMOS(config)
    return _SCORERS[config]


def dnsmos_columns(noisy: np.ndarray, enhanced: list[np.ndarray], sample_rate: int, config: DNSMOSConfig) -> list[dict]:
    """DNSMOS columns (``CLIP_SCHEMA``/``EVAL_SCHEMA`` names) for one input and each of its outputs.

    ``noisy`` and every ``enhanced`` are mono float32 at ``sample_rate``; all
    are scored in one batch. Returns one dict per output: the output's scores,
    the input's (``input_``) and their differences (``delta_``).
    """
    from pipeline.audio.codec import resample
    from pipeline.core import schema as S

    signals = [resample(np.asarray(s, dtype=np.float32), sample_rate, SAMPLE_RATE) for s in (noisy, *enhanced)]
    scores = shared_scorer(config).score(signals)
    before = dict(zip(S.DNSMOS_BASE, scores[0]))
    rows = []
    for after_scores in scores[1:]:
        after = dict(zip(S.DNSMOS_BASE, after_scores))
        row = {}
        for name in S.DNSMOS_BASE:
            row[name], row[f"input_{name}"], row[f"delta_{name}"] = (
                after[name],
                before[name],
                after[name] - before[name],
            )
        rows.append(row)
    return rows
