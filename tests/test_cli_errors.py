"""An operator's mistake gets one line on stderr saying what is wrong, exit code 1, and no traceback (-v shows it)."""

import pytest

from jobs.cli import main


@pytest.fixture
def inputs(tmp_path):
    from pipeline.audio.demo_data import generate_pair
    import numpy as np
    import soundfile as sf

    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", generate_pair(1.0, 5.0, 16000, np.random.default_rng(0))[0], 16000)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not audio")
    return tmp_path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["denoise", "--input", "{t}/missing", "--output", "{t}/out"], "input prefix does not exist"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "write.metricz=[pesq_wb]"], "unknown keys ['metricz']"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "write.metrics=[pesq_wbb]"], "unknown metrics ['pesq_wbb']"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "decode.channel_policy=left"], "channel_policy must be one of"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "actors.max_actors=-1"], "must be >= 0"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/out", "--checkpoint", "{t}/text.pt"], "checkpoint {t}/text.pt"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/out", "--model", "aigdd"], "not a shipped model (diffgmm, aigd, deepfilternet3)"),
        (["evaluate", "--clean", "{t}/in", "--noisy", "{t}/in", "--output", "{t}/e", "--models", "diffgmm,rnnnoise"], "unknown models ['rnnnoise']"),
        (["train", "--config", "{t}/missing.yaml"], "missing.yaml"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/in/out"], "overlap"),
        (["denoise", "--input", "{t}/in", "--output", "{t}"], "overlap"),
        (["denoise", "--input", "{t}/empty", "--output", "{t}/out"], "no audio files"),
        (["denoise", "--input", "{t}/in", "--output", "{t}/out", "--set", "novalue"], "--set expects key=value"),
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


def test_verbose_shows_the_traceback(inputs):
    with pytest.raises(FileNotFoundError, match="input prefix does not exist"):
        main(["-v", "denoise", "--input", f"{inputs}/missing", "--output", f"{inputs}/out"])
