"""An operator's mistake gets one line on stderr saying what is wrong, exit code 1, and no traceback (-v shows it)."""

import re

import pytest

from jobs.cli import main


@pytest.fixture
def inputs(tmp_path):
    import numpy as np
    import soundfile as sf

    from pipeline.audio.demo_data import generate_pair

    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", generate_pair(1.0, 5.0, 16000, np.random.default_rng(0))[0], 16000)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    (tmp_path / "garbage.pt").write_bytes(np.random.default_rng(1).bytes(4096))
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"x": io.StringIO("a pickled class")}, buf)
    (tmp_path / "pickled.pt").write_bytes(buf.getvalue())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not audio")
    return tmp_path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["denoise", "--input", "{t}/missing", "--output", "{t}/out"], "input prefix does not exist"),
        (
            ["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "write.metricz=[pesq_wb]"],
            "unknown keys ['metricz']",
        ),
        (
            ["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "write.metrics=[pesq_wbb]"],
            "unknown metrics ['pesq_wbb']",
        ),
        (
            ["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "decode.channel_policy=left"],
            "channel_policy must be one of",
        ),
        (["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "actors.max_actors=-1"], "must be >= 0"),
        (
            ["denoise", "--input", "{t}/in", "--output", "{t}/out", "--checkpoint", "{t}/text.pt"],
            "checkpoint {t}/text.pt",
        ),
        (
            ["denoise", "--input", "{t}/in", "--output", "{t}/out", "--model", "aigdd"],
            "not a shipped model (diffgmm, aigd, fuse, udiffse, deepfilternet3)",
        ),
        (
            ["evaluate", "--clean", "{t}/in", "--noisy", "{t}/in", "--output", "{t}/e", "--models", "diffgmm,rnnnoise"],
            "unknown models ['rnnnoise']",
        ),
        (["train", "--config", "{t}/missing.yaml"], "missing.yaml"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/in/out"], "overlap"),
        (["denoise", "--input", "{t}/in", "--output", "{t}"], "overlap"),
        (["denoise", "--input", "{t}/empty", "--output", "{t}/out"], "no audio files"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "novalue"], "--set expects key=value"),
        # Issue 22 #8: garbage, text and foreign pickles are one short line, without PyTorch's weights_only advice.
        (["export", "{t}/text.pt", "{t}/x.pt"], "checkpoint {t}/text.pt: not a checkpoint this project wrote ("),
        (["export", "{t}/garbage.pt", "{t}/x.pt"], "checkpoint {t}/garbage.pt: not a checkpoint this project wrote ("),
        (["export", "{t}/pickled.pt", "{t}/x.pt"], "checkpoint {t}/pickled.pt: not a checkpoint this project wrote ("),
        # Issue 22 #9: a missing reference prefix is refused up front, as a missing input prefix is.
        (
            ["denoise", "--input", "{t}/in", "--output", "{t}/out", "--reference", "{t}/missing-ref"],
            "reference prefix does not exist: {t}/missing-ref",
        ),
        (
            ["nightly", "--input", "{t}/in", "--output", "{t}/out", "--reference", "{t}/missing-ref"],
            "reference prefix does not exist: {t}/missing-ref",
        ),
    ],
)
def test_operator_errors_are_one_line(inputs, capsys, argv, message):
    argv = [a.format(t=inputs) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if " INFO " not in line]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"diffgmm {argv[0]}: error: ") and message.format(t=inputs) in errors[0], errors[0]
    assert "Traceback" not in "\n".join(err)
    assert len(errors[0]) < 400 and "weights_only" not in errors[0], errors[0]


def test_verbose_shows_the_traceback(inputs):
    with pytest.raises(FileNotFoundError, match="input prefix does not exist"):
        main(["-v", "denoise", "--input", f"{inputs}/missing", "--output", f"{inputs}/out"])


def test_train_outside_the_repo_says_where_it_looked(tmp_path, capsys, monkeypatch):
    """Issue 22 #7: the shipped recipe run from another directory finds no corpus under its relative URIs
    (relative to the current directory, docs/cluster.md): one line naming the resolved path, not a ZeroDivisionError."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "jobs" / "configs" / "train-default.yaml"
    monkeypatch.chdir(tmp_path)
    assert (
        main(["train", "--config", str(recipe), "--executor", "local", "--name", "t", "--set", "storage_path=runs"])
        == 1
    )
    errors = [line for line in capsys.readouterr().err.strip().splitlines() if " INFO " not in line]
    assert len(errors) == 1, errors
    assert (
        f"no audio found under ../shared/corpora/clean (resolved against the current directory: {tmp_path.parent}/shared/corpora/clean)"
        in errors[0]
    ), errors[0]


def test_a_misspelled_flag_shows_the_subcommands_usage_and_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["query", "out", "--fromat", "json"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: diffgmm query ") and err[-1] == (
        "diffgmm query: error: unrecognized arguments: --fromat json (did you mean --format?)"
    )


def test_query_help_lists_every_view(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "views: clips, latest, evals, runs, ledger" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["query", "--help"])
    assert "clips, latest, evals, runs, ledger" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["denoise", "nightly", "evaluate", "enhance"])
def test_model_flag_help_names_the_shipped_models_and_the_peer(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    from pipeline.core.checkpoints import PEER_MODELS, SHIPPED_CHECKPOINTS

    # The order of the shipped names depends on whether model.registry is imported yet; the set does not.
    listed = re.search(
        r"a shipped model by name \(([^;)]*); default diffgmm\)", " ".join(capsys.readouterr().out.split())
    )
    assert listed and set(listed.group(1).split(", ")) == {*SHIPPED_CHECKPOINTS, *PEER_MODELS} >= {
        "aigd",
        "diffgmm",
        "deepfilternet3",
    }


def test_query_sql_is_accepted_after_the_flags(tmp_path, capsys):
    from jobs.cli import build_parser

    # Parsing only (no runs needed): the SQL lands in args.sql wherever it stands.
    for argv in (["query", "out", "SELECT 1", "--format", "json"], ["query", "out", "--format", "json", "SELECT 1"]):
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:
            args.sql = extra[0]
        assert args.sql == "SELECT 1" and args.format == "json"
    # Through main: an empty prefix gets its one line (not an argparse error about the SQL).
    assert main(["query", str(tmp_path), "--format", "json", "SELECT 1"]) == 1
    assert "no committed runs under" in capsys.readouterr().err
