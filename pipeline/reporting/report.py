"""A self-contained HTML report of one committed denoise run (and, optionally, a comparison with another).

Everything is embedded (figures as PNG data URIs, audio excerpts as WAV data
URIs, CSS inline), so the file opens from disk, needs no server, and can be
mailed. Figures are drawn with matplotlib's Agg backend.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.progress import format_duration
from pipeline.core.results import Results, Run
from pipeline.reporting.queries import METRIC_DIRECTION

log = logging.getLogger(__name__)

# Metrics ranked for "worst and best", in order of preference: the first that
# the run has values for is used (reference metrics need a clean reference).
RANKING_METRICS = (S.PESQ_WB, S.DNSMOS_OVRL, S.SI_SDR_DB, S.REMOVED_NOISE_DB)
# Distributions drawn: (output column, input column or None, label). The input's reference
# metrics are the noisy file scored against the same reference: where the output started from.
DISTRIBUTIONS = (
    (S.PESQ_WB, S.INPUT_PREFIX + S.PESQ_WB, "PESQ-WB (vs. reference)"),
    (S.SI_SDR_DB, S.INPUT_PREFIX + S.SI_SDR_DB, "SI-SDR dB (vs. reference)"),
    (S.STOI, S.INPUT_PREFIX + S.STOI, "STOI (vs. reference)"),
    (S.DNSMOS_OVRL, f"input_{S.DNSMOS_OVRL}", "DNSMOS OVRL (no reference)"),
    (S.DNSMOS_SIG, f"input_{S.DNSMOS_SIG}", "DNSMOS SIG (no reference)"),
    (S.DNSMOS_BAK, f"input_{S.DNSMOS_BAK}", "DNSMOS BAK (no reference)"),
    (S.OUTPUT_RMS_DBFS, S.INPUT_RMS_DBFS, "level dBFS"),
    (S.REMOVED_NOISE_DB, None, "removed dB (energy taken out, rel. to input)"),
    (S.GMM_NLL, None, "gmm_nll (model's surprise, nats)"),
)
SPECTROGRAM_RATE = 16000


@dataclass(frozen=True)
class ReportConfig:
    clips: int = 4
    excerpt_seconds: float = 8.0

    def __post_init__(self) -> None:
        if self.clips < 0 or self.excerpt_seconds <= 0:
            raise ValueError("clips must be >= 0 and excerpt_seconds > 0")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _finite(values) -> np.ndarray:
    arr = np.array([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def read_excerpt(uri: str, seconds: float, config: storage.StorageConfig | None) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of an audio object, mono float32, and its rate (reads only what it needs)."""
    import soundfile as sf

    fs, path = storage.filesystem(uri, config)
    with fs.open(path, "rb") as f, sf.SoundFile(f) as snd:
        data = snd.read(frames=int(seconds * snd.samplerate), dtype="float32", always_2d=True)
        return data.mean(axis=1), snd.samplerate


def _wav_uri(signal: np.ndarray, rate: int) -> str:
    from pipeline.audio.codec import encode

    return "data:audio/wav;base64," + base64.b64encode(encode(np.clip(signal, -1, 1), rate, "WAV", "PCM_16")).decode()


def own_model_stats(stats: list[tuple[str, float]] | None) -> list[tuple[str, float]]:
    """The entries of one row's ``model_stats`` map that have no column of their own (AIGD's image_ssim, …).

    DiffGMM's gmm_nll has its column; its per-component occupancies are a profile,
    not a per-clip figure, so they are left to ``diffgmm query --noise-profile``.
    """
    return [(name, value) for name, value in stats or () if name != S.GMM_NLL and not name.startswith(S.GMM_OCCUPANCY)]


def model_stat_values(table: pa.Table) -> dict[str, np.ndarray]:
    """Finite values of each model stat of :func:`own_model_stats` over the table's rows, by name."""
    values: dict[str, list[float]] = {}
    for stats in table.column(S.MODEL_STATS).to_pylist():
        for name, value in own_model_stats(stats):
            values.setdefault(name, []).append(value)
    return {name: arr for name, v in sorted(values.items()) if len(arr := _finite(v))}


def distribution_figure(table: pa.Table) -> str | None:
    """Histograms of every metric the run has values for, input and output overlaid where both exist (a PNG data URI)."""
    fig = distribution_axes(table)
    return _png(fig) if fig is not None else None


def distribution_axes(table: pa.Table):
    """The matplotlib figure of :func:`distribution_figure` (None when no metric has values): one panel per
    metric, clips counted on an integer y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = []
    for out_col, in_col, label in DISTRIBUTIONS:
        out = _finite(table.column(out_col).to_pylist())
        if len(out):
            panels.append((label, out, _finite(table.column(in_col).to_pylist()) if in_col else None))
    for name, values in model_stat_values(table).items():
        panels.append((f"{name} (model stat)", values, None))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (label, out, inp) in zip(axes.flat, panels):
        has_input = inp is not None and len(inp) > 0
        both = np.concatenate([out, inp]) if has_input else out
        lo, hi = float(both.min()), float(both.max())
        if hi - lo < 1e-3 * max(1.0, abs(lo)):  # (nearly) one value: a readable range around it, not 1e-6 wide bins
            lo, hi = lo - 0.05 * max(1.0, abs(lo)), hi + 0.05 * max(1.0, abs(lo))
        bins = np.histogram_bin_edges(both, bins=min(30, max(5, len(both) // 3)), range=(lo, hi))
        counts, _, bars = ax.hist(out, bins=bins, alpha=0.8, color="#2f6fdf", label=f"output (mean {out.mean():.2f})")
        handles, top = [bars[0]], counts.max()
        if has_input:  # an outline, so the input stays visible where it shares a bin with the output
            in_counts, _, outline = ax.hist(
                inp, bins=bins, histtype="step", lw=1.8, color="#3d4650", label=f"input (mean {inp.mean():.2f})"
            )
            handles, top = [outline[0], bars[0]], max(top, in_counts.max())
        ax.set_ylim(0, max(1.0, top) * 1.45)  # headroom above the bars for the legend
        ax.set_title(label, fontsize=10)
        ax.set_xlabel(label.split(" (")[0], fontsize=8)
        ax.set_ylabel("clips", fontsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="x", useOffset=False)
        ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper center", ncol=2)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def spectrogram_figure(panels: list[tuple[str, np.ndarray, int]], title: str) -> str:
    """:func:`spectrogram_axes` as a PNG data URI."""
    return _png(spectrogram_axes(panels, title))


def spectrogram_axes(panels: list[tuple[str, np.ndarray, int]], title: str):
    """Log spectrograms of (name, mono float32 signal, rate in Hz) panels side by side on one colour scale
    (like the DiffGMM paper's figures). Each at its own rate: a 44.1/48 kHz input shows its full band
    beside a 16 kHz output, whose empty top half is what the model's rate cuts. Returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 2.8), sharey=True, squeeze=False)
    axes = axes[0]
    specs = []
    for _, signal, rate in panels:
        nperseg = 512 * max(1, round(rate / 16000))  # the same ~32 ms window at every rate
        f, t, sxx = spectrogram(signal, fs=rate, nperseg=min(nperseg, max(len(signal), 16)), noverlap=None)
        specs.append((f, t, 10 * np.log10(sxx + 1e-12)))
    top = max(float(s[2].max()) for s in specs)
    for ax, (f, t, db), (name, _, _) in zip(axes, specs, panels):
        mesh = ax.pcolormesh(t, f / 1000, db, vmin=top - 80, vmax=top, shading="auto", cmap="magma")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("frequency (kHz)", fontsize=8)
    axes[0].set_ylim(0, max(float(s[0].max()) for s in specs) / 1000)
    fig.colorbar(mesh, ax=axes, fraction=0.025, pad=0.01, label="dB")
    if title:
        fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    return fig


def comparison_figure(rows: list[dict], metrics: list[str], run_a: str, run_b: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        pairs = np.array([(r[f"{m}_a"], r[f"{m}_b"]) for r in rows if _ok(r[f"{m}_a"]) and _ok(r[f"{m}_b"])])
        ax.scatter(pairs[:, 0], pairs[:, 1], s=12, color="#2f6fdf")
        lo, hi = float(pairs.min()), float(pairs.max())
        ax.plot([lo, hi], [lo, hi], color="#999", lw=1, ls="--")
        ax.set_title(m, fontsize=10)
        ax.set_xlabel(run_a, fontsize=8)
        ax.set_ylabel(run_b, fontsize=8)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return _png(fig)


def _ok(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "–"
    return html.escape(str(value))


def ranking_metric(table: pa.Table) -> str | None:
    """The first of :data:`RANKING_METRICS` that at least half the ok clips have, else the best-covered one."""
    import pyarrow.compute as pc

    ok = table.filter(pc.equal(table.column(S.STATUS), S.STATUS_OK))
    coverage = {m: len(_finite(ok.column(m).to_pylist())) for m in RANKING_METRICS}
    for metric in RANKING_METRICS:
        if coverage[metric] and 2 * coverage[metric] >= ok.num_rows:
            return metric
    best = max(RANKING_METRICS, key=lambda m: coverage[m])
    return best if coverage[best] else None


def pick_clips(table: pa.Table, metric: str, count: int) -> tuple[list[dict], list[dict]]:
    """(worst, best) ok rows by ``metric`` (NaN rows never picked); a clip is in at most one list.

    Digital silence (no input level) is never picked: every score of it is meaningless.
    """
    rows = [
        r
        for r in table.to_pylist()
        if r[S.STATUS] == S.STATUS_OK and _ok(r[metric]) and r[S.OUTPUT_KEY] and _ok(r[S.INPUT_RMS_DBFS])
    ]
    rows.sort(key=lambda r: (r[metric], r[S.INPUT_KEY]), reverse=not METRIC_DIRECTION[metric])
    worst = rows[:count]
    best = [r for r in reversed(rows[len(worst) :])][:count]
    return worst, best


def clip_section(run: Run, row: dict, metric: str, config: ReportConfig, storage_config) -> str:
    """One clip: its figures, spectrograms and audio players (or why they are missing)."""
    from pipeline.audio.codec import resample

    run_config = run.marker.get("config", {})
    title = f"{row[S.INPUT_KEY]} · {metric} {_fmt(row[metric])}"
    named = [
        (name, row.get(name)) for name in (S.PESQ_WB, S.SI_SDR_DB, S.STOI, S.DNSMOS_OVRL, S.REMOVED_NOISE_DB, S.GMM_NLL)
    ]
    facts = " · ".join(
        f"{name} {_fmt(value, 2)}"
        + (f" (input {_fmt(row[S.INPUT_PREFIX + name], 2)})" if _ok(row.get(S.INPUT_PREFIX + name)) else "")
        for name, value in named + own_model_stats(row.get(S.MODEL_STATS))
        if _ok(value)
    )
    input_uri = storage.join(run_config["input_uri"], row[S.INPUT_KEY])
    try:
        changed = input_changed(row, input_uri, storage_config)
        noisy, rate = (None, 0) if changed else read_excerpt(input_uri, config.excerpt_seconds, storage_config)
        enhanced, out_rate = read_excerpt(
            storage.join(run.uri, "audio", row[S.OUTPUT_KEY]), config.excerpt_seconds, storage_config
        )
    except Exception as exc:  # a report shows what it can: an unreadable clip becomes a note, not a failure
        log.warning("clip %s: audio not readable: %s", row[S.INPUT_KEY], exc)
        return f'<div class="clip"><h4>{html.escape(title)}</h4><p class="note">audio not readable: {html.escape(str(exc))}</p></div>'
    enhanced16 = resample(enhanced, out_rate, SPECTROGRAM_RATE)
    size = len(enhanced16) if noisy is None else min(len(enhanced16), round(len(noisy) * SPECTROGRAM_RATE / rate))
    seconds = size / SPECTROGRAM_RATE
    panels = (
        []
        if noisy is None
        else [
            (
                "noisy input" + (f" ({rate / 1000:g} kHz)" if rate != SPECTROGRAM_RATE else ""),
                noisy[: round(seconds * rate)],
                rate,
            )
        ]
    )
    panels.append(
        (
            "denoised output" + (f" ({out_rate / 1000:g} kHz)" if out_rate != SPECTROGRAM_RATE else ""),
            enhanced[: round(seconds * out_rate)],
            out_rate,
        )
    )
    figure = spectrogram_figure(panels, "")
    excerpt = f"first {format_duration(min(config.excerpt_seconds, seconds))}"
    bands = ", ".join(f"{name.split(' (')[0]} 0–{r / 2000:g} kHz" for name, _, r in panels)
    players = "" if noisy is None else _player("noisy", resample(noisy, rate, SPECTROGRAM_RATE)[:size])
    players += _player("denoised", enhanced16[:size])
    note = (
        f'<p class="note changed">{html.escape(changed)}: the input as it is now is not shown beside this run\'s output.</p>'
        if changed
        else ""
    )
    return (
        f'<div class="clip"><h4>{html.escape(title)}</h4><p class="facts">{facts} · {excerpt}</p>{note}'
        f'<img alt="spectrograms of {html.escape(row[S.INPUT_KEY])} ({bands})" src="{figure}">'
        f'<div class="players">{players}</div></div>'
    )


def _player(label: str, signal: np.ndarray) -> str:
    # preload="metadata": the player shows its duration and plays at once; the data is inline anyway.
    return (
        f'<label>{label} <audio controls preload="metadata" src="{_wav_uri(signal, SPECTROGRAM_RATE)}"></audio></label>'
    )


def input_changed(row: dict, input_uri: str, storage_config) -> str | None:
    """Why the input object is no longer the one this row was made from (ETag, else size and mtime), or None."""
    from pipeline.core.ledger import identity
    from pipeline.core.manifest import stat_input

    try:
        now = stat_input(input_uri, storage_config)
    except FileNotFoundError:
        return "input deleted since this run"
    if identity(now[S.SIZE], now[S.ETAG], now[S.MTIME]) == identity(
        row[S.INPUT_SIZE], row[S.INPUT_ETAG], row[S.INPUT_MTIME]
    ):
        return None
    what = (
        f"ETag {row[S.INPUT_ETAG]} → {now[S.ETAG]}"
        if row[S.INPUT_ETAG] or now[S.ETAG]
        else f"{row[S.INPUT_SIZE]} → {now[S.SIZE]} bytes, modified {now[S.MTIME]:%Y-%m-%d %H:%M UTC}"
        if now[S.MTIME]
        else f"{row[S.INPUT_SIZE]} → {now[S.SIZE]} bytes"
    )
    return f"input changed since this run ({what})"


def _table_html(header: list[str], rows: list[list], classes: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def summary_section(run: Run, table: pa.Table) -> str:
    summary = run.marker.get("summary", {})
    cost = summary.get("cost", {})
    items = [
        ("run", run.run_id),
        ("committed", f"{run.committed_at:%Y-%m-%d %H:%M:%S UTC}" if run.committed_at else "–"),
        ("model", run.marker.get("model_id", "–")),
        ("input", run.marker.get("config", {}).get("input_uri", "–")),
        (
            "clips",
            f"{summary.get('clips', table.num_rows)} ({summary.get('ok', '–')} ok, {summary.get('errors', '–')} errors, "
            f"{summary.get('streamed', 0)} streamed)",
        ),
        ("audio", format_duration((summary.get("audio_hours") or 0.0) * 3600)),
        ("wall time", format_duration(summary["wall_seconds"]) if "wall_seconds" in summary else "–"),
        (
            "throughput",
            f"{summary.get('audio_seconds_per_second', math.nan):.1f}× real time"
            + (
                f" on the {summary.get('processed_clips')} clips processed in the last attempt "
                f"({summary['resumed_rows']} resumed from an earlier one)"
                if summary.get("resumed_rows")
                else ""
            ),
        ),
        (
            "cost",
            f"{_fmt(cost.get('cpu_seconds_per_audio_hour'), 0)} CPU-s and {_fmt(cost.get('gpu_seconds_per_audio_hour'), 0)} "
            f"GPU-s per audio hour ({_fmt(cost.get('cpu_seconds'), 1)} CPU-s, {_fmt(cost.get('gpu_seconds'), 1)} GPU-s busy)"
            if cost
            else "not recorded for this run",
        ),
    ]
    return (
        '<dl class="summary">'
        + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items)
        + "</dl>"
    )


def errors_section(table: pa.Table) -> str:
    rows = [
        r
        for r in table.select([S.INPUT_KEY, S.STATUS, S.ERROR, S.METRICS_ERROR]).to_pylist()
        if r[S.STATUS] != S.STATUS_OK or r[S.METRICS_ERROR]
    ]
    if not rows:
        return "<p>No errors: every clip was denoised and scored.</p>"
    kinds: dict[str, int] = {}
    for r in rows:
        if r[S.STATUS] != S.STATUS_OK:
            kind = (r[S.ERROR] or "unknown").split(":", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    counts = _table_html(
        ["error kind", "clips"], [[k, v] for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])], "narrow"
    )
    detail = _table_html(
        ["input", "status", "error", "metrics note"],
        [[r[S.INPUT_KEY], r[S.STATUS], r[S.ERROR], r[S.METRICS_ERROR]] for r in rows[:500]],
    )
    more = f"<p class='note'>… and {len(rows) - 500} more rows (diffgmm query --errors)</p>" if len(rows) > 500 else ""
    return counts + detail + more


def comparison_section(results: Results, run: Run, against: Run) -> str:
    from pipeline.reporting import queries
    from pipeline.reporting.views import connect

    con = connect(results)

    def fetch(sql: str) -> list[dict]:
        table = con.sql(sql).arrow()
        return (table.read_all() if hasattr(table, "read_all") else table).to_pylist()

    rows = fetch(queries.compare(against.run_id, run.run_id))
    changed = [r[S.INPUT_KEY] for r in fetch(queries.compare_changed(against.run_id, run.run_id))]
    changed_note = (
        f'<p class="note">Not compared: {len(changed)} inputs changed between the runs '
        f"({html.escape(', '.join(changed[:20]))}{' …' if len(changed) > 20 else ''}).</p>"
        if changed
        else ""
    )
    if not rows:
        return (
            f"<p>No unchanged input was processed successfully by both {html.escape(against.run_id)} and "
            f"{html.escape(run.run_id)}.</p>" + changed_note
        )
    lines, shown = [], []
    for m in queries.COMPARE_COLUMNS:
        deltas = _finite(r[f"delta_{m}"] for r in rows)
        if not len(deltas):
            continue
        a, b = _finite(r[f"{m}_a"] for r in rows), _finite(r[f"{m}_b"] for r in rows)
        better = int((deltas > 0).sum()) if METRIC_DIRECTION.get(m, True) else int((deltas < 0).sum())
        lines.append(
            [m, len(deltas), float(a.mean()), float(b.mean()), float(deltas.mean()), f"{better}/{len(deltas)}"]
        )
        if not m.startswith("input_") and len(shown) < 4:
            shown.append(m)
    figure = comparison_figure(rows, shown, against.run_id, run.run_id)
    head = (
        f"<p>{len(rows)} unchanged inputs processed by both. A = {html.escape(against.run_id)} "
        f"({html.escape(str(against.marker.get('model_id')))}), B = {html.escape(run.run_id)} "
        f"({html.escape(str(run.marker.get('model_id')))}); Δ = B − A; “B better” counts clips where B moved the right way.</p>"
    )
    table = _table_html(["metric", "clips", "mean A", "mean B", "mean Δ", "B better"], lines)
    return head + changed_note + table + (f'<img alt="run vs run scatter" src="{figure}">' if figure else "")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:24px;color:#1d2733;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #dde3ea;padding-bottom:4px}
h4{margin:0 0 4px;font-size:14px;word-break:break-all} .sub{color:#5b6b7c;margin:0 0 16px}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:12px 16px}
dt{color:#5b6b7c} dd{margin:0;word-break:break-all}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:8px 0;width:100%} table.narrow{width:auto}
th,td{border:1px solid #dde3ea;padding:4px 8px;text-align:left;vertical-align:top} th{background:#eef2f6}
td{word-break:break-word;max-width:520px}
img{max-width:100%;display:block;margin:6px 0}
.clip{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:10px 14px;margin:10px 0}
.facts,.note{color:#5b6b7c;font-size:13px;margin:0 0 6px} .players{display:flex;gap:24px;flex-wrap:wrap;font-size:13px}
.players label{display:flex;align-items:center;gap:8px} .caveat{font-size:13px;color:#5b6b7c}
"""


def build_report(
    results: Results,
    run_id: str | None = None,
    against: str | None = None,
    config: ReportConfig | None = None,
    storage_config: storage.StorageConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """The report's HTML text. ``progress(step)`` is called as each part is done (for a progress bar)."""
    config = config or ReportConfig()
    tick = progress or (lambda step: None)
    run = results.run(run_id)
    other = results.run(against) if against else None
    table = results.run_table(run)
    tick("read tables")
    parts = [
        f"<h1>Denoise run {html.escape(run.run_id)}</h1>",
        f'<p class="sub">diffgmm report · generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}</p>',
        "<h2>Summary</h2>",
        summary_section(run, table),
    ]
    figure = distribution_figure(table)
    tick("distributions")
    parts.append("<h2>Distributions</h2>")
    parts.append(
        f'<img alt="metric distributions" src="{figure}">' if figure else "<p>No metric has values in this run.</p>"
    )
    parts.append(
        '<p class="caveat">PESQ, SI-SDR and STOI need a clean reference (null otherwise). DNSMOS estimates a listener '
        "score without one, but rewards removing noise even at the cost of speech; removed noise and the model's own stats (gmm_nll, "
        "image_ssim, …) describe what the model did, not how good it sounds. No single column is “quality”.</p>"
    )
    metric = ranking_metric(table)
    if metric and config.clips:
        worst, best = pick_clips(table, metric, config.clips)
        for name, rows in (("Worst clips", worst), ("Best clips", best)):
            parts.append(f"<h2>{name} by {html.escape(metric)}</h2>")
            for row in rows:
                parts.append(clip_section(run, row, metric, config, storage_config))
                tick(f"clip {row[S.INPUT_KEY]}")
            if not rows:
                parts.append("<p>None.</p>")
    parts += ["<h2>Errors</h2>", errors_section(table)]
    if other is not None:
        parts += [f"<h2>Compared with {html.escape(other.run_id)}</h2>", comparison_section(results, run, other)]
        tick("comparison")
    body = "\n".join(parts)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>diffgmm report {html.escape(run.run_id)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>{body}</body></html>'
    )


def report_steps(results: Results, run_id: str | None, against: str | None, config: ReportConfig) -> int:
    """How many times :func:`build_report` calls ``progress`` (the progress bar's total)."""
    return 2 + 2 * config.clips + (1 if against else 0)
