"""``diffgmm report``: one self-contained HTML file for a run (and a comparison with another)."""

from __future__ import annotations

import sys


def run(args) -> int:
    from tqdm import tqdm

    from pipeline.core import storage
    from pipeline.core.results import Results
    from pipeline.reporting.report import ReportConfig, build_report, report_steps

    storage_config = storage.StorageConfig(endpoint_url=args.endpoint_url)
    results = Results(args.output_uri, storage_config)
    config = ReportConfig(clips=args.clips, excerpt_seconds=args.excerpt_seconds)
    with tqdm(
        total=report_steps(results, args.run_id, args.against, config),
        desc="report",
        unit="step",
        file=sys.stderr,
        disable=None,
    ) as bar:

        def progress(step: str) -> None:
            bar.set_postfix_str(step[:40])
            bar.update()

        text = build_report(results, args.run_id, args.against, config, storage_config, progress)
    storage.write_bytes(args.out, text.encode())
    print(f"report: {args.out} ({len(text) / 1e6:.1f} MB)")
    return 0
