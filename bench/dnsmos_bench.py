"""DNSMOS: what it costs per audio-second, what our hop changes, and how it agrees with PESQ on vbd-debug.

    python bench/dnsmos_bench.py [--threads 1] [--json docs/bench/dnsmos.json]

1. Cost: audio-seconds scored per second on one thread, for 2 s clips (one
   tiled window each) and for a 60 s recording at the stock 1 s hop and at
   ours (4.5 s), input and output both counted as the job scores them.
2. Agreement of the 4.5 s hop with the 1 s hop on long recordings (the six
   vbd-debug noisy files joined, and sections of it).
3. Per-file Pearson correlation of DNSMOS OVRL/SIG/BAK/P.808 with PESQ-WB on
   vbd-debug: the noisy inputs and the outputs of the shipped model, RNNoise
   and spectral gating (24 files), and per system.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vbd", default=str(ROOT.parent / "shared/testdata/vbd-debug"))
    parser.add_argument("--json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from pipeline.core.checkpoints import load_model
    from pipeline.inference.enhance import Enhancer
    from pipeline.quality.baselines import BASELINES
    from pipeline.quality.dnsmos import DNSMOS, DNSMOSConfig
    from pipeline.quality.metrics import score_pesq

    keys = sorted(p.name for p in Path(args.vbd, "noisy").glob("*.flac"))
    pairs = [
        (
            sf.read(Path(args.vbd, "noisy", k), dtype="float32")[0],
            sf.read(Path(args.vbd, "clean", k), dtype="float32")[0],
        )
        for k in keys
    ]
    stock, ours = (
        DNSMOS(DNSMOSConfig(hop_seconds=1.0, threads=args.threads)),
        DNSMOS(DNSMOSConfig(hop_seconds=4.5, threads=args.threads)),
    )
    result: dict = {"threads": args.threads}

    rng = np.random.default_rng(0)
    short = [rng.standard_normal(32000).astype(np.float32) * 0.05 for _ in range(16)]
    ours.score(short[:2])  # warm-up
    seconds, _ = timed(ours.score, short)
    result["short_2s_clips_audio_seconds_per_second"] = 16 * 2.0 / seconds
    long = np.concatenate([p[0] for p in pairs] * 3)[: 60 * 16000]
    for name, scorer in (("hop_1s", stock), ("hop_4.5s", ours)):
        seconds, _ = timed(scorer.score, [long])
        result[f"long_60s_{name}_audio_seconds_per_second"] = 60.0 / seconds

    joined = np.concatenate([p[0] for p in pairs])
    sections = [joined[i * 16000 : (i + 15) * 16000] for i in range(0, int(len(joined) / 16000) - 15, 3)] + [joined]
    a, b = np.array(stock.score(sections)), np.array(ours.score(sections))
    result["hop_agreement"] = {
        "recordings": len(sections),
        "mean_abs_difference": dict(zip(("sig", "bak", "ovrl", "p808"), np.abs(a - b).mean(axis=0).round(4).tolist())),
        "max_abs_difference": dict(zip(("sig", "bak", "ovrl", "p808"), np.abs(a - b).max(axis=0).round(4).tolist())),
    }

    enhancer = Enhancer(load_model().model)
    systems = {
        "noisy": lambda x: x,
        "diffgmm": lambda x: enhancer.enhance(x, 16000)[0],
        "rnnoise": lambda x: BASELINES["rnnoise"](x, 16000),
        "spectral_gating": lambda x: BASELINES["spectral_gating"](x, 16000),
    }
    points = []
    for system, fn in systems.items():
        outputs = [fn(noisy) for noisy, _ in pairs]
        mos = ours.score(outputs)
        for (_noisy, clean), out, m in zip(pairs, outputs, mos):
            points.append(
                {
                    "system": system,
                    "pesq_wb": score_pesq(clean, out, 16000, "wb").value,
                    "sig": m[0],
                    "bak": m[1],
                    "ovrl": m[2],
                    "p808": m[3],
                }
            )

    def pearson(rows, column):
        x, y = np.array([r["pesq_wb"] for r in rows]), np.array([r[column] for r in rows])
        return float(np.corrcoef(x, y)[0, 1])

    result["pearson_with_pesq_wb_all_files"] = {c: round(pearson(points, c), 3) for c in ("ovrl", "sig", "bak", "p808")}
    result["means_by_system"] = {
        s: {
            c: round(float(np.mean([p[c] for p in points if p["system"] == s])), 3)
            for c in ("pesq_wb", "ovrl", "sig", "bak", "p808")
        }
        for s in systems
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
