"""FUSE: a VAE latent, a conditional latent denoiser guided by frozen features, DDIM sampling (seed 004)."""

from model.fuse.config import FUSEConfig, FUSELossConfig
from model.fuse.loss import fuse_loss
from model.fuse.model import FUSE, ExtractorMissing

__all__ = ["FUSE", "FUSEConfig", "FUSELossConfig", "ExtractorMissing", "fuse_loss"]
