"""``diffgmm``: one console script, one subcommand per job.

Only argparse is imported at start-up so ``diffgmm --help`` is instant; each
subcommand imports its job module (torch, Ray, pyarrow…) when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _set(values: list[str]) -> dict:
    """``--set a.b=1`` pairs → {"a.b": 1} with YAML typing of the value."""
    import yaml

    out = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key] = yaml.safe_load(raw)
    return out


def _flags(p: argparse.ArgumentParser, flags) -> None:
    """``--config``, ``--set`` and a job's table of config flags (:mod:`pipeline.core.cli_flags`)."""
    from pipeline.core.cli_flags import add_flags

    _common(p)
    add_flags(p, flags)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (local path or URI); unknown keys are an error")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (dotted), repeatable")


def build_parser() -> argparse.ArgumentParser:
    from pipeline.core.cli_flags import TRAIN_FLAGS, add_flags, denoise_flags, evaluate_flags, model_flag

    parser = argparse.ArgumentParser(prog="diffgmm", description="Batch audio denoising with DiffGMM on Ray.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate a demo corpus and run the denoise job on it, all local")
    p.add_argument("--workdir", default="demo", help="local folder for the corpus and the run")
    p.add_argument("--num-clips", type=int, default=8)

    p = sub.add_parser("enhance", help="denoise local files in this process (no Ray)")
    p.add_argument("inputs", nargs="+", help="audio files")
    p.add_argument("--output-dir", required=True)
    add_flags(p, (model_flag(),))
    p.add_argument("--device", default="auto")

    p = sub.add_parser("denoise", help="the batch job: a prefix of noisy audio → denoised audio + per-clip Parquet")
    _flags(p, denoise_flags("run id (default: UTC timestamp); reuse it to retry a run idempotently"))
    p.add_argument("--dry-run", action="store_true", help="list what would be processed and stop")

    p = sub.add_parser("nightly", help="process only what is new or changed since the last night; keeps a ledger")
    _flags(p, denoise_flags("run id (default: today's UTC date, so a scheduler's retry is the same run)"))
    p.add_argument(
        "--reprocess-stale", action="store_true", help="also redo inputs whose result came from another model or config"
    )
    p.add_argument(
        "--prune", action="store_true", help="delete the outputs of inputs that are gone from the input prefix"
    )
    p.add_argument(
        "--max-attempts", type=int, default=3, help="stop retrying an unchanged input after this many failures"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show the plan (new, changed, retry, stale, gone) and stop: no run, no writes",
    )

    p = sub.add_parser("evaluate", help="score models and baselines on paired clean/noisy corpora")
    _flags(p, evaluate_flags())
    p.add_argument(
        "--models",
        help="comma-separated: diffgmm,aigd (shipped models), LABEL=CHECKPOINT, "
        "deepfilternet3,rnnoise,noisy,spectral_gating,wiener (peers and baselines)",
    )

    p = sub.add_parser(
        "train",
        help="train a model of the family (the recipe's model_name) from a recipe: Ray Train (TorchTrainer) or one local process",
    )
    _flags(p, TRAIN_FLAGS)
    p.add_argument(
        "--executor",
        choices=("ray", "local"),
        default="ray",
        help="ray: Ray Train workers fed by Ray Data; local: this process only, no Ray (CPU or one GPU)",
    )
    p.add_argument("--device", default="auto", help="local executor only: auto, cpu, cuda")

    p = sub.add_parser(
        "query", help="SQL over every committed run under an output prefix (views: clips, latest, evals, runs, ledger)"
    )
    p.add_argument("output_uri", help="the output prefix a denoise/evaluate job wrote (local path or s3://…)")
    p.add_argument(
        "sql",
        nargs="?",
        help="DuckDB SQL over the views clips, latest, evals, runs, ledger "
        "(anywhere among the flags); default: one row per run",
    )
    named = p.add_mutually_exclusive_group()
    named.add_argument(
        "--worst", type=int, metavar="N", help="the N worst clips of a run (--run-id, default the newest) by --metric"
    )
    named.add_argument("--errors", action="store_true", help="error rows counted by kind (latest results, or --run-id)")
    named.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="per-clip metrics of two runs and B − A")
    named.add_argument(
        "--model-stats",
        action="store_true",
        help="each model's own per-clip stats (gmm_nll, image_ssim, …) of a run (--run-id, default the newest denoise run)",
    )
    named.add_argument(
        "--noise-profile",
        action="store_true",
        help="per folder: removed noise, DiffGMM's mean mixture occupancy, UDiffSE's NMF noise fingerprint (octave levels, dominant Hz, EM NLL)",
    )
    p.add_argument(
        "--metric",
        default="pesq_wb",
        help="with --worst (default pesq_wb; e.g. dnsmos_ovrl, removed_noise_db, gmm_nll)",
    )
    p.add_argument("--run-id", help="with --worst/--errors/--model-stats: which run")
    p.add_argument("--depth", type=int, default=1, help="with --noise-profile: key segments that make a folder")
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    p.add_argument("--out", help="write to this file or URI instead of stdout")
    p.add_argument("--show-sql", action="store_true", help="print the SQL a named query runs (to stderr)")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS's own)")

    p = sub.add_parser("report", help="a self-contained HTML report of a run (and a comparison with another)")
    p.add_argument("output_uri", help="the output prefix a denoise job wrote")
    p.add_argument("--run-id", help="which run (default: the newest committed denoise run)")
    p.add_argument("--against", metavar="RUN_ID", help="compare with this run on the inputs both processed")
    p.add_argument("--out", required=True, help="the HTML file to write (opens from disk, no server)")
    p.add_argument("--clips", type=int, default=4, help="worst and best clips shown with spectrograms and audio")
    p.add_argument("--excerpt-seconds", type=float, default=8.0, help="length of the embedded audio excerpts")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS's own)")

    p = sub.add_parser("export", help="turn a training checkpoint into the artefact denoise loads")
    p.add_argument("checkpoint", help="training checkpoint (path or URI)")
    p.add_argument("output", help="where the inference checkpoint goes")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "query" and args.sql is None and len(extra) == 1 and not extra[0].startswith("-"):
        args.sql, extra = extra[0], []  # the SQL after a flag: argparse only takes positionals before the first one
    if extra:  # the subcommand's usage and one line, with the closest flag it knows
        import difflib

        sub = parser._subparsers._group_actions[0].choices[args.command]
        close = difflib.get_close_matches(extra[0].split("=")[0], list(sub._option_string_actions), n=1)
        sub.error(f"unrecognized arguments: {' '.join(extra)}" + (f" (did you mean {close[0]}?)" if close else ""))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_redact_record)
    if args.command == "demo":
        from jobs.demo import run
    elif args.command == "enhance":
        from jobs.enhance import run
    elif args.command == "denoise":
        from jobs.denoise import run
    elif args.command == "nightly":
        from jobs.nightly import run
    elif args.command == "evaluate":
        from jobs.evaluate import run
    elif args.command == "train":
        from jobs.train import run
    elif args.command == "query":
        from jobs.query import run
    elif args.command == "report":
        from jobs.report import run
    else:
        from jobs.export import run
    try:
        if hasattr(args, "set"):
            args.overrides = _set(args.set)
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print(f"diffgmm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an operator gets one line; -v shows the traceback
        if args.verbose:
            raise
        print(f"diffgmm {args.command}: error: {one_line(exc)} (-v shows the traceback)", file=sys.stderr)
        return 1


def _redact_record(record: logging.LogRecord) -> bool:
    """Logging filter: the formatted message with credentials redacted (see :mod:`pipeline.core.redact`)."""
    from pipeline.core.redact import redact

    message = record.getMessage()
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    return True


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line, with the root cause's when it adds something; credentials redacted."""
    from pipeline.core.redact import redact

    message = " ".join(str(exc).split()) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in message:
        message += f" ({' '.join(str(cause).split())})"
    return redact(message)


if __name__ == "__main__":
    sys.exit(main())
