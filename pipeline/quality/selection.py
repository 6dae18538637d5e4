"""How ``best.pt`` is chosen from validation scores: PESQ-WB alone (the default) or PESQ-WB with STOI.

Every neural model here lowers STOI on real pairs (docs/model.md), and a rule
on PESQ alone keeps picking such checkpoints. ``selection.rule: pesq_wb+stoi``
in a training recipe scores a checkpoint by ``pesq_wb + stoi_weight · stoi``
and, with ``stoi_not_below_input``, lets no checkpoint whose STOI is below the
noisy input's win at all (its score is −inf). The training loop
(:func:`pipeline.train.loop.end_of_epoch`) calls :func:`selection_score` on its
validation dict, which always holds ``stoi`` and ``input_stoi``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RULES = ("pesq_wb", "pesq_wb+stoi")


@dataclass(frozen=True)
class SelectionConfig:
    """``rule``: one of :data:`RULES`; ``stoi_weight``: PESQ-WB points per unit of STOI (0-1 scale)."""

    rule: str = "pesq_wb"
    stoi_weight: float = 2.0
    stoi_not_below_input: bool = True

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"selection.rule must be one of {list(RULES)}, got {self.rule!r}")
        if not self.stoi_weight >= 0:
            raise ValueError(f"selection.stoi_weight must be >= 0, got {self.stoi_weight}")


def selection_score(scores: dict[str, float], config: SelectionConfig) -> float:
    """Higher is better; NaN scores (a failed validation) never win."""
    pesq = scores["pesq_wb"]
    if config.rule == "pesq_wb":
        return pesq if math.isfinite(pesq) else -math.inf
    stoi = scores["stoi"]
    if not (math.isfinite(pesq) and math.isfinite(stoi)):
        return -math.inf
    if config.stoi_not_below_input and stoi < scores.get("input_stoi", -math.inf):
        return -math.inf
    return pesq + config.stoi_weight * stoi
