"""Spectrograms of a 48 kHz clip: the input, today's band-limited output, and the full-band output.

    python bench/fullband_figure.py docs/bench/fullband_48k.png

The clip is VBD speech (16 kHz, upsampled) with seeded fricative bursts
(3.5-16 kHz noise) between its words' voicing, plus a full-band noise floor;
the shipped default model enhances it at 16 kHz. Prints the 8-16 kHz levels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="PNG to write")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf
    import torch
    from test_fullband import _bandpass

    from pipeline.audio.codec import resample
    from pipeline.audio.fullband import full_band
    from pipeline.core.checkpoints import load_model
    from pipeline.inference.enhance import Enhancer

    torch.set_num_threads(1)
    rate = 48000
    speech, speech_rate = sf.read(
        Path(__file__).resolve().parents[2] / "shared/testdata/vbd-debug/clean/p287_001.flac", dtype="float32"
    )
    low = resample(speech, speech_rate, rate)
    rng = np.random.default_rng(0)
    t = np.arange(len(low)) / rate
    envelope = np.convolve(np.abs(low), np.ones(2400) / 2400, mode="same")
    bursts = (np.floor(t / 0.15) % 3 == 0) & (envelope > 0.2 * envelope.max())
    fricative = _bandpass(rng.standard_normal(len(low)), 3500, 16000) * 0.5 * envelope.max() * bursts
    clean = low + fricative
    noisy = (clean + 0.004 * rng.standard_normal(len(low))).astype(np.float32)

    loaded = load_model(None)
    enhancer = Enhancer(loaded.model)
    narrow, _ = enhancer.enhance(noisy, rate)
    wide = full_band(noisy, narrow, rate, enhancer.sample_rate)

    def level(x, mask):
        band = _bandpass(np.asarray(x, np.float64), 8000, 16000)
        return 10 * np.log10(np.mean(band[mask] ** 2) + 1e-20)

    speech_mask, noise_mask = bursts, envelope < 0.02 * envelope.max()
    for name, x in (("clean", clean), ("noisy", noisy), ("band-limited", narrow), ("full band", wide)):
        print(
            f"{name:>13}: 8-16 kHz {level(x, speech_mask):6.1f} dB in fricatives, {level(x, noise_mask):6.1f} dB in pauses"
        )

    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for ax, (title, x) in zip(
        axes,
        (
            ("input (48 kHz)", noisy),
            (f"{loaded.model_id}, resampled back (today)", narrow),
            (f"{loaded.model_id}, full band", wide),
        ),
    ):
        ax.specgram(x, NFFT=1024, Fs=rate, noverlap=768, cmap="magma", vmin=-140, vmax=-40)
        ax.set_title(title)
        ax.set_ylabel("Hz")
    axes[-1].set_xlabel("s")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)


if __name__ == "__main__":
    main()
