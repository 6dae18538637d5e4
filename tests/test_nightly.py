"""Nightly runs on real Ray and real Parquet: the ledger, incremental runs, stale results, deletions, resume after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.audio.demo_data import generate_pair
from pipeline.core import schema as S
from pipeline.core.ledger import LEDGER_KEY, Ledger
from pipeline.denoise.job import DenoiseConfig, RunPaths, run_denoise
from pipeline.denoise.nightly import NightlyConfig, nightly_run_id, run_nightly
from pipeline.inference.model_stage import ModelStageConfig

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _clip(path: str, seconds: float, seed: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, generate_pair(seconds, 5.0, 16000, np.random.default_rng(seed))[0], 16000)


def _config(root: str, checkpoint: str, run_id: str | None = None) -> DenoiseConfig:
    return DenoiseConfig(
        input_uri=f"{root}/in",
        output_uri=f"{root}/out",
        run_id=run_id,
        model=ModelStageConfig(checkpoint_uri=checkpoint),
    )


def _keys(root: str, run_id: str) -> list[str]:
    return sorted(pq.read_table(RunPaths.of(f"{root}/out", run_id).clips_uri).column(S.INPUT_KEY).to_pylist())


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory) -> str:
    """A second model: same family and size, other weights (so another model id)."""
    import torch
    from conftest import TINY_CONFIG

    from model import DiffGMM, DiffGMMConfig, make_checkpoint
    from pipeline.core.checkpoints import save_checkpoint

    torch.manual_seed(7)
    path = str(tmp_path_factory.mktemp("other") / "other.pt")
    save_checkpoint(make_checkpoint(DiffGMM(DiffGMMConfig(**TINY_CONFIG)), {}), path)
    return path


def test_nights_process_only_what_is_new_changed_or_failed(ray_local, tmp_path, tiny_checkpoint, other_checkpoint):
    from pipeline.core.results import Results
    from pipeline.reporting import queries
    from pipeline.reporting.views import connect

    root = str(tmp_path)
    for i in range(4):
        _clip(f"{root}/in/day1/c{i}.wav", 0.6 + 0.1 * i, i)
    with open(f"{root}/in/day1/broken.wav", "wb") as f:
        f.write(b"RIFF....WAVEnot audio")
    night = NightlyConfig(max_attempts=2)

    first = run_nightly(_config(root, tiny_checkpoint, "n1"), night)
    assert first["counts"]["new"] == 5 and _keys(root, "n1") == ["day1/broken.wav"] + [
        f"day1/c{i}.wav" for i in range(4)
    ]

    # Night 2: one new file, one changed file; the broken file is not retried: its bytes are bad, not the storage.
    _clip(f"{root}/in/day2/c4.wav", 0.5, 4)
    time.sleep(0.01)
    _clip(f"{root}/in/day1/c0.wav", 0.9, 99)
    second = run_nightly(_config(root, tiny_checkpoint, "n2"), night)
    assert second["counts"] == {
        "new": 1,
        "changed": 1,
        "retry": 0,
        "stale": 0,
        "unchanged": 3,
        "gave_up": 0,
        "bad_content": 1,
        "deleted": 0,
    }
    assert second["bad_content"] == ["day1/broken.wav"] and _keys(root, "n2") == ["day1/c0.wav", "day2/c4.wav"]
    ledger = Ledger.read(f"{root}/out", DenoiseConfig(input_uri="a", output_uri="b").storage)
    assert len(ledger.rows) == 6 and ledger.applied_runs == ["n1", "n2"]
    assert ledger.rows["day1/c1.wav"][S.RUN_ID] == "n1" and ledger.rows["day1/c0.wav"][S.RUN_ID] == "n2"
    assert ledger.rows["day1/broken.wav"][S.ATTEMPTS] == 1 and ledger.rows["day1/broken.wav"][S.STATUS] == "error"
    con = connect(Results(f"{root}/out"))
    latest = dict(con.execute(f"SELECT {S.INPUT_KEY}, {S.RUN_ID} FROM latest").fetchall())
    assert len(latest) == 6 and latest["day1/c0.wav"] == "n2" and latest["day1/c2.wav"] == "n1"

    # Night 3: nothing new (the broken file waits until it is replaced), so no run is started.
    third = run_nightly(_config(root, tiny_checkpoint, "n3"), night)
    assert third.get("nothing_new") and third["bad_content"] == ["day1/broken.wav"] and third["gave_up"] == []
    assert not os.path.exists(RunPaths.of(f"{root}/out", "n3").run_uri)

    # A rerun of a committed night that finds new input says so and keeps its outputs.
    _clip(f"{root}/in/day3/c5.wav", 0.5, 5)
    again = run_nightly(_config(root, tiny_checkpoint, "n2"), night)
    assert again["already_committed"] and again["pending"] == 1 and _keys(root, "n2") == ["day1/c0.wav", "day2/c4.wav"]

    # A new model: without --reprocess-stale only the new file runs; with it, everything that came from the old model.
    plain = run_nightly(_config(root, other_checkpoint, "n4"), night)
    assert _keys(root, "n4") == ["day3/c5.wav"]
    stale = run_nightly(_config(root, other_checkpoint, "n5"), NightlyConfig(max_attempts=2, reprocess_stale=True))
    assert stale["counts"]["stale"] == 5 and len(_keys(root, "n5")) == 5
    assert plain["counts"]["stale"] == 0

    # Deleted inputs are reported; their outputs stay until --prune.
    os.remove(f"{root}/in/day2/c4.wav")
    output = Path(RunPaths.of(f"{root}/out", "n5").audio_uri, "day2/c4.wav")
    assert output.exists()
    kept = run_nightly(_config(root, other_checkpoint, "n6"), night)
    assert kept["deleted"] == ["day2/c4.wav"] and output.exists()
    pruned = run_nightly(_config(root, other_checkpoint, "n7"), NightlyConfig(max_attempts=2, prune=True))
    assert pruned["pruned_outputs"] == 1 and not output.exists()
    ledger = Ledger.read(f"{root}/out", DenoiseConfig(input_uri="a", output_uri="b").storage)
    assert "day2/c4.wav" not in ledger.rows
    # Issue 22 #3: `latest` (and the named queries over it) follow the ledger: the pruned input is gone.
    con = connect(Results(f"{root}/out"))
    latest = {k for (k,) in con.execute(f"SELECT {S.INPUT_KEY} FROM latest").fetchall()}
    assert latest == set(ledger.rows) and "day2/c4.wav" not in latest
    folders = {folder for folder, *_ in con.execute(queries.noise_profile(1)).fetchall()}
    assert folders and "day2" not in folders


def test_ledger_catches_up_with_a_run_committed_before_a_crash(ray_local, tmp_path, tiny_checkpoint):
    root = str(tmp_path)
    for i in range(2):
        _clip(f"{root}/in/c{i}.wav", 0.5, i)
    run_nightly(_config(root, tiny_checkpoint, "n1"), NightlyConfig())
    # The process died after the commit but before the ledger write: the next night applies n1 first.
    os.remove(f"{root}/out/{LEDGER_KEY}")
    result = run_nightly(_config(root, tiny_checkpoint, "n2"), NightlyConfig())
    assert result.get("nothing_new") and result["ledger_rows"] == 2
    assert not os.path.exists(RunPaths.of(f"{root}/out", "n2").run_uri)


def test_empty_input_is_nothing_new_and_run_ids_default_to_the_date(tmp_path, tiny_checkpoint):
    os.makedirs(tmp_path / "in")
    result = run_nightly(_config(str(tmp_path), tiny_checkpoint), NightlyConfig())
    assert result.get("nothing_new") and result["run_id"] == nightly_run_id()
    assert not (tmp_path / "out" / "runs").exists()
    with pytest.raises(ValueError, match="max_attempts"):
        NightlyConfig(max_attempts=0)


DRIVER = """
import logging, sys
sys.path.insert(0, {root!r})
logging.basicConfig(level=logging.INFO)
import ray
ray.init(num_cpus=2, include_dashboard=False)
from pipeline.denoise.job import DenoiseConfig, run_denoise
from pipeline.inference.actors import ActorConfig
from pipeline.inference.model_stage import ModelStageConfig
run_denoise(DenoiseConfig(input_uri={inp!r}, output_uri={out!r}, run_id="r1", flush_rows=2, flush_seconds=0.5,
                          rows_per_block=1, cpu_batch_size=1, actors=ActorConfig(max_actors=1, clips_per_batch=1), model=ModelStageConfig(checkpoint_uri={ckpt!r})))
"""


def test_killed_run_resumes_with_every_input_once_and_bounded_rework(ray_local, tmp_path, tiny_checkpoint):
    root = str(tmp_path)
    n = 60
    for i in range(n):
        _clip(f"{root}/in/c{i:02d}.wav", 1.0, i)
    script = DRIVER.format(root=str(ROOT), inp=f"{root}/in", out=f"{root}/out", ckpt=tiny_checkpoint)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "driver.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True, stdout=log, stderr=log)
    chunks = Path(RunPaths.of(f"{root}/out", "r1").chunks_uri)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if chunks.exists() and len(list(chunks.glob("chunk-*.parquet"))) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, (
        "the driver ended before it could be killed:\n" + (tmp_path / "driver.log").read_text()[-3000:]
    )
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started, as a crash would
    proc.wait()
    assert not Path(RunPaths.of(f"{root}/out", "r1").commit_uri).exists()

    summary = run_denoise(
        DenoiseConfig(
            input_uri=f"{root}/in",
            output_uri=f"{root}/out",
            run_id="r1",
            model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
        )
    )
    keys = _keys(root, "r1")
    assert keys == sorted(f"c{i:02d}.wav" for i in range(n)), "exactly one row per input"
    assert summary["resumed_rows"] >= 2 and summary["resumed_rows"] < n
    assert not chunks.exists(), "chunks are removed once the run is committed"


def test_dry_run_shows_the_plan_and_writes_nothing(tmp_path, tiny_checkpoint, capsys):
    """`nightly --dry-run`: the plan (new, changed, …) with the keys, and no run, ledger or output folder."""
    from jobs.cli import main

    root = str(tmp_path)
    for i in range(3):
        _clip(f"{root}/in/c{i}.wav", 0.5, i)
    capsys.readouterr()
    assert (
        main(
            [
                "nightly",
                "--input",
                f"{root}/in",
                "--output",
                f"{root}/out",
                "--model",
                tiny_checkpoint,
                "--run-id",
                "n1",
                "--dry-run",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "dry run n1: 3 would be processed (3 new, 0 changed, 0 to retry, 0 stale), 0 unchanged, 0 gone from the input"
        in out
    )
    assert all(f"  new c{i}.wav" in out for i in range(3)) and "outputs:" not in out
    assert not os.path.exists(f"{root}/out")


def test_nothing_new_prints_no_output_path(tmp_path, tiny_checkpoint, capsys):
    from jobs.cli import main

    os.makedirs(tmp_path / "in")
    capsys.readouterr()
    assert (
        main(
            ["nightly", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--model", tiny_checkpoint]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "nothing new: no run was started" in out and "outputs:" not in out and str(tmp_path / "out" / "runs") not in out
    )


def _failed_row(key: str, error: str, kind: str) -> dict:
    import datetime as dt

    mtime = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    return {
        S.INPUT_KEY: key,
        S.INPUT_SIZE: 10,
        S.INPUT_ETAG: f"e-{key}",
        S.INPUT_MTIME: mtime,
        S.STATUS: S.STATUS_ERROR,
        S.ERROR: error,
        S.ERROR_KIND: kind,
        S.OUTPUT_KEY: None,
    }


def _manifest(rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(
        [
            {S.KEY: r[S.INPUT_KEY], S.SIZE: r[S.INPUT_SIZE], S.ETAG: r[S.INPUT_ETAG], S.MTIME: r[S.INPUT_MTIME]}
            for r in rows
        ],
        schema=S.MANIFEST_SCHEMA,
    )


def test_retry_is_decided_by_the_ledgers_error_kind_not_its_text(tmp_path):
    """A content error (kind ``corrupt``) is not retried, a storage error is, whatever their messages say.

    The messages are swapped on purpose: a decision that parsed the text would get both wrong.
    """
    import pyarrow as pa

    from pipeline.core.storage import StorageConfig
    from pipeline.denoise.nightly import output_config_sha256, plan

    rows = [
        _failed_row("bad.wav", "storage: connection reset", "corrupt"),
        _failed_row("flaky.wav", "corrupt: no data chunk", "storage"),
    ]
    ledger = Ledger(rows={}, applied_runs=[])
    ledger.apply("n1", {"model_id": "m"}, pa.Table.from_pylist(rows))
    out, config = str(tmp_path / "out"), StorageConfig()
    ledger.write(out, config)
    assert pq.read_schema(f"{out}/{LEDGER_KEY}").field(S.ERROR_KIND).type == pa.string()
    again = Ledger.read(out, config)
    assert {k: r[S.ERROR_KIND] for k, r in again.rows.items()} == {"bad.wav": "corrupt", "flaky.wav": "storage"}
    reasons = plan(
        _manifest(rows), again, "m", output_config_sha256(DenoiseConfig(input_uri="x", output_uri="y")), NightlyConfig()
    )
    assert reasons["bad_content"] == ["bad.wav"] and reasons["retry"] == ["flaky.wav"]


def test_a_ledger_written_before_error_kind_reads_with_the_kind_of_its_text(tmp_path):
    import pyarrow as pa

    from pipeline.core.storage import StorageConfig

    rows = [
        _failed_row("bad.wav", "corrupt: no data chunk", "corrupt"),
        _failed_row("flaky.wav", "storage: reset", "storage"),
    ]
    ledger = Ledger(rows={}, applied_runs=["n1"])
    ledger.apply("n1", {"model_id": "m"}, pa.Table.from_pylist(rows))
    old = pa.Table.from_pylist([ledger.rows[k] for k in sorted(ledger.rows)], schema=S.LEDGER_SCHEMA)
    old = old.drop_columns([S.ERROR_KIND])
    old = old.rename_columns(
        [S.LEGACY_OUTPUT_CONFIG_SHA256 if n == S.OUTPUT_CONFIG_SHA256 else n for n in old.column_names]
    )
    (tmp_path / "ledger").mkdir()
    pq.write_table(old, tmp_path / LEDGER_KEY)
    read = Ledger.read(str(tmp_path), StorageConfig())
    assert {k: r[S.ERROR_KIND] for k, r in read.rows.items()} == {"bad.wav": "corrupt", "flaky.wav": "storage"}
    assert list(read.rows["bad.wav"]) == S.LEDGER_SCHEMA.names


def test_cluster_doc_says_content_failures_are_never_retried():
    """Issue 22: docs/cluster.md must not promise a retry "up to --max-attempts" for a file whose bytes are bad."""
    doc = " ".join(open("docs/cluster.md", encoding="utf-8").read().split())
    what_runs = doc[doc.index("**What runs**") : doc.index("**Ledger**")]
    assert "for a transient reason" in what_runs and "up to `--max-attempts` times" in what_runs
    assert "whose *content* failed" in what_runs and "is never retried" in what_runs
    assert "runs again once the file changes" in what_runs
