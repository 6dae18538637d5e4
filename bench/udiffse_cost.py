"""UDiffSE cost per sampler setting: network calls, GFLOP and × real time per thread on one chunk.

Random weights (speed does not depend on them). × real time is reported twice:
wall-clock, and CPU time of this process (one thread), which is what the wall
time would be on an idle core when the machine is shared.

    OMP_NUM_THREADS=1 python bench/udiffse_cost.py --seconds 10 --settings 10,3,1 10,1,1 30,5,2
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from model.udiffse import UDiffSE, UDiffSEConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--settings", nargs="+", default=["10,3,1", "10,1,1", "30,5,2"], help="num_e,num_em,nbatch")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from torch.utils.flop_counter import FlopCounterMode

    chunk = 0.1 * torch.randn(int(args.seconds * 16000), generator=torch.Generator().manual_seed(0))
    rows = []
    for setting in args.settings:
        num_e, num_em, nbatch = (int(v) for v in setting.split(","))
        model = UDiffSE(UDiffSEConfig(num_e=num_e, num_em=num_em, nbatch=nbatch, chunk_seconds=args.seconds)).eval()
        image, _ = model.image(chunk[None])
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(image.expand(nbatch, -1, -1), torch.full((nbatch,), 0.5))
        gflop_call = counter.get_total_flops() / 1e9 / args.seconds
        wall, cpu = time.perf_counter(), time.process_time()
        model.enhance_chunk(chunk, None, torch.Generator().manual_seed(0))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        calls = model.config.calls_per_chunk
        rows.append(
            {
                "num_e": num_e,
                "num_em": num_em,
                "nbatch": nbatch,
                "calls_per_clip": calls,
                "gflop_per_audio_s": round(gflop_call * calls, 1),
                "gflop_per_call_per_audio_s": round(gflop_call / nbatch, 3),
                "x_rt_wall": round(wall / args.seconds, 2),
                "x_rt_cpu": round(cpu / args.seconds, 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
