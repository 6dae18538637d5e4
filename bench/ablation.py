"""The paper's ablation: K (mixture components) and T (reverse steps) at one training budget.

Every variant trains from the same seed on the same mixed batches (the
`jobs/configs/train-default.yaml` recipe: corpora split, SNR range, loss, Adam
lr) for the same number of steps, then is scored on the held-out mixed
validation set and on vbd-debug. Single process, so several variants can share
a small machine; it calls the same `train_step`/`validate` as `diffgmm train`.

    python bench/ablation.py --variant T2K5 --steps 1000 --threads 1 --out /tmp/ablation
    python bench/ablation.py --report /tmp/ablation --json docs/bench/ablation_1000_steps.json   # markdown tables
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


def parse_variant(name: str) -> tuple[int, int]:
    """'T2K5' → (num_steps=2, num_components=5)."""
    t, k = name.upper().lstrip("T").split("K")
    return int(t), int(k)


def train_variant(args) -> dict:
    import numpy as np
    import torch

    from model import DiffGMM, make_checkpoint
    from pipeline.checkpoints import save_checkpoint
    from pipeline.config import load_yaml
    from pipeline.enhance import EnhanceConfig, Enhancer
    from pipeline.mixing import mixed_batches
    from pipeline.train_job import TrainConfig, corpus_keys, load_pair, paired_keys, validation_set
    from pipeline.training import load_corpus, train_step, validate

    torch.set_num_threads(args.threads)
    num_steps, num_components = parse_variant(args.variant)
    overrides = {"model.num_steps": num_steps, "model.num_components": num_components,
                 "data.clean_uri": f"{args.corpora}/clean", "data.noise_uri": f"{args.corpora}/noise"}
    config = load_yaml(TrainConfig, str(ROOT / "jobs/configs/train-default.yaml"), overrides)
    keys = corpus_keys(config)
    rate = config.model.sample_rate
    clean = list(load_corpus(config.data.clean_uri, rate, keys["clean"]).values())
    noise = list(load_corpus(config.data.noise_uri, rate, keys["noise"]).values())
    valid = validation_set(config, keys)
    vbd = [load_pair(f"{args.vbd}/clean", f"{args.vbd}/noisy", k, rate, config.storage)
           for k in paired_keys(f"{args.vbd}/clean", f"{args.vbd}/noisy", config.storage)]
    if not vbd:
        raise SystemExit(f"no vbd-debug pairs under {args.vbd}")

    torch.manual_seed(config.optim.seed)
    model = DiffGMM(config.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.learning_rate)
    batches = mixed_batches(clean, noise, config.mix, config.optim.batch_size, seed=config.optim.seed)
    enhancer = Enhancer(model, EnhanceConfig())
    out = Path(args.out) / args.variant
    out.mkdir(parents=True, exist_ok=True)
    history, t0, train_seconds = [], time.perf_counter(), 0.0
    for step in range(1, args.steps + 1):
        noisy, target = next(batches)
        ts = time.perf_counter()
        parts = train_step(model, optimizer, torch.from_numpy(noisy), torch.from_numpy(target), config.loss, config.optim.grad_clip)
        train_seconds += time.perf_counter() - ts
        if step % 100 == 0:
            log.info("%s step %d l1 %.4f", args.variant, step, parts["l1"])
        if step % args.valid_every == 0 or step == args.steps:
            scores = validate(enhancer, valid, rate)
            history.append({"step": step, **scores, "minutes": (time.perf_counter() - t0) / 60})
            log.info("%s VAL %s", args.variant, history[-1])
            # Written at every validation so that a stopped run still leaves its curve.
            (out / "history.json").write_text(json.dumps(history, indent=1))
    vbd_scores = validate(enhancer, vbd, rate)
    result = {
        "variant": args.variant, "num_steps": num_steps, "num_components": num_components,
        "train_steps": args.steps, "batch_size": config.optim.batch_size,
        "segment_seconds": config.mix.segment_seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds_per_step": train_seconds / args.steps, "threads": args.threads,
        "heldout": history[-1], "vbd_debug": vbd_scores, "history": history,
    }
    save_checkpoint(make_checkpoint(model, {"step": args.steps, "ablation": args.variant}), str(out / "final.pt"))
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def report(folder: str, json_path: str | None) -> None:
    results = sorted((json.loads(p.read_text()) for p in Path(folder).glob("*/result.json")),
                     key=lambda r: (r["num_components"], r["num_steps"]))
    if not results:
        raise SystemExit(f"no */result.json under {folder}")
    first = results[0]
    print("| variant | T | K | params | held-out PESQ-WB | held-out SI-SDR dB | vbd PESQ-WB | vbd SI-SDR dB |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| noisy input | | | | {first['heldout']['input_pesq_wb']:.3f} | {first['heldout']['input_si_sdr_db']:.2f} "
          f"| {first['vbd_debug']['input_pesq_wb']:.3f} | {first['vbd_debug']['input_si_sdr_db']:.2f} |")
    for r in results:
        h, v = r["heldout"], r["vbd_debug"]
        print(f"| {r['variant']} | {r['num_steps']} | {r['num_components']} | {r['parameters'] / 1e6:.2f} M "
              f"| {h['pesq_wb']:.3f} | {h['si_sdr_db']:.2f} | {v['pesq_wb']:.3f} | {v['si_sdr_db']:.2f} |")
    steps = [h["step"] for h in first["history"]]
    print()
    print("| variant | " + " | ".join(f"step {s}: PESQ-WB / SI-SDR" for s in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for r in results:
        cells = [f"{h['pesq_wb']:.3f} / {h['si_sdr_db']:.2f}" for h in r["history"]]
        print(f"| {r['variant']} | " + " | ".join(cells) + " |")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", help="T<steps>K<components>, e.g. T2K5")
    parser.add_argument("--steps", type=int, default=1000, help="training budget in optimiser steps")
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
