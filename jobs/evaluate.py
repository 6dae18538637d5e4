"""``diffgmm evaluate``: models and baselines side by side on paired corpora."""

from __future__ import annotations


def run(args) -> int:
    from jobs.cli import overrides_from
    from pipeline.core.config import load_yaml
    from pipeline.evaluate.job import EvaluateConfig, format_summary, run_evaluate

    flags = {"clean_uri": "clean_uri", "noisy_uri": "noisy_uri", "pairs_uri": "pairs_uri",
             "output_uri": "output_uri", "run_id": "run_id", "checkpoint": "model.checkpoint_uri"}
    overrides = overrides_from(args, flags)
    if args.models:
        overrides["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    summary = run_evaluate(load_yaml(EvaluateConfig, args.config, overrides))
    if summary.get("already_committed"):
        print(f"run {summary['run_id']} was already committed; outputs unchanged")
    print(format_summary(summary))
    print(f"outputs: {summary['run_uri']}")
    return 0
