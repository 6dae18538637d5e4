"""``diffgmm evaluate``: models and baselines side by side on paired corpora."""

from __future__ import annotations


def run(args) -> int:
    from pipeline.core.cli_flags import evaluate_flags, overrides_from
    from pipeline.core.config import load_yaml
    from pipeline.evaluate.job import EvaluateConfig, format_summary, run_evaluate

    overrides = overrides_from(args, evaluate_flags())
    if args.models:
        overrides["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    summary = run_evaluate(load_yaml(EvaluateConfig, args.config, overrides))
    if summary.get("already_committed"):
        print(f"run {summary['run_id']} was already committed; outputs unchanged")
    print(format_summary(summary))
    print(f"outputs: {summary['run_uri']}")
    return 0
