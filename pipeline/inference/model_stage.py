"""Model stage: the actor that runs a family (or a peer) over the decoded rows. Row contract: :mod:`pipeline.inference.rows`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.inference.enhance import EnhanceConfig, mean_stats
from pipeline.inference.longform import LongFileWriter
from pipeline.inference.rows import (
    AUDIO,
    AUDIO_CHANNELS,
    FORMAT,
    SUBTYPE,
    error_kind,
    error_text,
    finite,
    output_target,
    pack_audio,
    unpack_audio,
    with_columns,
)
from pipeline.quality.metrics import (
    power_db,
    removed_noise_db,
    rms_dbfs,
)


@dataclass(frozen=True)
class ModelStageConfig:
    """Model-actor settings.

    ``torch_threads``: intra-op threads of the actor's torch (0 keeps Ray's
    default, one per reserved CPU). 1 with several actors measured best on
    CPU (docs/benchmarks.md); GPU actors need no more.
    """

    checkpoint_uri: str | None = None
    torch_threads: int = 1
    enhance: EnhanceConfig = field(default_factory=EnhanceConfig)
    # Inference-time values of the family's sampler settings (``ModelSpec.sampler_fields``: UDiffSE's
    # num_e/num_em/nbatch…, FUSE's num_steps), e.g. ``--set model.sampler.num_e=30``; {}: the checkpoint's.
    sampler: dict[str, Any] = field(default_factory=dict)


class ModelStage:
    """Model actor: loads the checkpoint once, packs windows of all clips in a batch into fixed shapes.

    Reads ``audio`` (float32 bytes at the model rate) of the rows whose status
    is ok and writes the enhanced audio to ``output_column`` (``audio`` by
    default: the noisy audio is not needed downstream); every other column is
    passed through. Construction only reads, so Ray may restart the actor.
    """

    def __init__(
        self,
        config: ModelStageConfig,
        storage_config: storage.StorageConfig,
        output_column: str = AUDIO,
        long_files: LongFileWriter | None = None,
        prefix: str = "",
    ) -> None:
        import torch

        from pipeline.core.checkpoints import load_model
        from pipeline.inference.peer import make_enhancer  # a peer model (deepfilternet3) or a family

        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        loaded = load_model(config.checkpoint_uri, storage_config, config.sampler)
        self.model_id = loaded.model_id
        self.enhancer = make_enhancer(loaded.model, config.enhance)
        self.output_column = output_column
        self.long_files = long_files
        # Several model stages in one dataset (an evaluation of several models) keep
        # their columns apart by a prefix: "<label>:seconds_model", …
        self.prefix = prefix

    def __call__(self, batch: pa.Table) -> pa.Table:
        optional = [c for c in (S.ERROR_KIND, S.STREAMED, S.KEY, FORMAT, SUBTYPE) if c in batch.column_names]
        rows = batch.select([S.STATUS, S.ERROR, AUDIO, AUDIO_CHANNELS, *optional]).to_pylist()
        streamed = [i for i, r in enumerate(rows) if r[S.STATUS] == S.STATUS_OK and r.get(S.STREAMED)]
        todo = [
            (i, c)
            for i, r in enumerate(rows)
            if r[S.STATUS] == S.STATUS_OK and not r.get(S.STREAMED)
            for c in unpack_audio(r[AUDIO], r[AUDIO_CHANNELS])
        ]
        start = time.perf_counter()
        results = self.enhancer.enhance_many([signal for _, signal in todo]) if todo else []
        elapsed = time.perf_counter() - start
        total_samples = sum(len(s) for _, s in todo) or 1
        per_row: dict[int, list] = {}
        for (i, signal), (enhanced, stats) in zip(todo, results):
            per_row.setdefault(i, []).append((signal, enhanced, stats))
        new = {name: [None] * len(rows) for name in MODEL_COLUMNS}
        new[self.output_column] = [None] * len(rows)
        new[S.MODEL_ID] = [self.model_id] * len(rows)
        for i, parts in per_row.items():
            noisy = np.stack([p[0] for p in parts])
            enhanced = np.stack([p[1] for p in parts])
            new[self.output_column][i] = pack_audio(enhanced)[0]
            # The model's time is shared among clips by their length.
            new[S.SECONDS_MODEL][i] = elapsed * noisy.size / total_samples
            new[S.INPUT_RMS_DBFS][i] = finite(rms_dbfs(noisy))
            new[S.OUTPUT_RMS_DBFS][i] = finite(rms_dbfs(enhanced))
            new[S.REMOVED_NOISE_DB][i] = finite(removed_noise_db(noisy.ravel(), enhanced.ravel()))
            _set_stats(new, i, mean_stats([p[2] for p in parts]))
        new[S.STATUS] = [r[S.STATUS] for r in rows]
        new[S.ERROR] = [r[S.ERROR] for r in rows]
        new[S.ERROR_KIND] = [r.get(S.ERROR_KIND) for r in rows]
        for i in streamed:
            self._stream(rows[i], i, new)
        types = {self.prefix + k: v for k, v in MODEL_FIELDS.items()}
        types |= {
            self.output_column: pa.large_binary(),
            S.STATUS: pa.string(),
            S.ERROR: pa.string(),
            S.ERROR_KIND: pa.string(),
        }
        new = {
            (k if k in (self.output_column, S.STATUS, S.ERROR, S.ERROR_KIND) else self.prefix + k): v
            for k, v in new.items()
        }
        return with_columns(batch, new, types)

    def _stream(self, row: dict, i: int, new: dict[str, list]) -> None:
        """Enhance a long file straight from the input to its output key (see :mod:`pipeline.inference.longform`)."""
        try:
            if self.long_files is None:
                raise RuntimeError("streamed row but the model stage has no long-file writer")
            key, fmt, subtype = output_target(row, self.long_files.output_format)
            result = self.long_files.run(self.enhancer, row[S.KEY], key, fmt, subtype)
        except Exception as exc:  # the file's error, not the actor's
            new[S.STATUS][i], new[S.ERROR][i], new[S.ERROR_KIND][i] = S.STATUS_ERROR, error_text(exc), error_kind(exc)
            return
        new[S.SECONDS_MODEL][i] = result.seconds
        new[S.INPUT_RMS_DBFS][i] = finite(power_db(result.input_power))
        new[S.OUTPUT_RMS_DBFS][i] = finite(power_db(result.output_power))
        ratio = result.removed_power / result.input_power if result.input_power > 0 else math.nan
        new[S.REMOVED_NOISE_DB][i] = finite(power_db(ratio))
        _set_stats(new, i, result.stats)


def _set_stats(new: dict[str, list], i: int, stats: dict) -> None:
    """The model's clip stats into row ``i``, under the family's own names in the map.

    A stat whose name is a legacy column (``gmm_nll``, ``gmm_occupancy``: DiffGMM's, from before the
    map) also fills that column, so existing tables and queries keep their shape; the match is by
    stat name, never by family.
    """
    new[S.MODEL_STATS][i] = S.flat_stats(stats)
    new[S.GMM_NLL][i] = stats.get(S.GMM_NLL)
    new[S.GMM_OCCUPANCY][i] = stats.get(S.GMM_OCCUPANCY)


MODEL_FIELDS = {
    S.MODEL_ID: pa.string(),
    S.SECONDS_MODEL: pa.float64(),
    S.INPUT_RMS_DBFS: pa.float64(),
    S.OUTPUT_RMS_DBFS: pa.float64(),
    S.REMOVED_NOISE_DB: pa.float64(),
    S.GMM_NLL: pa.float64(),
    S.GMM_OCCUPANCY: pa.list_(pa.float32()),
    S.MODEL_STATS: S.MODEL_STATS_TYPE,
}
MODEL_COLUMNS = tuple(MODEL_FIELDS)
