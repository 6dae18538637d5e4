"""Metrics throughput: clips per second for each metric on one CPU core.

    python bench/metrics_throughput.py [--clips 24] [--seconds-per-clip 3] [--json out.json]

Clips are seeded speech-like pairs from ``pipeline.audio.demo_data`` at 16 kHz.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from pipeline.audio.demo_data import generate_pair  # noqa: E402
from pipeline.quality.metrics import METRIC_NAMES, score_all  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--seconds-per-clip", type=float, default=3.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pairs = [generate_pair(args.seconds_per_clip, 5.0, 16000, rng) for _ in range(args.clips)]
    results = {}
    for name in METRIC_NAMES:
        score_all(pairs[0][1], pairs[0][0], 16000, (name,))  # warm-up (imports, caches)
        start = time.perf_counter()
        failures = sum(not score_all(clean, noisy, 16000, (name,))[name].ok for noisy, clean in pairs)
        elapsed = time.perf_counter() - start
        results[name] = {
            "clips_per_second": args.clips / elapsed,
            "audio_seconds_per_second": args.clips * args.seconds_per_clip / elapsed,
            "failures": failures,
        }
        print(
            f"{name:<10} {results[name]['clips_per_second']:8.1f} clips/s  "
            f"{results[name]['audio_seconds_per_second']:8.1f} audio-s/s  failures={failures}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
