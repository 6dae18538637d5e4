"""``diffgmm denoise``: the batch job (``ray job submit -- diffgmm denoise ...`` on a cluster)."""

from __future__ import annotations


def run(args) -> int:
    from pipeline.core.cli_flags import denoise_flags, overrides_from
    from pipeline.core.config import load_yaml
    from pipeline.denoise.job import DenoiseConfig, run_denoise
    from pipeline.denoise.summary import format_summary

    config = load_yaml(DenoiseConfig, args.config, overrides_from(args, denoise_flags()))
    print(format_summary(run_denoise(config, dry_run=args.dry_run)))
    return 0
