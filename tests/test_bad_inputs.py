"""The bad-input corpus (pipeline/audio/bad_inputs.py) through the real denoise job: one clear row per file, nothing else affected."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.audio.bad_inputs import EXTENSIONS, cases, judge, write_corpus
from pipeline.audio.codec import decode
from pipeline.core import schema as S
from pipeline.denoise.job import DenoiseConfig, RunPaths, run_denoise
from pipeline.inference.longform import StreamConfig
from pipeline.inference.model_stage import ModelStageConfig

STREAM_SECONDS = 2.0


def test_the_corpus_has_at_least_twenty_kinds_and_each_decodes_as_expected():
    from pipeline.audio.codec import AudioError

    corpus = cases(STREAM_SECONDS)
    assert len(corpus) >= 20 and len({c.key for c, _ in corpus}) == len(corpus)
    for case, data in corpus:
        try:
            decode(data)
            got = ("ok", None)
        except AudioError as exc:
            got = ("error", exc.kind)
            assert "object at 0x" not in str(exc), str(exc)
        assert got == (case.status, case.kind if case.status == "error" else None), case.key


@pytest.mark.slow
def test_every_bad_input_gets_one_clear_row_and_the_rest_is_untouched(ray_local, tmp_path, tiny_checkpoint):
    root = str(tmp_path / "in")
    corpus = write_corpus(root, STREAM_SECONDS)
    config = DenoiseConfig(
        input_uri=root,
        output_uri=str(tmp_path / "out"),
        run_id="bad",
        extensions=EXTENSIONS,
        stream=StreamConfig(stream_seconds=STREAM_SECONDS, probe_bytes=1024, block_seconds=0.5),
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
    )
    summary = run_denoise(config)
    rows = {r[S.INPUT_KEY]: r for r in pq.read_table(RunPaths.of(str(tmp_path / "out"), "bad").clips_uri).to_pylist()}
    assert sorted(rows) == sorted(c.key for c in corpus), "exactly one row per input"
    failures = {c.key: why for c in corpus for ok, why in [judge(c, rows.get(c.key))] if not ok}
    assert not failures, failures
    audio = RunPaths.of(str(tmp_path / "out"), "bad").audio_uri
    for case in corpus:
        row = rows[case.key]
        if case.status == "ok":
            out, rate = sf.read(os.path.join(audio, row[S.OUTPUT_KEY]), always_2d=True)
            src, src_rate = sf.read(os.path.join(root, case.key), always_2d=True)
            assert rate == src_rate and out.shape[0] == src.shape[0], case.key
            assert np.isfinite(out).all()
            if "silence" in case.key:
                assert not out.any(), "silence in gives silence out"
        else:
            assert row[S.OUTPUT_KEY] is None and not os.path.exists(os.path.join(audio, case.key)), case.key
    assert summary["errors"] == sum(c.status == "error" for c in corpus)
