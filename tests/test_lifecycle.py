"""The run lifecycle every job shares (pipeline/core/lifecycle.py), without Ray: resume, dedupe, completeness, commit."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.lifecycle import RunLifecycle, column
from pipeline.core.storage import StorageConfig

SCHEMA = pa.schema(
    [pa.field("input_key", pa.string()), pa.field("model", pa.string()), pa.field("value", pa.float64())]
)


def _manifest(keys: list[str]) -> pa.Table:
    return pa.table({"key": keys})


def _rows(keys: list[str], models=("a",), value: float = 1.0) -> pa.Table:
    return pa.Table.from_pylist(
        [{"input_key": k, "model": m, "value": value} for k in keys for m in models], schema=SCHEMA
    )


def _run(tmp_path, **kw) -> RunLifecycle:
    return RunLifecycle(str(tmp_path), "r1", SCHEMA, StorageConfig(), "test", flush_rows=2, **kw)


def test_a_rerun_processes_only_what_is_not_durable_and_commits_each_input_once(tmp_path):
    manifest = _manifest(["c", "a", "b", "d"])
    first = _run(tmp_path)
    assert first.start(manifest).column("key").to_pylist() == ["c", "a", "b", "d"]
    with pytest.raises(RuntimeError, match="killed"):
        with first.rows() as rows:
            rows.write(_rows(["c"]))
            rows.write(_rows(["a"]))  # flush_rows=2: durable now
            rows.write(_rows(["b"]))  # flushed on the way out, even on an error
            raise RuntimeError("killed")
    second = _run(tmp_path)
    todo = second.start(manifest)
    assert todo.column("key").to_pylist() == ["d"] and second.resumed_inputs == 3
    with second.rows() as rows:
        rows.write(_rows(["d"]))
        rows.write(_rows(["a"], value=2.0))  # a retried batch came twice: the first durable copy wins
    done = second.collect(manifest)
    assert (
        done.column("input_key").to_pylist() == ["a", "b", "c", "d"] and done.column("value").to_pylist() == [1.0] * 4
    )
    marker = second.commit(done, {"summary": {"clips": 4}})
    assert marker["kind"] == "test" and marker["table_files"] == ["clips/part-00000.parquet"]
    assert pq.read_table(tmp_path / "runs" / "r1" / "clips").num_rows == 4
    assert json.loads((tmp_path / "runs" / "r1" / "_COMMITTED.json").read_text())["summary"] == {"clips": 4}
    assert not (tmp_path / "runs" / "r1" / "_chunks").exists()
    assert _run(tmp_path).committed()["run_id"] == "r1"


def test_a_missing_input_or_a_wrong_row_count_refuses_to_commit(tmp_path):
    run = _run(tmp_path, rows_per_input=2)
    manifest = _manifest(["a", "b"])
    run.start(manifest)
    with run.rows() as rows:
        rows.write(_rows(["a"], models=("x", "y")))
        rows.write(_rows(["b"], models=("x",)))  # one of its two rows is missing
    with pytest.raises(RuntimeError, match=r"missing \['b'\]"):
        run.collect(manifest)
    assert run.committed() is None


def test_rows_keyed_by_a_function_many_rows_per_input(tmp_path):
    """The evaluate job's shape: several rows per input, keys computed from two columns."""
    key = column("input_key")
    run = _run(tmp_path, input_keys=column("key"), row_keys=key, rows_per_input=3)
    manifest = _manifest(["p1", "p2"])
    run.start(manifest)
    with run.rows() as rows:
        rows.write(_rows(["p2", "p1"], models=("m1", "m2", "m3")))
    done = run.collect(manifest)
    assert done.num_rows == 6 and key(done) == ["p1"] * 3 + ["p2"] * 3
    assert done.column("model").to_pylist()[:3] == ["m1", "m2", "m3"]  # an input's rows keep their order


def test_throughput_after_a_resume_counts_only_what_this_attempt_processed():
    """Issue 22 #6: 300 rows of which 128 were durable before the attempt; the rate is over the 172 done now."""
    from pipeline.core import schema as S
    from pipeline.denoise.job import summarize
    from pipeline.denoise.summary import format_summary

    keys = [f"c{i:03d}.wav" for i in range(300)]
    table = pa.Table.from_pylist(
        [
            {S.RUN_ID: "r1", S.INPUT_KEY: k, S.STATUS: S.STATUS_OK, S.DURATION_SECONDS: 1.5, S.STREAMED: False}
            for k in keys
        ],
        schema=S.CLIP_SCHEMA,
    )
    summary = summarize(table, wall_seconds=28.3, processed_keys=set(keys[128:]))
    assert summary["clips"] == 300 and summary["resumed_rows"] == 128 and summary["processed_clips"] == 172
    assert summary["audio_seconds_per_second"] == pytest.approx(172 * 1.5 / 28.3)
    assert summary["audio_seconds_per_second_all_rows"] == pytest.approx(300 * 1.5 / 28.3)
    text = format_summary({**summary, "run_id": "r1", "run_uri": "out/runs/r1"})
    assert f"{172 * 1.5 / 28.3:.1f}x real time on the 172 clips processed now" in text
    assert f"128 resumed from an earlier attempt; {300 * 1.5 / 28.3:.1f}x counting them" in text
