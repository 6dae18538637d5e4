"""The report's figures and summary text from plain Arrow tables (no Ray): issue 22's report edges.

Reference metrics drawn with the input's distribution beside the output's, count axes labelled with
integer ticks, spectrograms at the file's own rate, one duration formatter for every duration.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.core import schema as S
from pipeline.core.progress import format_duration
from pipeline.core.results import Run
from pipeline.reporting.report import distribution_axes, spectrogram_axes, summary_section


def _table(rows: int = 7):
    rng = np.random.default_rng(3)
    out = []
    for i in range(rows):
        row = S.empty_row(S.CLIP_SCHEMA)
        before = 1.2 + 0.3 * rng.random()
        row.update(
            {
                S.RUN_ID: "r",
                S.INPUT_KEY: f"c{i}.wav",
                S.STATUS: S.STATUS_OK,
                S.OUTPUT_KEY: f"c{i}.wav",
                S.PESQ_WB: before + 0.9,
                S.INPUT_PREFIX + S.PESQ_WB: before,
                S.STOI: 0.9,
                S.INPUT_PREFIX + S.STOI: 0.8 - 0.01 * i,
                S.SI_SDR_DB: 12.0 + i,
                S.INPUT_PREFIX + S.SI_SDR_DB: 5.0 + i,
                S.INPUT_RMS_DBFS: -20.0,
                S.OUTPUT_RMS_DBFS: -23.0 - 0.1 * i,
                S.REMOVED_NOISE_DB: -8.0 + 0.2 * i,
            }
        )
        out.append(row)
    return S.to_table(out, S.CLIP_SCHEMA)


@pytest.fixture
def panels():
    import matplotlib.pyplot as plt

    fig = distribution_axes(_table())
    yield {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    plt.close(fig)


def test_reference_metrics_show_the_input_beside_the_output(panels):
    for title in ("PESQ-WB (vs. reference)", "SI-SDR dB (vs. reference)", "STOI (vs. reference)"):
        legend = [t.get_text() for t in panels[title].get_legend().get_texts()]
        assert [t.split(" ")[0] for t in legend] == ["input", "output"], (title, legend)
    # The legend's means are the table's: the input's PESQ is the output's less 0.9.
    means = [
        float(re.search(r"mean (-?[\d.]+)", t.get_text())[1])
        for t in panels["PESQ-WB (vs. reference)"].get_legend().get_texts()
    ]
    assert means[1] - means[0] == pytest.approx(0.9, abs=0.011)


def test_count_axes_are_labelled_with_integer_ticks(panels):
    assert len(panels) >= 5
    for title, ax in panels.items():
        assert ax.get_ylabel() == "clips", title
        assert ax.get_xlabel(), title
        low, high = ax.get_ylim()
        ticks = [t for t in ax.get_yticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), (title, ticks)


def test_spectrograms_show_each_signal_at_its_own_rate():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    fig = spectrogram_axes(
        [
            ("noisy input", rng.standard_normal(48000).astype(np.float32) * 0.1, 48000),
            ("denoised output", rng.standard_normal(16000).astype(np.float32) * 0.1, 16000),
        ],
        "",
    )
    noisy_ax, out_ax = fig.axes[:2]
    assert noisy_ax.get_ylim()[1] == pytest.approx(24.0)
    # The input's mesh reaches its own Nyquist frequency, the output's stops at the model's 8 kHz.
    assert noisy_ax.collections[0].get_coordinates()[..., 1].max() == pytest.approx(24.0, abs=0.1)
    assert out_ax.collections[0].get_coordinates()[..., 1].max() == pytest.approx(8.0, abs=0.1)
    plt.close(fig)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (2.7, "2.7s"), (28.8, "29s"), (130, "2m10s"), (5400, "1h30m")]
)
def test_one_duration_formatter(seconds, text):
    assert format_duration(seconds) == text


def test_summary_durations_read_at_a_glance():
    """A 29-second run is not "0.008 h"; an hour-and-a-half run is not "5400.0 s"."""

    def summary(hours, wall):
        marker = {
            "summary": {
                "clips": 3,
                "ok": 3,
                "errors": 0,
                "audio_hours": hours,
                "wall_seconds": wall,
                "audio_seconds_per_second": hours * 3600 / wall,
            }
        }
        return summary_section(Run("r", "denoise", marker, "/tmp/r"), _table(3))

    short = summary(0.008, 12.34)
    assert "<dt>audio</dt><dd>29s</dd>" in short and "<dt>wall time</dt><dd>12s</dd>" in short
    long = summary(2.5, 5400.0)
    assert "<dt>audio</dt><dd>2h30m</dd>" in long and "<dt>wall time</dt><dd>1h30m</dd>" in long
