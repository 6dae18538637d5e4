"""Training throughput: audio-seconds per wall-second of one worker's ``train_step``.

    python bench/train_throughput.py [--threads 2] [--steps 20] [--batch 16] [--segment-seconds 1]

This is the per-worker figure: a Ray Train worker runs exactly this step on
its shard (plus the gradient all-reduce when there are several workers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import yaml  # noqa: E402

from model import DiffGMM, DiffGMMConfig, LossConfig  # noqa: E402
from pipeline.train.steps import train_step  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "jobs/configs/train-default.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, help="default: the recipe's")
    parser.add_argument("--segment-seconds", type=float, help="default: the recipe's")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = yaml.safe_load(RECIPE.read_text())
    args.batch = args.batch or recipe["optim"]["batch_size"]
    args.segment_seconds = args.segment_seconds or recipe["mix"]["segment_seconds"]
    loss = LossConfig(**recipe["loss"])
    model = DiffGMM(DiffGMMConfig(**recipe["model"])).to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = int(args.segment_seconds * 16000)
    clean = 0.1 * torch.randn(args.batch, n, device=args.device)
    noisy = clean + 0.05 * torch.randn(args.batch, n, device=args.device)
    autocast = torch.bfloat16 if args.device == "cuda" else None
    train_step(model, opt, noisy, clean, loss, autocast_dtype=autocast)  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step(model, opt, noisy, clean, loss, autocast_dtype=autocast)
    if args.device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    result = {
        "device": args.device,
        "threads": args.threads,
        "seconds_per_step": elapsed / args.steps,
        "audio_seconds_per_second_per_worker": args.steps * args.batch * args.segment_seconds / elapsed,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
