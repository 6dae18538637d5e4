"""best.pt selection with STOI: the rule picks a different checkpoint than PESQ alone when intelligibility drops."""

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pipeline.quality.selection import SelectionConfig, selection_score

# Two validations: A has the better PESQ but lowers STOI below the input's; B keeps intelligibility.
A = {"pesq_wb": 1.90, "stoi": 0.840, "input_stoi": 0.851}
B = {"pesq_wb": 1.85, "stoi": 0.870, "input_stoi": 0.851}


def test_pesq_alone_picks_a_and_the_stoi_rule_picks_b():
    plain, with_stoi = SelectionConfig(), SelectionConfig(rule="pesq_wb+stoi")
    assert selection_score(A, plain) > selection_score(B, plain)
    assert selection_score(B, with_stoi) > selection_score(A, with_stoi)
    assert selection_score(A, with_stoi) == -math.inf  # below the input's STOI: never best
    # Without the floor, the weight decides: 1.90 + 2·0.840 = 3.58 < 1.85 + 2·0.870 = 3.59.
    free = SelectionConfig(rule="pesq_wb+stoi", stoi_not_below_input=False)
    assert selection_score(A, free) == pytest.approx(3.58) and selection_score(B, free) == pytest.approx(3.59)


def test_nan_never_wins_and_bad_settings_are_refused():
    assert selection_score({"pesq_wb": math.nan}, SelectionConfig()) == -math.inf
    assert selection_score({**B, "stoi": math.nan}, SelectionConfig(rule="pesq_wb+stoi")) == -math.inf
    with pytest.raises(ValueError, match="rule must be one of"):
        SelectionConfig(rule="stoi")
    with pytest.raises(ValueError, match="stoi_weight must be >= 0"):
        SelectionConfig(stoi_weight=-1.0)


def test_a_bad_rule_in_a_recipe_is_refused_before_training():
    from pipeline.core.config import ConfigError, load_yaml
    from pipeline.train.configs import TrainConfig

    data = {"data.clean_uri": "c", "data.noise_uri": "n"}
    assert load_yaml(TrainConfig, None, {**data, "selection.rule": "pesq_wb+stoi"}).selection.rule == "pesq_wb+stoi"
    assert load_yaml(TrainConfig, None, data).selection == SelectionConfig()
    with pytest.raises(ConfigError, match="selection.rule must be one of"):
        load_yaml(TrainConfig, None, {**data, "selection.rule": "stoi"})


# --- wired into training: end_of_epoch chooses best.pt by the recipe's selection rule ---------------------------

CUTOFF_HZ = 2000.0


@dataclass(frozen=True)
class LowPassConfig:
    sample_rate: int = 16000


class LowPass(torch.nn.Module):
    """A "windows" test family (model.family) with one weight: ``amount`` 0 passes the input, 1 removes all above 2 kHz.

    On noisy speech the low-passed output scores a higher PESQ-WB than the input but a lower STOI, the
    trade-off a PESQ-only rule gets wrong.
    """

    name = "lowpass_test"
    input_unit = "windows"

    def __init__(self) -> None:
        super().__init__()
        self.config = LowPassConfig()
        self.amount = torch.nn.Parameter(torch.zeros(()))

    def trainable_parameters(self):
        return iter([self.amount])

    def enhance(self, windows, generator=None):
        spectrum = torch.fft.rfft(windows)
        above = torch.fft.rfftfreq(windows.shape[-1], 1 / self.config.sample_rate) > CUTOFF_HZ
        gain = 1 - self.amount.detach() * above.float()
        return torch.fft.irfft(spectrum * gain, n=windows.shape[-1]), {}


def _valid_pairs(count: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    from pipeline.audio.demo_data import noise_like, speech_like

    rng, pairs = np.random.default_rng(0), []
    for _ in range(count):
        clean = speech_like(3.0, 16000, rng).astype(np.float32)
        noise = noise_like(3.0, 16000, rng).astype(np.float32)
        noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-5 / 20)  # 5 dB SNR
        pairs.append((clean + noise, clean))
    return pairs


def _epochs(tmp_path, rule: str, amounts=(0.0, 1.0), progress=None):
    """end_of_epoch once per amount (steps 1, 2, …): the real validation, checkpoint files and selection."""
    from pipeline.train.configs import DataConfig, TrainConfig
    from pipeline.train.loop import Progress, end_of_epoch

    config = TrainConfig(
        name="sel",
        storage_path=str(tmp_path),
        data=DataConfig(clean_uri="unused", noise_uri="unused"),
        selection=SelectionConfig(rule=rule),
    )
    core, valid = LowPass(), _valid_pairs()
    optimizer = torch.optim.Adam(core.trainable_parameters())
    progress = progress or Progress()
    vals = []
    for amount in amounts:
        with torch.no_grad():
            core.amount.fill_(amount)
        progress.step += 1
        vals.append(end_of_epoch(core, optimizer, progress, valid, config, "cpu", {}))
    best = torch.load(tmp_path / "sel" / "best.pt", weights_only=True)["metadata"]
    last = torch.load(tmp_path / "sel" / "last.pt", weights_only=True)
    return vals, best, last, progress


def test_the_recipes_stoi_rule_keeps_the_checkpoint_that_pesq_alone_replaces(tmp_path):
    vals, best, _, _ = _epochs(tmp_path / "pesq", "pesq_wb")
    assert "stoi" in vals[0]  # every validation scores STOI, so each run's STOI-per-CPU-hour curve exists
    assert vals[1]["pesq_wb"] > vals[0]["pesq_wb"] and best["step"] == 2  # PESQ alone: the low-passed step

    vals, best, last, progress = _epochs(tmp_path / "stoi", "pesq_wb+stoi")
    identity, lowpass = vals
    # The trade-off, measured: low-passing raises PESQ-WB but takes STOI below the input's.
    assert lowpass["pesq_wb"] > identity["pesq_wb"] and lowpass["stoi"] < lowpass["input_stoi"] - 0.02
    assert identity["stoi"] >= identity["input_stoi"]
    assert best["step"] == 1 and best["val"] == identity  # STOI rule: the step that kept intelligibility
    assert best["selection"]["rule"] == "pesq_wb+stoi"
    assert best["selection"]["score"] == pytest.approx(identity["pesq_wb"] + 2.0 * identity["stoi"])
    assert last["metadata"]["step"] == 2 and last["metadata"]["selection"]["score"] == -math.inf
    state = last["metadata"]["trainer_state"]
    assert state["best_pesq_wb"] == identity["pesq_wb"] and state["best_score"] == best["selection"]["score"]


def test_a_resumed_run_keeps_its_best_under_the_same_rule_and_chooses_anew_under_another(tmp_path):
    from pipeline.train.loop import restore_progress

    _, _, last, _ = _epochs(tmp_path, "pesq_wb+stoi")
    optimizer = torch.optim.Adam(LowPass().trainable_parameters())
    # Same rule: the low-passed step 3 does not beat step 1's best.pt.
    _, best, last, _ = _epochs(tmp_path, "pesq_wb+stoi", (1.0,), restore_progress(optimizer, last))
    assert best["step"] == 1
    # Another rule: its scores do not compare with the stored one (PESQ + 2·STOI ≈ 3 would never be beaten
    # by a PESQ of ≈ 1.2), so the next validation becomes best.pt.
    _, best, last, _ = _epochs(tmp_path, "pesq_wb", (1.0,), restore_progress(optimizer, last))
    assert best["step"] == 4 and best["selection"]["rule"] == "pesq_wb"
    # A last.pt from before selection rules (no score or rule stored) resumes as best by PESQ-WB alone.
    legacy = {**last, "metadata": {**last["metadata"], "trainer_state": {"step": 4, "best_pesq_wb": 9.0}}}
    old = restore_progress(optimizer, legacy)
    assert old.best_score == 9.0 and old.selection == {
        "rule": "pesq_wb",
        "stoi_weight": 2.0,
        "stoi_not_below_input": True,
    }
    _, best, _, _ = _epochs(tmp_path, "pesq_wb", (1.0,), old)
    assert best["step"] == 4  # PESQ ≈ 1.2 does not beat the stored 9.0
