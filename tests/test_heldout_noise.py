"""The held-out-noise-type set (bench/make_heldout.py --noise-kinds) and the recipes' data.exclude_noise_kinds.

Over a small seeded corpus whose file names follow the shared corpus's: the set's noise
files are all of the named kinds (and never one a recipe excludes for its licence), its
speech is only held-out speakers', and a supervised recipe with ``exclude_noise_kinds``
trains on none of those noise files.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio.mixing import holdout, speaker_of
from pipeline.audio.noise_kinds import NOISE_KINDS, is_of_kinds
from pipeline.core.config import load_yaml
from pipeline.train.configs import TrainConfig
from pipeline.train.data import corpus_keys, data_summary

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "jobs/configs/train-aigd.yaml")
KINDS = ("machinery", "underground")
NOISES = {
    # of the named kinds
    "exercise_bike.flac": True,
    "ambie_vacuum.flac": True,
    "moodist_things_washing_machine.flac": True,
    "cdda_underground.flac": True,
    "moodist_places_subway_station.flac": True,
    # machinery too, but every recipe leaves it out for its doubtful origin (exclude_prefixes)
    "air_conditioner.flac": False,
    # other kinds
    "blanket_city.flac": False,
    "cdda_thunder_far.flac": False,
    "moodist_urban_traffic.flac": False,
    "ibmmax_train.flac": False,
    "doing_the_dishes.flac": False,
}
SPEAKERS = [f"{1000 + i}" for i in range(60)]


def _make_heldout():
    spec = importlib.util.spec_from_file_location("make_heldout", ROOT / "bench/make_heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("corpora")
    rng = np.random.default_rng(3)
    os.makedirs(root / "clean"), os.makedirs(root / "noise")
    for spk in SPEAKERS:
        sf.write(root / "clean" / f"libri_{spk}-1-0000.flac", 0.1 * rng.standard_normal(8000).astype(np.float32), 16000)
    for name in NOISES:
        sf.write(root / "noise" / name, 0.1 * rng.standard_normal(12000).astype(np.float32), 16000)
    return str(root)


def _config(corpora: str, **sets) -> TrainConfig:
    return load_yaml(
        TrainConfig, RECIPE, {"data.clean_uri": f"{corpora}/clean", "data.noise_uri": f"{corpora}/noise", **sets}
    )


def test_the_set_mixes_only_the_named_kinds_with_held_out_speakers(corpora, tmp_path, capsys):
    out = str(tmp_path / "set")
    assert (
        _make_heldout().main(
            [out, "--config", RECIPE, "--corpora", corpora, "--pairs", "12", "--noise-kinds", ",".join(KINDS)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "data.exclude_noise_kinds=[machinery,underground]" in printed
    with open(f"{out}/pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    assert sorted(os.listdir(f"{out}/noisy")) == sorted(os.listdir(f"{out}/clean")) == sorted(r["pair"] for r in rows)
    fraction = _config(corpora).data.clean_holdout_fraction
    train_speakers = {speaker_of(k) for k in corpus_keys(_config(corpora))["clean"]}
    for r in rows:
        assert NOISES[r["noise_key"]], f"{r['noise_key']} is not of kinds {KINDS} (or is excluded by the recipe)"
        assert is_of_kinds(r["noise_key"], KINDS)
        # The same speaker holdout as training: a held-out speaker's, never a training speaker's.
        assert holdout(speaker_of(r["clean_key"]), fraction) and speaker_of(r["clean_key"]) not in train_speakers
    # Twelve draws from five files reach more than one kind.
    assert {r["noise_key"] for r in rows} & {"cdda_underground.flac", "moodist_places_subway_station.flac"}
    assert {r["noise_key"] for r in rows} - {"cdda_underground.flac", "moodist_places_subway_station.flac"}
    noisy, rate = sf.read(f"{out}/noisy/pair_00.wav")
    assert rate == 16000 and len(noisy) == 4 * 16000

    # Without --noise-kinds: the usual held-out set, now with its sources listed too.
    plain = str(tmp_path / "plain")
    assert _make_heldout().main([plain, "--config", RECIPE, "--corpora", corpora, "--pairs", "4"]) == 0
    with open(f"{plain}/pairs.csv", newline="") as f:
        noise_valid = set(corpus_keys(_config(corpora))["noise_valid"])
        assert {r["noise_key"] for r in csv.DictReader(f)} <= noise_valid


def test_a_recipe_with_exclude_noise_kinds_trains_on_none_of_them(corpora):
    before = corpus_keys(_config(corpora))
    after = corpus_keys(_config(corpora, **{"data.exclude_noise_kinds": list(KINDS)}))
    named = {name for name, of_kind in NOISES.items() if of_kind}
    assert named & set(before["noise"] + before["noise_valid"]), "the corpus has the kinds before excluding them"
    assert not named & set(after["noise"] + after["noise_valid"])
    assert set(after["noise"] + after["noise_valid"]) == {
        k for k in before["noise"] + before["noise_valid"] if not is_of_kinds(k, KINDS)
    }
    assert after["clean"] == before["clean"] and after["clean_valid"] == before["clean_valid"]
    # The checkpoint's data summary says which kinds the model never heard.
    config = _config(corpora, **{"data.exclude_noise_kinds": list(KINDS)})
    assert data_summary(config, after)["excluded_noise_kinds"] == list(KINDS)
    assert "excluded_noise_kinds" not in data_summary(_config(corpora), before)


def test_unknown_kinds_and_kinds_with_no_file_are_one_line_errors(corpora, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown noise kind.*known: machinery"):
        _config(corpora, **{"data.exclude_noise_kinds": ["machines"]})
    assert (
        _make_heldout().main(
            [str(tmp_path / "x"), "--config", RECIPE, "--corpora", corpora, "--noise-kinds", "machinery,machines"]
        )
        == 2
    )
    assert "unknown noise kind(s) machines" in capsys.readouterr().err
    assert (
        _make_heldout().main([str(tmp_path / "y"), "--config", RECIPE, "--corpora", corpora, "--noise-kinds", "crowd"])
        == 2
    )
    err = capsys.readouterr().err
    assert "no noise file of kind(s) crowd" in err and len(err.strip().splitlines()) == 1


def test_every_kind_names_files_of_the_shared_noise_corpus():
    from conftest import shared_path

    names = os.listdir(shared_path("corpora", "noise"))
    for kind in NOISE_KINDS:
        for prefix in NOISE_KINDS[kind]:
            assert any(n.startswith(prefix) for n in names), f"{kind}: no file starts with {prefix!r}"
