"""``diffgmm demo``: the main job end to end on an embedded default.

Generates a seeded demo corpus (speech-like signals plus noise, with clean
references) in a local folder, runs the Ray Data denoise job on local Ray over
it, and prints what it did.
"""

from __future__ import annotations

import os


def run(args) -> int:
    import pyarrow.parquet as pq

    from pipeline.audio.demo_data import DemoConfig, write_demo_corpus
    from pipeline.core import schema as S
    from pipeline.denoise.job import DenoiseConfig, run_denoise
    from pipeline.denoise.summary import format_summary

    root = os.path.abspath(args.workdir)
    corpus = os.path.join(root, "corpus")
    if not os.path.isdir(os.path.join(corpus, "noisy")):
        write_demo_corpus(corpus, DemoConfig(num_clips=args.num_clips))
        print(f"generated {args.num_clips} demo pairs under {corpus}")
    config = DenoiseConfig(
        input_uri=os.path.join(corpus, "noisy"),
        output_uri=os.path.join(root, "out"),
        reference_uri=os.path.join(corpus, "clean"),
    )
    summary = run_denoise(config)
    print(format_summary(summary))
    table = pq.read_table(os.path.join(summary["run_uri"], "clips"))
    columns = [S.INPUT_KEY, S.STATUS, S.DURATION_SECONDS, S.PESQ_WB, S.SI_SDR_DB, S.REMOVED_NOISE_DB, S.GMM_NLL]
    print(table.select(columns).to_pandas().round(3).to_string(index=False))
    return 0
