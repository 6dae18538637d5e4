"""FUSE's cost against DDIM steps: GFLOP per audio-second (extractor apart) and × real time on one thread.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix
products, multiply-add = 2 FLOP; STFTs and elementwise work are not counted) on one window;
the extractor (CREPE tiny) is counted on its own by running it alone on the same window.
Timing: ``enhance`` on ``--seconds`` of audio as ``--window-seconds`` windows, one thread,
best of ``--repeats``.

    python bench/fuse_cost.py --model runs/train/fuse-diffusion/best.pt --json docs/bench/fuse_cost.json
    python bench/fuse_cost.py            # the recipe's architecture, untrained (cost does not depend on weights)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = (1, 2, 4, 6, 10)


def _model(uri: str | None, num_steps: int):
    """The FUSE model at ``num_steps`` (the checkpoint's weights, or the recipe's architecture), extractor attached."""
    import torch
    import yaml

    from model.fuse import FUSE, FUSEConfig
    from pipeline.core.checkpoints import load_model
    from pipeline.core.pretrained import attach_pretrained

    if uri:
        loaded = load_model(uri).model
        config = dataclasses.replace(loaded.config, num_steps=num_steps)
        model = FUSE(config)
        model.load_state_dict(loaded.state_dict())
    else:
        recipe = yaml.safe_load((ROOT / "jobs/configs/train-fuse-diffusion.yaml").read_text())["model"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = FUSE(FUSEConfig(**{**recipe, "num_steps": num_steps}))
    attach_pretrained(model, None, require_record=False)
    return model.eval()


def gflop(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def measure(args) -> list[dict]:
    import torch

    from model.fuse.crepe import crepe_features

    torch.set_num_threads(1)
    rate = 16000
    generator = torch.Generator().manual_seed(0)
    window = 0.1 * torch.randn(1, int(args.window_seconds * rate), generator=generator)
    # A clip shorter than a window runs as one window of its own length, as the product's short-clip
    # buckets do (pipeline.inference.enhance); a longer one as whole windows.
    clip_window = min(args.window_seconds, args.seconds)
    audio = 0.1 * torch.randn(max(1, round(args.seconds / clip_window)), int(clip_window * rate), generator=generator)
    rows = []
    for steps in STEPS:
        model = _model(args.model, steps)
        with torch.inference_mode():
            total = gflop(lambda m=model: m.enhance(window, torch.Generator().manual_seed(0)))
            extractor = (
                gflop(lambda m=model: crepe_features(m.extractor, window, m.config.guidance_stride))
                if model.extractor
                else 0.0
            )
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                model.enhance(audio, torch.Generator().manual_seed(0))
                best = min(best, time.perf_counter() - start)
        rows.append(
            {
                "num_steps": steps,
                "gflop_per_audio_s": total / args.window_seconds,
                "extractor_gflop_per_audio_s": extractor / args.window_seconds,
                "extractor_share": extractor / total if total else 0.0,
                "x_real_time_1_thread": args.seconds / best,
                "seconds": args.seconds,
            }
        )
        print(json.dumps(rows[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a FUSE checkpoint (default: the recipe's architecture, untrained)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--window-seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    rows = measure(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    print("| DDIM steps | GFLOP / audio-s | of which extractor | extractor share | × real time, 1 thread |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['num_steps']} | {r['gflop_per_audio_s']:.2f} | {r['extractor_gflop_per_audio_s']:.2f} | "
            f"{100 * r['extractor_share']:.0f} % | {r['x_real_time_1_thread']:.1f} |"
        )


if __name__ == "__main__":
    main()
