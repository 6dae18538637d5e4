"""The evaluation job on real Ray: pairing, baselines side by side, failures as rows."""

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.audio.demo_data import generate_pair
from pipeline.core import schema as S
from pipeline.evaluate.job import EvaluateConfig, run_evaluate
from pipeline.inference.model_stage import ModelStageConfig

pytestmark = pytest.mark.slow


def _corpus(root):
    rng = np.random.default_rng(3)
    for i in range(3):
        noisy, clean = generate_pair(1.0 + 0.5 * i, 5.0, 16000, rng)
        sf.write(f"{root}/noisy/c{i}.wav", noisy, 16000)
        sf.write(f"{root}/clean/c{i}.wav", clean, 16000)
    sf.write(f"{root}/noisy/only_noisy.wav", generate_pair(1.0, 5.0, 16000, rng)[0], 16000)
    sf.write(f"{root}/clean/only_clean.wav", generate_pair(1.0, 5.0, 16000, rng)[1], 16000)


def test_prefix_pairs_with_baselines(ray_local, tmp_path, tiny_checkpoint):
    root = str(tmp_path)
    os.makedirs(f"{root}/noisy"), os.makedirs(f"{root}/clean")
    _corpus(root)
    models = ("diffgmm", "noisy", "spectral_gating")
    config = EvaluateConfig(
        clean_uri=f"{root}/clean",
        noisy_uri=f"{root}/noisy",
        output_uri=f"{root}/eval",
        run_id="e1",
        models=models,
        metrics=("pesq_wb", "si_sdr_db", "stoi"),
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
    )
    summary = run_evaluate(config)
    table = pq.read_table(f"{root}/eval/runs/e1/clips")
    assert table.schema.equals(S.EVAL_SCHEMA)
    df = table.to_pandas()
    assert len(df) == 5 * len(models)
    unpaired = df[df[S.STATUS] == "error"]
    assert set(unpaired[S.NOISY_KEY].dropna()) == {"only_noisy.wav"}
    assert set(unpaired[S.CLEAN_KEY].dropna()) == {"only_clean.wav"}
    assert unpaired[S.ERROR].str.startswith("unpaired:").all()
    ok = df[df[S.STATUS] == "ok"]
    assert len(ok) == 3 * len(models)
    assert ok["pesq_wb"].between(1.0, 4.7).all() and ok["input_pesq_wb"].between(1.0, 4.7).all()
    np.testing.assert_allclose(ok["delta_si_sdr_db"], ok["si_sdr_db"] - ok["input_si_sdr_db"])
    # The noisy "model" is the input itself: every delta is exactly zero.
    assert (ok[ok[S.MODEL] == "noisy"]["delta_pesq_wb"] == 0).all()
    assert ok[ok[S.MODEL] == "diffgmm"][S.MODEL_ID].str.startswith("diffgmm-").all()
    on_disk = json.loads(open(f"{root}/eval/runs/e1/summary.json").read())
    assert set(on_disk["models"]) == set(models) and summary["models"]["noisy"]["metrics"]["pesq_wb"]["count"] == 3
    assert os.path.exists(f"{root}/eval/runs/e1/_COMMITTED.json")


def test_pairs_manifest(ray_local, tmp_path):
    root = str(tmp_path)
    os.makedirs(f"{root}/noisy"), os.makedirs(f"{root}/clean")
    _corpus(root)
    with open(f"{root}/pairs.csv", "w") as f:
        f.write("clean_uri,noisy_uri\n")
        for i in range(3):
            f.write(f"{root}/clean/c{i}.wav,{root}/noisy/c{i}.wav\n")
        f.write(f"{root}/clean/missing.wav,{root}/noisy/c0.wav\n")
    config = EvaluateConfig(
        pairs_uri=f"{root}/pairs.csv", output_uri=f"{root}/eval", run_id="m", models=("noisy",), metrics=("sdr_db",)
    )
    run_evaluate(config)
    df = pq.read_table(f"{root}/eval/runs/m/clips").to_pandas()
    assert len(df) == 4
    bad = df[df[S.STATUS] == "error"]
    assert len(bad) == 1 and bad[S.ERROR].iloc[0].startswith("not_found")


def test_config_refuses_unknown_models():
    with pytest.raises(ValueError, match="unknown models"):
        EvaluateConfig(clean_uri="a", noisy_uri="b", output_uri="c", models=("diffgmm", "magic"))
