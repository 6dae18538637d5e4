"""A corpus whose hash-picked held-out split holds no clean speaker is an operator error, not a division by zero."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pipeline.core.config import from_dict
from pipeline.train.configs import TrainConfig
from pipeline.train.data import corpus_keys


def _corpus(root, names):
    for kind, files in (("clean", names), ("noise", ["n0.flac"])):
        (root / kind).mkdir()
        for name in files:
            sf.write(root / kind / name, np.zeros(1600, np.float32), 16000)


def _config(root, **data):
    return from_dict(TrainConfig, {"data": {"clean_uri": f"{root}/clean", "noise_uri": f"{root}/noise", **data}})


def test_no_held_out_clean_speaker_says_how_to_fix(tmp_path):
    _corpus(tmp_path, ["clip_0.wav", "clip_1.wav"])  # neither speaker hashes into the default 10 %
    with pytest.raises(ValueError, match="no clean speaker of the 2 files .*data.valid_clean_uri"):
        corpus_keys(_config(tmp_path))


def test_a_paired_validation_set_or_no_validation_needs_no_held_out_speaker(tmp_path):
    _corpus(tmp_path, ["clip_0.wav", "clip_1.wav"])
    paired = _config(tmp_path, valid_clean_uri=f"{tmp_path}/clean", valid_noisy_uri=f"{tmp_path}/clean")
    assert corpus_keys(paired)["clean"] == ["clip_0.wav", "clip_1.wav"]
    assert corpus_keys(_config(tmp_path, valid_pairs=0))["clean_valid"] == []
