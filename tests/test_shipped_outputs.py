"""The shipped checkpoints give the outputs recorded in tests/data/shipped_outputs.npz.

The file was written by ``bench/make_shipped_golden.py`` before the family-contract
refactor (issue 18); a change to the model, windowing, batching or streaming code that
alters what a shipped model makes of a signal fails here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "shipped_outputs.npz"


def _generator():
    spec = importlib.util.spec_from_file_location("make_shipped_golden", ROOT / "bench" / "make_shipped_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recorded() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def reproduced() -> dict[str, np.ndarray]:
    return _generator().shipped_outputs()


def test_every_shipped_model_is_recorded(recorded):
    from pipeline.core.checkpoints import SHIPPED_CHECKPOINTS

    names = {k.split("/")[0] for k in recorded}
    assert names == set(SHIPPED_CHECKPOINTS)
    for name in names:
        assert f"{name}/clip/audio" in recorded and f"{name}/stream/audio" in recorded


def test_shipped_outputs_unchanged(recorded, reproduced):
    assert set(reproduced) == set(recorded)
    for key, want in recorded.items():
        got = reproduced[key]
        assert got.shape == want.shape, key
        if key.endswith("/audio"):
            # Samples are O(0.1–1); float32 sums over different batch shapes differ by ~1e-6.
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-5, err_msg=key)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=key)


def test_shipped_names_come_from_the_registry_and_match_the_assets():
    """The help texts' light listing (asset files) and the registry's shipped checkpoints name the same families."""
    from model.registry import MODELS, shipped_names
    from pipeline.core.checkpoints import ASSETS, SHIPPED_CHECKPOINTS

    assert list(SHIPPED_CHECKPOINTS) == shipped_names()
    assert sorted(p.name.removesuffix("-default.pt") for p in ASSETS.glob("*-default.pt")) == sorted(shipped_names())
    for name in shipped_names():
        assert SHIPPED_CHECKPOINTS[name] == str(ASSETS / MODELS[name].shipped_checkpoint)
