"""``diffgmm train``: DiffGMM on Ray Train (``ray job submit -- diffgmm train --config ...``)."""

from __future__ import annotations

import json


def run(args) -> int:
    from pipeline.config import load_yaml
    from pipeline.train_job import TrainConfig, run_train

    from jobs.cli import overrides_from

    overrides = overrides_from(args, {"name": "name"})
    result = run_train(load_yaml(TrainConfig, args.config, overrides))
    metrics = {k: v for k, v in (result["metrics"] or {}).items() if isinstance(v, (int, float))}
    print(json.dumps(metrics, indent=2, default=str))
    print(f"checkpoints: {result['run_uri']} (best.pt, last.pt); export with: diffgmm export {result['run_uri']}/best.pt model.pt")
    return 0
