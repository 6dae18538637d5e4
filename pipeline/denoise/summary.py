"""The operator's summary of a denoise run (what ``diffgmm denoise`` and ``diffgmm demo`` print)."""

from __future__ import annotations

import json


def throughput(summary: dict) -> str:
    """``= 9.1x real time``; after a resume, over the clips this attempt processed, with the all-rows figure beside."""
    rate = f"= {summary['audio_seconds_per_second']:.1f}x real time"
    resumed = summary.get("resumed_rows") or 0
    if not resumed:
        return rate
    return (
        f"{rate} on the {summary['processed_clips']} clips processed now ({resumed} resumed from an earlier attempt; "
        f"{summary['audio_seconds_per_second_all_rows']:.1f}x counting them)"
    )


def run_line(summary: dict) -> str:
    """``run night-1: 30 clips (29 ok, 1 errors), 4m12s audio in 28s = 9.1x real time`` (denoise and nightly)."""
    from pipeline.core.progress import format_duration

    return (
        f"run {summary['run_id']}: {summary['clips']} clips ({summary['ok']} ok, {summary['errors']} errors), "
        f"{format_duration(summary['audio_hours'] * 3600)} audio in {format_duration(summary['wall_seconds'])} "
        + throughput(summary)
    )


def format_summary(summary: dict) -> str:
    """Lines for a summary dict of :func:`pipeline.denoise.job.run_denoise` (a dry run's, a committed run's)."""
    if summary.get("dry_run"):
        lines = [
            f"dry run {summary['run_id']}: {summary['clips']} clips, {summary['bytes'] / 1e6:.1f} MB would be processed"
        ]
        lines += [f"  {key}" for key in summary["keys"][:20]]
        if summary["clips"] > 20:
            lines.append(f"  … and {summary['clips'] - 20} more")
        return "\n".join(lines)
    lines = []
    if summary.get("already_committed"):
        lines.append(f"run {summary['run_id']} was already committed; outputs unchanged")
    lines.append(run_line(summary))
    if summary.get("streamed"):
        lines.append(f"{summary['streamed']} long files streamed block by block (no reference metrics for them)")
    if summary["errors_by_kind"]:
        lines.append("errors by kind: " + json.dumps(summary["errors_by_kind"]))
    lines.append(f"outputs: {summary['run_uri']}")
    return "\n".join(lines)
