"""``diffgmm denoise``: the batch job (``ray job submit -- diffgmm denoise ...`` on a cluster)."""

from __future__ import annotations

import json
import logging

log = logging.getLogger(__name__)


def throughput(summary: dict) -> str:
    """``= 9.1x real time``; after a resume, over the clips this attempt processed, with the all-rows figure beside."""
    rate = f"= {summary['audio_seconds_per_second']:.1f}x real time"
    resumed = summary.get("resumed_rows") or 0
    if not resumed:
        return rate
    return (f"{rate} on the {summary['processed_clips']} clips processed now ({resumed} resumed from an earlier attempt; "
            f"{summary['audio_seconds_per_second_all_rows']:.1f}x counting them)")


def print_summary(summary: dict) -> None:
    if summary.get("dry_run"):
        print(f"dry run {summary['run_id']}: {summary['clips']} clips, {summary['bytes'] / 1e6:.1f} MB would be processed")
        for key in summary["keys"][:20]:
            print(f"  {key}")
        if summary["clips"] > 20:
            print(f"  … and {summary['clips'] - 20} more")
        return
    if summary.get("already_committed"):
        print(f"run {summary['run_id']} was already committed; outputs unchanged")
    print(
        f"run {summary['run_id']}: {summary['clips']} clips ({summary['ok']} ok, {summary['errors']} errors), "
        f"{summary['audio_hours']:.3f} h audio in {summary['wall_seconds']:.1f} s " + throughput(summary)
    )
    if summary.get("streamed"):
        print(f"{summary['streamed']} long files streamed block by block (no reference metrics for them)")
    if summary["errors_by_kind"]:
        print("errors by kind: " + json.dumps(summary["errors_by_kind"]))
    print(f"outputs: {summary['run_uri']}")


def run(args) -> int:
    from jobs.cli import denoise_config
    from pipeline.denoise.job import run_denoise

    summary = run_denoise(denoise_config(args), dry_run=args.dry_run)
    print_summary(summary)
    return 0
