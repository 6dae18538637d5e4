"""Command-line flags that set config keys: one table per job config builds both the parser's flags and the overrides.

A :class:`Flag` names the option (``--input``), the argparse attribute it lands
in, the dotted config key it sets and its help. ``jobs/cli.py`` adds a table's
flags to a subparser (:func:`add_flags`); the job's entry point turns the
parsed flags that were given, plus ``--set`` pairs, into config overrides
(:func:`overrides_from`). A flag is declared once, so the parser and the config
cannot drift apart, and no job module imports the CLI module back.

Only stdlib and :mod:`pipeline.core.checkpoints` (light) are imported, so
``diffgmm --help`` stays instant.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Flag:
    """``options``: the option strings (the first is the canonical one); ``dest``: the argparse attribute;
    ``key``: the dotted config key it overrides; ``metavar``: shown in usage (default: argparse's);
    ``type``: argparse's converter for the value (default: the string as typed)."""

    options: tuple[str, ...]
    dest: str
    key: str
    help: str
    metavar: str | None = None
    type: Callable[[str], Any] | None = None

    def with_help(self, text: str) -> Flag:
        return replace(self, help=text)


def model_flag() -> Flag:
    """``--model`` and ``--checkpoint`` are one flag: a shipped model or a peer by name, or any checkpoint file."""
    from pipeline.core.checkpoints import PEER_MODELS, SHIPPED_CHECKPOINTS

    names = ", ".join([*SHIPPED_CHECKPOINTS, *PEER_MODELS])
    return Flag(
        ("--model", "--checkpoint"),
        "checkpoint",
        "model.checkpoint_uri",
        f"a shipped model by name ({names}; default diffgmm) or a checkpoint path or URI",
        metavar="MODEL",
    )


RUN_ID = Flag(("--run-id",), "run_id", "run_id", "run id")

ATTEN_LIM_DB = Flag(
    ("--atten-lim-db",),
    "atten_lim_db",
    "model.enhance.atten_lim_db",
    "suppress at most this many dB in any band and frame (natural-sounding speech); default: no limit",
    metavar="DB",
    type=float,
)


def denoise_flags(run_id_help: str = RUN_ID.help) -> tuple[Flag, ...]:
    """The flags ``denoise`` and ``nightly`` share (they share :class:`pipeline.denoise.job.DenoiseConfig`)."""
    return (
        Flag(("--input",), "input_uri", "input_uri", "input prefix (local path, s3://, gs://…)"),
        Flag(("--output",), "output_uri", "output_uri", "output prefix (a nightly ledger lives under it)"),
        Flag(("--reference",), "reference_uri", "reference_uri", "clean reference prefix with matching keys"),
        model_flag(),
        ATTEN_LIM_DB,
        RUN_ID.with_help(run_id_help),
    )


def evaluate_flags() -> tuple[Flag, ...]:
    """The flags of ``evaluate`` (:class:`pipeline.evaluate.job.EvaluateConfig`); ``--models`` is parsed by the job."""
    return (
        Flag(("--clean",), "clean_uri", "clean_uri", "clean prefix"),
        Flag(("--noisy",), "noisy_uri", "noisy_uri", "noisy prefix (keys match the clean prefix)"),
        Flag(("--pairs",), "pairs_uri", "pairs_uri", "CSV or Parquet manifest with clean_uri,noisy_uri columns"),
        Flag(("--output",), "output_uri", "output_uri", "where the table and summary go"),
        model_flag(),
        RUN_ID,
    )


TRAIN_FLAGS = (Flag(("--name",), "name", "name", "run name; rerunning the same name resumes it"),)


def add_flags(parser: argparse.ArgumentParser, flags: tuple[Flag, ...]) -> None:
    """Adds each flag as an option (a string unless the flag names a ``type``) that defaults to None
    (None = not given: the YAML's value stays)."""
    for f in flags:
        parser.add_argument(*f.options, dest=f.dest, help=f.help, metavar=f.metavar, type=f.type)


def overrides_from(args: argparse.Namespace, flags: tuple[Flag, ...]) -> dict:
    """``--set`` overrides (``args.overrides``), then the table's flags that were given, as {dotted key: value}."""
    out = dict(getattr(args, "overrides", None) or {})
    for f in flags:
        value = getattr(args, f.dest, None)
        if value is not None:
            out[f.key] = value
    return out
