"""DiffGMM and its model family, in pure PyTorch (imports only torch and numpy)."""

from model.checkpoint import CheckpointError, make_checkpoint, model_from_checkpoint
from model.diffgmm import DiffGMM, DiffGMMConfig, ReverseOutput
from model.losses import LossConfig, diffgmm_loss
from model.registry import MODELS, build_model, config_from_dict

__all__ = [
    "MODELS",
    "CheckpointError",
    "DiffGMM",
    "DiffGMMConfig",
    "LossConfig",
    "ReverseOutput",
    "build_model",
    "config_from_dict",
    "diffgmm_loss",
    "make_checkpoint",
    "model_from_checkpoint",
]
