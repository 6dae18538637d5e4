"""Per-clip quality metrics with failures as data.

Every metric takes 1-D float arrays (``reference`` = clean, ``estimate`` = the
signal judged) and returns a :class:`Score`: a float value, NaN when it cannot
be computed, and the reason. Nothing here raises for bad audio and no error
code ever leaks into a value.

Definitions (dB unless said otherwise):

* ``sdr_db``: plain SDR as the seed papers define it, 10·log10(‖y‖²/‖ŷ−y‖²),
  no projection and no filter (not BSS-eval SDR);
* ``si_sdr_db``: scale-invariant SDR without mean removal:
  α = ⟨ŷ,y⟩/‖y‖², 10·log10(‖αy‖²/‖αy−ŷ‖²);
* ``pesq_wb`` / ``pesq_nb``: ITU-T P.862.2 wide-band (16 kHz) and P.862
  narrow-band (8 kHz) MOS-LQO from the ``pesq`` package; other rates are
  resampled first;
* ``stoi``: short-time objective intelligibility (``pystoi``), 0..1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_SECONDS = 0.25
METRIC_NAMES = ("pesq_wb", "pesq_nb", "sdr_db", "si_sdr_db", "stoi")
# No-reference metrics: computed from the input and output alone (pipeline.quality.dnsmos).
DNSMOS = "dnsmos"
NO_REFERENCE_METRICS = (DNSMOS,)
ALL_METRICS = METRIC_NAMES + NO_REFERENCE_METRICS


def check_metric_names(names, where: str) -> None:
    """Refuse unknown metric names before anything runs (a typo must not become a run of error rows)."""
    unknown = sorted(set(names) - set(ALL_METRICS))
    if unknown:
        raise ValueError(f"{where}: unknown metrics {unknown}; known: {list(ALL_METRICS)}")


_EPS = 1e-20


@dataclass(frozen=True)
class Score:
    value: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _fail(kind: str, message: str) -> Score:
    return Score(math.nan, f"{kind}: {message}")


def check_pair(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> str | None:
    """The reason a pair cannot be scored, or None."""
    if reference.ndim != 1 or estimate.ndim != 1:
        return "shape: metrics take mono 1-D signals"
    if len(reference) != len(estimate):
        return f"length_mismatch: reference has {len(reference)} samples, estimate {len(estimate)}"
    if len(reference) < MIN_SECONDS * sample_rate:
        return f"too_short: {len(reference) / sample_rate:.3f} s < {MIN_SECONDS} s"
    if not (np.isfinite(reference).all() and np.isfinite(estimate).all()):
        return "non_finite: NaN or Inf samples"
    return None


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    err = estimate.astype(np.float64) - ref
    return float(10.0 * np.log10((np.dot(ref, ref) + _EPS) / (np.dot(err, err) + _EPS)))


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    est = estimate.astype(np.float64)
    alpha = (np.dot(est, ref) + _EPS) / (np.dot(ref, ref) + _EPS)
    target = alpha * ref
    err = target - est
    return float(10.0 * np.log10((np.dot(target, target) + _EPS) / (np.dot(err, err) + _EPS)))


def _reject(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, silent_reference_ok: bool = False
) -> Score | None:
    """The failed Score for a pair that cannot be scored, or None when it can."""
    reason = check_pair(reference, estimate, sample_rate)
    if reason:
        kind, _, message = reason.partition(": ")
        return _fail(kind, message)
    if not silent_reference_ok and not np.any(reference):
        return _fail("silent_reference", "reference is all zeros")
    return None


def _scored(reference, estimate, sample_rate, fn) -> Score:
    rejected = _reject(reference, estimate, sample_rate)
    if rejected:
        return rejected
    value = fn()
    return Score(value) if math.isfinite(value) else _fail("non_finite", "metric is not finite")


def score_sdr(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> Score:
    return _scored(reference, estimate, sample_rate, lambda: sdr_db(reference, estimate))


def score_si_sdr(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> Score:
    return _scored(reference, estimate, sample_rate, lambda: si_sdr_db(reference, estimate))


def _resample(signal: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    from pipeline.audio.codec import resample

    return resample(signal, from_rate, to_rate)


def score_pesq(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, mode: str) -> Score:
    """PESQ 'wb' at 16 kHz or 'nb' at 8 kHz; one clip per call, every failure caught and named."""
    # A silent reference goes through: pesq's own NoUtterancesError names it.
    rejected = _reject(reference, estimate, sample_rate, silent_reference_ok=True)
    if rejected:
        return rejected
    from pesq import NoUtterancesError, PesqError, pesq

    rate = 16000 if mode == "wb" else 8000
    if sample_rate not in (8000, 16000) or (mode == "wb" and sample_rate != 16000):
        reference = _resample(reference, sample_rate, rate)
        estimate = _resample(estimate, sample_rate, rate)
    else:
        rate = sample_rate
    try:
        value = float(pesq(rate, reference.astype(np.float64), estimate.astype(np.float64), mode))
    except NoUtterancesError as exc:
        return _fail("no_utterances", str(exc) or "PESQ found no speech in the reference")
    except PesqError as exc:
        return _fail("pesq_error", f"{type(exc).__name__}: {exc}")
    except (ValueError, TypeError) as exc:
        return _fail("pesq_error", str(exc))
    if not math.isfinite(value) or value < -0.5:
        # The C core reports failures as negative codes; never let one through as a score.
        return _fail("pesq_error", f"PESQ returned {value}")
    return Score(value)


def score_stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> Score:
    rejected = _reject(reference, estimate, sample_rate)
    if rejected:
        return rejected
    from pystoi import stoi

    try:
        value = float(stoi(reference.astype(np.float64), estimate.astype(np.float64), sample_rate, extended=False))
    except (ValueError, RuntimeError) as exc:
        return _fail("stoi_error", str(exc))
    if not math.isfinite(value):
        return _fail("stoi_error", "STOI is not finite (too little speech after silence removal)")
    return Score(value)


def score_all(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, metrics=METRIC_NAMES) -> dict[str, Score]:
    """Every requested metric for one pair, keyed by column name."""
    fns = {
        "pesq_wb": lambda: score_pesq(reference, estimate, sample_rate, "wb"),
        "pesq_nb": lambda: score_pesq(reference, estimate, sample_rate, "nb"),
        "sdr_db": lambda: score_sdr(reference, estimate, sample_rate),
        "si_sdr_db": lambda: score_si_sdr(reference, estimate, sample_rate),
        "stoi": lambda: score_stoi(reference, estimate, sample_rate),
    }
    unknown = set(metrics) - set(fns)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {list(fns)}")
    return {name: fns[name]() for name in metrics}


def join_errors(scores: dict[str, Score]) -> str | None:
    """One error string for a row: 'metric: kind: message; …', or None when all are fine."""
    parts = [f"{name}: {s.error}" for name, s in scores.items() if s.error]
    return "; ".join(parts) or None


def power_db(power: float) -> float:
    """Mean square (or an energy ratio) → 10·log10 in dB: −inf for 0, NaN when not finite."""
    if not math.isfinite(power):
        return math.nan
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def rms_dbfs(signal: np.ndarray) -> float:
    """Level as 20·log10(rms), −inf for silence → reported as NaN by callers that need finite values."""
    if signal.size == 0:
        return math.nan
    return power_db(float(np.mean(np.square(signal, dtype=np.float64))))


def removed_noise_db(noisy: np.ndarray, enhanced: np.ndarray) -> float:
    """Energy the model took out, relative to the input: 10·log10(‖x−ŷ‖²/‖x‖²) in dB."""
    x = noisy.astype(np.float64)
    removed = x - enhanced.astype(np.float64)
    den = float(np.dot(x, x))
    if den == 0:
        return math.nan
    return power_db(float(np.dot(removed, removed)) / den)
