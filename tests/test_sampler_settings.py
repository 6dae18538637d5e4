"""``model.sampler``: a family's sampler settings (ModelSpec.sampler_fields) overridden at inference."""

from __future__ import annotations

import pytest
import torch

from model import make_checkpoint
from model.udiffse import UDiffSE, UDiffSEConfig
from pipeline.core.checkpoints import load_model, save_checkpoint
from pipeline.core.config import load_yaml
from pipeline.denoise.job import DenoiseConfig

TINY = dict(channels=4, channel_mults=(1, 2), groups=2, time_features=8, num_e=4, num_em=2)


@pytest.fixture(scope="module")
def udiffse_checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("ckpt") / "udiffse.pt")
    save_checkpoint(make_checkpoint(UDiffSE(UDiffSEConfig(**TINY)), {"note": "test"}), path)
    return path


def test_sampler_settings_replace_the_checkpoints_and_name_another_model(udiffse_checkpoint):
    plain = load_model(udiffse_checkpoint)
    paper = load_model(udiffse_checkpoint, sampler={"num_e": 30, "num_em": 5, "nbatch": 2})
    assert (plain.model.config.num_e, plain.model.config.num_em) == (4, 2)
    assert (paper.model.config.num_e, paper.model.config.num_em, paper.model.config.nbatch) == (30, 5, 2)
    assert paper.sampler == {"num_e": 30, "num_em": 5, "nbatch": 2} and plain.sampler == {}
    assert paper.model.config.channels == plain.model.config.channels
    # The same weights under another sampler are another model id; the id is stable and order-free.
    assert paper.model_id.startswith(plain.model_id + "-s") and paper.model_id != plain.model_id
    again = load_model(udiffse_checkpoint, sampler={"nbatch": 2, "num_em": 5, "num_e": 30})
    assert again.model_id == paper.model_id
    assert load_model(udiffse_checkpoint, sampler={}).model_id == plain.model_id


def test_architecture_fields_and_other_families_are_refused_in_one_line(udiffse_checkpoint, tiny_checkpoint):
    with pytest.raises(
        ValueError, match=r"model.sampler: channels not a sampler setting of udiffse \(it takes num_e"
    ) as exc:
        load_model(udiffse_checkpoint, sampler={"channels": 16})
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="not a sampler setting of diffgmm .it takes none"):
        load_model(tiny_checkpoint, sampler={"num_e": 3})
    # Not strict (an evaluation of several families): the keys a family does not take are left out.
    assert (
        load_model(tiny_checkpoint, sampler={"num_e": 3}, strict_sampler=False).model_id
        == load_model(tiny_checkpoint).model_id
    )
    assert load_model(tiny_checkpoint, sampler={"num_e": 3}, strict_sampler=False).sampler == {}
    # A bad value is the family config's own error, naming the checkpoint.
    with pytest.raises(ValueError, match="udiffse.pt"):
        load_model(udiffse_checkpoint, sampler={"num_e": 0})


def test_the_job_config_takes_sampler_settings_from_set_flags():
    config = load_yaml(DenoiseConfig, None, {"input_uri": "in/", "output_uri": "out/", "model.sampler.num_e": 30})
    assert config.model.sampler == {"num_e": 30}


def test_the_paper_sampler_recipe_is_the_papers_setting_on_the_shipped_checkpoint():
    from pathlib import Path

    from model.udiffse import PAPER_SETTING

    recipe = Path(__file__).resolve().parents[1] / "jobs" / "configs" / "denoise-udiffse-paper.yaml"
    config = load_yaml(DenoiseConfig, str(recipe))
    assert config.model.sampler == PAPER_SETTING and config.model.checkpoint_uri == "udiffse"
    loaded = load_model(config.model.checkpoint_uri, sampler=config.model.sampler)
    assert (loaded.model.config.num_e, loaded.model.config.num_em, loaded.model.config.nbatch) == (30, 5, 2)
    assert loaded.model_id != load_model("udiffse").model_id
