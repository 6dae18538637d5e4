"""``diffgmm train``: one recipe, two executors (Ray Train on a cluster, or one local process)."""

from __future__ import annotations

import hashlib
import json


def run(args) -> int:
    from pipeline.core import storage
    from pipeline.core.cli_flags import TRAIN_FLAGS, overrides_from
    from pipeline.core.config import load_yaml
    from pipeline.train.configs import TrainConfig
    from pipeline.train.executors import run_train, run_train_local

    overrides = overrides_from(args, TRAIN_FLAGS)
    config = load_yaml(TrainConfig, args.config, overrides)
    run_info = {"recipe": args.config, "overrides": {k: str(v) for k, v in overrides.items()}}
    if args.config:
        run_info["recipe_sha256"] = hashlib.sha256(storage.read_bytes(args.config)).hexdigest()
    if args.executor == "local":
        result = run_train_local(config, run_info, device=args.device)
    else:
        result = run_train(config, run_info)
    metrics = {k: v for k, v in (result["metrics"] or {}).items() if isinstance(v, (int, float))}
    print(json.dumps(metrics, indent=2, default=str))
    print(
        f"checkpoints: {result['run_uri']} (best.pt, last.pt); export with: diffgmm export {result['run_uri']}/best.pt model.pt"
    )
    return 0
