"""Write tests/data/shipped_outputs.npz: what the shipped checkpoints make of a seeded signal.

Run once before a refactor of the model or inference path; ``tests/test_shipped_outputs.py``
then checks that the refactored code gives the same samples and stats to float tolerance.
Each shipped model enhances a seeded 3 s, 16 kHz signal with :meth:`Enhancer.enhance`, and a
seeded 7 s one with :meth:`Enhancer.enhance_stream` in pieces of 0.7 s. To keep the file small
(float32 noise does not compress) every ``STRIDE``-th output sample is stored (``<model>/<path>/audio``,
float32) with the whole output's sum and sum of squares (``<model>/<path>/moments``, float64);
per-clip stats are float64 arrays named ``<model>/<path>/stat/<name>``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python bench/make_shipped_golden.py
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python bench/make_shipped_golden.py --only udiffse   # a newly shipped family
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "shipped_outputs.npz"
SAMPLE_RATE = 16000
PIECE_SECONDS = 0.7
STRIDE = 6


def signal(seconds: float, seed: int) -> np.ndarray:
    """A seeded noisy signal: an amplitude-modulated two-tone mixture plus white noise, float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    clean = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.1 * np.sin(
        2 * np.pi * 1300 * t
    )
    return (clean + 0.08 * rng.standard_normal(len(t))).astype(np.float32)


def _summary(prefix: str, audio: np.ndarray, stats: dict, out: dict[str, np.ndarray]) -> None:
    out[f"{prefix}/audio"] = audio[::STRIDE].astype(np.float32)
    wide = audio.astype(np.float64)
    out[f"{prefix}/moments"] = np.array([len(wide), wide.sum(), np.dot(wide, wide)])
    for k, v in stats.items():
        out[f"{prefix}/stat/{k}"] = np.asarray(v, dtype=np.float64)


def shipped_outputs(names: list[str] | None = None) -> dict[str, np.ndarray]:
    """{key: array} for every shipped model: the whole-clip and the streamed outputs and their stats."""
    import torch

    from pipeline.core.checkpoints import SHIPPED_CHECKPOINTS, load_model
    from pipeline.inference.enhance import EnhanceConfig, Enhancer

    torch.set_num_threads(1)
    out: dict[str, np.ndarray] = {}
    short, long = signal(3.0, 1), signal(7.0, 2)
    for name in names or list(SHIPPED_CHECKPOINTS):
        enhancer = Enhancer(load_model(name).model, EnhanceConfig(device="cpu"))
        clip, stats = enhancer.enhance(short, SAMPLE_RATE)
        _summary(f"{name}/clip", clip, stats, out)
        piece = int(PIECE_SECONDS * SAMPLE_RATE)
        parts, streamed_stats = [], None
        for samples, s in enhancer.enhance_stream((long[i : i + piece] for i in range(0, len(long), piece)), len(long)):
            parts.append(samples)
            streamed_stats = s if s is not None else streamed_stats
        _summary(f"{name}/stream", np.concatenate(parts), streamed_stats or {}, out)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="FAMILY",
        help="record only these shipped families and keep the file's other entries (a newly shipped family)",
    )
    args = ap.parse_args(argv)
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    kept = {}
    if args.only and GOLDEN.exists():
        with np.load(GOLDEN) as old:
            kept = {k: old[k] for k in old.files if k.split("/", 1)[0] not in args.only}
    np.savez_compressed(GOLDEN, **kept, **shipped_outputs(args.only))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
