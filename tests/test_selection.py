"""best.pt selection with STOI: the rule picks a different checkpoint than PESQ alone when intelligibility drops."""

import math

import pytest

from pipeline.quality.selection import SelectionConfig, needs_stoi, selection_score

# Two validations: A has the better PESQ but lowers STOI below the input's; B keeps intelligibility.
A = {"pesq_wb": 1.90, "stoi": 0.840, "input_stoi": 0.851}
B = {"pesq_wb": 1.85, "stoi": 0.870, "input_stoi": 0.851}


def test_pesq_alone_picks_a_and_the_stoi_rule_picks_b():
    plain, with_stoi = SelectionConfig(), SelectionConfig(rule="pesq_wb+stoi")
    assert not needs_stoi(plain) and needs_stoi(with_stoi)
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
