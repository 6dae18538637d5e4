"""The model families (DiffGMM, AIGD) behind one contract (:mod:`model.family`), in pure PyTorch."""

from model.aigd import AIGD, AIGDConfig
from model.checkpoint import CheckpointError, make_checkpoint, model_from_checkpoint
from model.diffgmm import DiffGMM, DiffGMMConfig, ReverseOutput
from model.family import ClipFamily, ModelFamily, WindowFamily
from model.image_losses import AIGDLossConfig, aigd_loss
from model.losses import LossConfig, diffgmm_loss
from model.registry import MODELS, ModelSpec, build_model, config_from_dict, spec
from model.udiffse import UDiffSE, UDiffSEConfig, UDiffSELossConfig, udiffse_loss

__all__ = [
    "AIGD",
    "AIGDConfig",
    "AIGDLossConfig",
    "MODELS",
    "ClipFamily",
    "ModelFamily",
    "WindowFamily",
    "ModelSpec",
    "aigd_loss",
    "spec",
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
    "UDiffSE",
    "UDiffSEConfig",
    "UDiffSELossConfig",
    "udiffse_loss",
]
