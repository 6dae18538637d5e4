"""UDiffSE (arXiv 2309.10450): a diffusion prior over clean speech and a per-clip EM with an NMF noise model.

Modules: :mod:`~model.udiffse.config` (frozen configs), :mod:`~model.udiffse.transform`
(STFT image), :mod:`~model.udiffse.sde` (OU-VE SDE), :mod:`~model.udiffse.network`
(score U-Net), :mod:`~model.udiffse.sampler` (E-step and EM), :mod:`~model.udiffse.nmf`
(M-step), :mod:`~model.udiffse.loss` (score matching), :mod:`~model.udiffse.model` (the family).
"""

from model.udiffse.config import PAPER_SETTING, UDiffSEConfig, UDiffSELossConfig
from model.udiffse.loss import udiffse_loss
from model.udiffse.model import OCTAVE_EDGES_HZ, UDiffSE, enhance_clip

__all__ = [
    "OCTAVE_EDGES_HZ",
    "PAPER_SETTING",
    "UDiffSE",
    "UDiffSEConfig",
    "UDiffSELossConfig",
    "enhance_clip",
    "udiffse_loss",
]
