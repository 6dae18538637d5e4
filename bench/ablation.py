"""Same-budget comparisons of recipe choices (K, T, representation, loss terms).

Every variant is the shipped recipe (``jobs/configs/train-default.yaml``) with
a few ``--set`` overrides, trained by the same local executor as
``diffgmm train --executor local`` (same examples, same seed, same
``train_step``) for the same number of optimiser steps, with the cosine
schedule spread over that budget. The final model is then scored on the
recipe's held-out validation set and on vbd-debug (never used for choices).

    python bench/ablation.py --variant stft-K5 --steps 500 --threads 1 --out /tmp/ablation
    python bench/ablation.py --variant stft-K1 --steps 500 --threads 1 --out /tmp/ablation --set model.num_components=1
    python bench/ablation.py --report /tmp/ablation --json docs/bench/ablation.json   # markdown table
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("ablation")
RECIPE = ROOT / "jobs/configs/train-default.yaml"


def train_variant(args) -> dict:
    import torch
    import yaml

    from pipeline.core.checkpoints import load_model
    from pipeline.core.config import load_yaml
    from pipeline.inference.enhance import EnhanceConfig, Enhancer
    from pipeline.train.configs import TrainConfig
    from pipeline.train.data import load_pair, paired_keys
    from pipeline.train.executors import run_train_local
    from pipeline.train.steps import validate

    torch.set_num_threads(args.threads)
    overrides = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set or [])}
    steps_per_epoch = min(args.valid_every, args.steps)
    overrides.update(
        {
            "name": args.variant,
            "storage_path": args.out,
            "optim.steps_per_epoch": steps_per_epoch,
            "optim.epochs": args.steps // steps_per_epoch,
            "data.clean_uri": f"{args.corpora}/clean",
            "data.noise_uri": f"{args.corpora}/noise",
        }
    )
    config = load_yaml(TrainConfig, str(RECIPE), overrides)
    t0 = time.perf_counter()
    result = run_train_local(config, {"recipe": str(RECIPE.relative_to(ROOT)), "ablation": args.variant}, device="cpu")
    minutes = (time.perf_counter() - t0) / 60
    last = load_model(f"{config.run_uri}/last.pt")
    rate = config.model.sample_rate
    vbd = [
        load_pair(f"{args.vbd}/clean", f"{args.vbd}/noisy", k, rate, config.storage)
        for k in paired_keys(f"{args.vbd}/clean", f"{args.vbd}/noisy", config.storage)
    ]
    if not vbd:
        raise SystemExit(f"no vbd-debug pairs under {args.vbd}")
    out = {
        "variant": args.variant,
        "overrides": args.set or [],
        "train_steps": result["metrics"]["step"],
        "parameters": sum(p.numel() for p in last.model.parameters()),
        "threads": args.threads,
        "minutes": minutes,
        "heldout": last.metadata["val"],
        "vbd_debug": validate(Enhancer(last.model, EnhanceConfig(device="cpu")), vbd, rate),
    }
    Path(config.run_uri, "result.json").write_text(json.dumps(out, indent=1))
    return out


def report(folder: str, json_path: str | None) -> None:
    results = sorted(
        (json.loads(p.read_text()) for p in Path(folder).glob("*/result.json")), key=lambda r: r["variant"]
    )
    if not results:
        raise SystemExit(f"no */result.json under {folder}")
    first = results[0]
    print(
        "| variant | overrides | params | steps | held-out PESQ-WB | held-out SI-SDR dB | vbd PESQ-WB | vbd SI-SDR dB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| noisy input | | | | {first['heldout']['input_pesq_wb']:.3f} | {first['heldout']['input_si_sdr_db']:.2f} "
        f"| {first['vbd_debug']['input_pesq_wb']:.3f} | {first['vbd_debug']['input_si_sdr_db']:.2f} |"
    )
    for r in results:
        h, v = r["heldout"], r["vbd_debug"]
        print(
            f"| {r['variant']} | {' '.join(r['overrides']) or '(recipe)'} | {r['parameters'] / 1e6:.2f} M | {r['train_steps']} "
            f"| {h['pesq_wb']:.3f} | {h['si_sdr_db']:.2f} | {v['pesq_wb']:.3f} | {v['si_sdr_db']:.2f} |"
        )
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", help="a name for this variant (its folder under --out)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="recipe override, repeatable")
    parser.add_argument("--steps", type=int, default=500, help="training budget in optimiser steps")
    parser.add_argument("--valid-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="/tmp/ablation")
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared/corpora"))
    parser.add_argument("--vbd", default=str(ROOT.parent / "shared/testdata/vbd-debug"))
    parser.add_argument("--report", metavar="FOLDER", help="print the table of finished variants")
    parser.add_argument("--json", help="with --report: also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.report:
        report(args.report, args.json)
    elif args.variant:
        train_variant(args)
    else:
        parser.error("--variant or --report")


if __name__ == "__main__":
    main()
