"""The batch denoise job end to end on real Ray, real Parquet, local paths and a real S3 server."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from conftest import make_corpus

from pipeline.core import schema as S
from pipeline.denoise.job import DenoiseConfig, RunPaths, run_denoise
from pipeline.inference.model_stage import ModelStageConfig

pytestmark = pytest.mark.slow


def _config(tmp, input_uri, output_uri, reference_uri, checkpoint, **kw):
    return DenoiseConfig(
        input_uri=input_uri,
        output_uri=output_uri,
        reference_uri=reference_uri,
        model=ModelStageConfig(checkpoint_uri=checkpoint),
        **kw,
    )


def test_local_job_accounts_for_every_input_and_is_idempotent(ray_local, tmp_path, tiny_checkpoint):
    root = str(tmp_path / "corpus")
    expect = make_corpus(root)
    out = str(tmp_path / "out")
    config = _config(tmp_path, f"{root}/noisy", out, f"{root}/clean", tiny_checkpoint, run_id="run-1")

    dry = run_denoise(config, dry_run=True)
    assert dry["dry_run"] and sorted(dry["keys"]) == sorted(expect)
    assert not os.path.exists(RunPaths.of(out, "run-1").run_uri), "a dry run writes nothing"

    summary = run_denoise(config)
    paths = RunPaths.of(out, "run-1")
    table = pq.read_table(paths.clips_uri)
    assert table.schema.equals(S.CLIP_SCHEMA)
    rows = {r[S.INPUT_KEY]: r for r in table.to_pylist()}
    assert len(rows) == table.num_rows == len(expect)
    assert {k: r[S.STATUS] for k, r in rows.items()} == expect
    assert summary["ok"] == 5 and summary["errors"] == 2

    assert rows["corrupt.wav"][S.ERROR].startswith("bad_header: the header is damaged")
    assert rows["empty.flac"][S.ERROR].startswith("empty:")
    for key, row in rows.items():
        assert row[S.RUN_ID] == "run-1"
        if row[S.STATUS] != "ok":
            assert row[S.OUTPUT_KEY] is None
            continue
        assert row[S.OUTPUT_KEY] == key and row[S.MODEL_ID].startswith("diffgmm-")
        src = sf.info(f"{root}/noisy/{key}")
        dst = sf.info(f"{paths.audio_uri}/{key}")
        # Same length, rate and sample format; the default channel policy (downmix) writes mono.
        assert (dst.frames, dst.samplerate, dst.channels, dst.subtype) == (src.frames, src.samplerate, 1, src.subtype)
        assert len(row[S.GMM_OCCUPANCY]) == 5 and abs(sum(row[S.GMM_OCCUPANCY]) - 1) < 1e-4
        assert row[S.SECONDS_MODEL] > 0 and np.isfinite(row[S.GMM_NLL])

    # Metrics only where a usable reference exists; otherwise NaN and a reason.
    for key in ("speaker0/clip_0.wav", "speaker1/clip_1.wav"):
        assert np.isfinite(rows[key][S.PESQ_WB]) and np.isfinite(rows[key][S.SI_SDR_DB])
        # The noisy input's scores too (issue 22: the report's baseline), without DNSMOS asking for the input.
        assert all(np.isfinite(rows[key][S.INPUT_PREFIX + m]) for m in (S.PESQ_WB, S.SDR_DB, S.SI_SDR_DB, S.STOI)), (
            rows[key]
        )
        assert rows[key][S.METRICS_ERROR] is None
    assert np.isnan(rows["float_8k.wav"][S.PESQ_WB]) and np.isnan(rows["float_8k.wav"][S.INPUT_PREFIX + S.PESQ_WB])
    assert "reference: not_found" in rows["float_8k.wav"][S.METRICS_ERROR]
    assert np.isnan(rows["silent.wav"][S.SDR_DB]) and "silent_reference" in rows["silent.wav"][S.METRICS_ERROR]
    assert np.isnan(rows["silent.wav"][S.OUTPUT_RMS_DBFS]) or rows["silent.wav"][S.OUTPUT_RMS_DBFS] < -60

    marker = json.loads(open(paths.commit_uri).read())
    assert marker["summary"]["clips"] == len(expect)
    assert marker["config"]["input_uri"] == f"{root}/noisy"
    assert marker["table_files"] == ["clips/part-00000.parquet"]
    assert pq.read_table(paths.manifest_uri).num_rows == len(expect)

    again = run_denoise(config)
    assert again["already_committed"]
    assert pq.read_table(paths.clips_uri).num_rows == len(expect)


def test_uncommitted_retry_rewrites_without_duplicates(ray_local, tmp_path, tiny_checkpoint):
    root = str(tmp_path / "corpus")
    expect = make_corpus(root)
    out = str(tmp_path / "out")
    config = _config(tmp_path, f"{root}/noisy", out, None, tiny_checkpoint, run_id="retry")
    paths = RunPaths.of(out, "retry")
    # A crashed earlier attempt left a partial table and no commit marker.
    os.makedirs(paths.clips_uri)
    pq.write_table(S.CLIP_SCHEMA.empty_table(), f"{paths.clips_uri}/part-00007.parquet")
    run_denoise(config)
    table = pq.read_table(paths.clips_uri)
    assert sorted(table.column(S.INPUT_KEY).to_pylist()) == sorted(expect)
    assert os.listdir(paths.clips_uri) == ["part-00000.parquet"]


def test_streamed_long_files_match_the_in_memory_path(ray_local, tmp_path, tiny_checkpoint):
    from pipeline.inference.longform import StreamConfig

    root = str(tmp_path / "corpus")
    expect = make_corpus(root)
    out = str(tmp_path / "out")
    whole = _config(tmp_path, f"{root}/noisy", out, f"{root}/clean", tiny_checkpoint, run_id="whole")
    # Every non-empty file counts as long here, so all of them take the streaming path.
    streamed = _config(
        tmp_path,
        f"{root}/noisy",
        out,
        f"{root}/clean",
        tiny_checkpoint,
        run_id="streamed",
        stream=StreamConfig(stream_seconds=0.0, probe_bytes=1, block_seconds=0.3),
    )
    assert run_denoise(whole)["streamed"] == 0
    assert run_denoise(streamed)["streamed"] == sum(1 for v in expect.values() if v == "ok")
    tables = {
        run: {r[S.INPUT_KEY]: r for r in pq.read_table(RunPaths.of(out, run).clips_uri).to_pylist()}
        for run in ("whole", "streamed")
    }
    assert {k: r[S.STATUS] for k, r in tables["streamed"].items()} == expect
    assert tables["streamed"]["corrupt.wav"][S.ERROR].startswith("bad_header:")
    assert tables["streamed"]["empty.flac"][S.ERROR].startswith("empty:")
    for key, row in tables["streamed"].items():
        if row[S.STATUS] != "ok":
            continue
        before = tables["whole"][key]
        assert row[S.STREAMED] and not before[S.STREAMED]
        assert row[S.OUTPUT_KEY] == before[S.OUTPUT_KEY] == key
        a, rate_a = sf.read(f"{RunPaths.of(out, 'whole').audio_uri}/{key}", dtype="float32")
        b, rate_b = sf.read(f"{RunPaths.of(out, 'streamed').audio_uri}/{key}", dtype="float32")
        assert rate_a == rate_b and a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=1e-3)  # 16-bit files: a few quantisation steps
        for column in (S.INPUT_RMS_DBFS, S.REMOVED_NOISE_DB, S.GMM_NLL):
            if np.isfinite(before[column]):
                assert row[column] == pytest.approx(before[column], abs=0.02), (key, column)
        # Reference metrics would need the whole file in memory: NaN and a reason instead.
        assert np.isnan(row[S.PESQ_WB]) and row[S.METRICS_ERROR].startswith("streamed:")


def test_s3_job_through_s3fs_and_pyarrow(ray_local, s3_bucket, tmp_path, tiny_checkpoint):
    import boto3
    import pyarrow.fs as pafs

    from pipeline.core.storage import StorageConfig
    from pipeline.inference.longform import StreamConfig

    endpoint, bucket = s3_bucket
    root = str(tmp_path / "corpus")
    expect = make_corpus(root)
    client = boto3.client("s3", endpoint_url=endpoint)
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            client.upload_file(path, bucket, "data/" + os.path.relpath(path, root))
    config = DenoiseConfig(
        input_uri=f"s3://{bucket}/data/noisy",
        output_uri=f"s3://{bucket}/results",
        reference_uri=f"s3://{bucket}/data/clean",
        run_id="2026-11-22",
        storage=StorageConfig(endpoint_url=endpoint),
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
        # clip_1 (2.7 s) streams: ranged reads from S3 and a multipart-capable upload of the result.
        stream=StreamConfig(stream_seconds=2.0, probe_bytes=1, block_seconds=0.5),
    )
    summary = run_denoise(config)
    assert summary["clips"] == len(expect)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="results/")["Contents"]}
    run = "results/runs/2026-11-22"
    assert f"{run}/_COMMITTED.json" in keys and f"{run}/manifest.parquet" in keys
    assert f"{run}/audio/speaker1/clip_1.wav" in keys and f"{run}/audio/stereo_24bit.flac" in keys
    # Read the table back through pyarrow's own S3 client, as a user's query would.
    fs = pafs.S3FileSystem(endpoint_override=endpoint.split("://")[1], scheme="http", region="us-east-1")
    table = pq.read_table(f"{bucket}/{run}/clips", filesystem=fs)
    assert table.schema.equals(S.CLIP_SCHEMA)
    rows = {r[S.INPUT_KEY]: r for r in table.to_pylist()}
    assert {k: r[S.STATUS] for k, r in rows.items()} == expect
    assert np.isfinite(rows["speaker0/clip_0.wav"][S.PESQ_WB]) and not rows["speaker0/clip_0.wav"][S.STREAMED]
    assert (
        rows["speaker1/clip_1.wav"][S.STREAMED] and rows["speaker1/clip_1.wav"][S.OUTPUT_KEY] == "speaker1/clip_1.wav"
    )
    body = client.get_object(Bucket=bucket, Key=f"{run}/audio/speaker1/clip_1.wav")["Body"].read()
    assert sf.info(__import__("io").BytesIO(body)).frames == sf.info(f"{root}/noisy/speaker1/clip_1.wav").frames
    # Secrets never reach the table or the marker.
    marker = client.get_object(Bucket=bucket, Key=f"{run}/_COMMITTED.json")["Body"].read().decode()
    assert "testing-secret-value" not in marker
    assert not any("testing-secret-value" in str(v) for r in rows.values() for v in r.values())


def test_output_keys_never_leave_the_prefix():
    from pipeline.inference.rows import output_key_for

    assert output_key_for("a/b/c.wav", "same") == "a/b/c.wav"
    assert output_key_for("a/b/c.wav", "flac") == "a/b/c.flac"
    for bad in ("../x.wav", "/abs.wav", "a/../../x.wav", "a\\..\\x.wav"):
        with pytest.raises(ValueError):
            output_key_for(bad, "same")


def test_unknown_config_key_is_an_error(tmp_path):
    from pipeline.core.config import ConfigError, load_yaml

    path = tmp_path / "job.yaml"
    path.write_text("input_uri: a\noutput_uri: b\nactors:\n  max_actor: 3\n")
    with pytest.raises(ConfigError, match="max_actor"):
        load_yaml(DenoiseConfig, str(path))
    path.write_text("input_uri: a\noutput_uri: b\nactors:\n  max_actors: 3\n")
    assert load_yaml(DenoiseConfig, str(path)).actors.max_actors == 3


def test_a_killed_model_actor_is_replaced_and_the_job_loses_nothing(ray_local, tmp_path):
    """SIGKILL the model actor's process while it works: Ray restarts it (its setup runs again) and retries its batch."""
    import signal
    import threading
    import time

    import ray._private.state as ray_state

    from pipeline.audio.demo_data import generate_pair
    from pipeline.inference.actors import ActorConfig

    clips = 24
    (tmp_path / "in").mkdir()
    for i in range(clips):
        sf.write(tmp_path / "in" / f"c{i:02d}.wav", generate_pair(2.0, 5.0, 16000, np.random.default_rng(i))[0], 16000)
    audio_dir = tmp_path / "out" / "runs" / "kill" / "audio"
    killed: list[float] = []
    written_at_kill: list[int] = []

    def model_actors() -> dict[int, str]:
        return {a["Pid"]: a["State"] for a in ray_state.actors().values() if "ModelStage" in a["ActorClassName"]}

    def kill_first_model_actor() -> None:
        # Tied to progress, not to a timer: the kill fires once the first batch has been written, so the
        # actor has done real work and (24 clips, 2 per batch) most batches remain, however loaded the host.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            alive = [pid for pid, state in model_actors().items() if state == "ALIVE"]
            if alive and audio_dir.is_dir() and any(audio_dir.iterdir()):
                os.kill(alive[0], signal.SIGKILL)
                killed.append(time.monotonic())
                written_at_kill.append(len(list(audio_dir.iterdir())))
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_model_actor, daemon=True)
    killer.start()
    # The shipped AIGD checkpoint: slow enough on CPU that the kill lands while batches remain.
    config = DenoiseConfig(
        input_uri=str(tmp_path / "in"),
        output_uri=str(tmp_path / "out"),
        run_id="kill",
        model=ModelStageConfig(checkpoint_uri="aigd"),
        actors=ActorConfig(max_actors=1, clips_per_batch=2),
    )
    summary = run_denoise(config)
    finished = time.monotonic()
    killer.join(timeout=5)
    assert killed and killed[0] < finished, "the model actor was not killed while the job ran"
    assert written_at_kill[0] < clips, f"all {clips} clips were written before the kill: nothing was left to retry"
    assert summary["clips"] == clips and summary["ok"] == clips, summary
    table = pq.read_table(RunPaths.of(config.output_uri, "kill").clips_uri)
    assert sorted(table.column(S.INPUT_KEY).to_pylist()) == [f"c{i:02d}.wav" for i in range(clips)]
    for i in range(clips):
        assert sf.info(tmp_path / "out" / "runs" / "kill" / "audio" / f"c{i:02d}.wav").frames == 32000


def test_dot_dot_keys_on_s3_never_write_outside_the_output_prefix(ray_local, s3_bucket, tiny_checkpoint):
    """S3 keys are plain strings: `..` segments are legal there. Each gets one row; no write leaves out/."""
    import io

    import boto3

    from pipeline.audio.demo_data import generate_pair
    from pipeline.core.storage import StorageConfig

    endpoint, bucket = s3_bucket
    client = boto3.client("s3", endpoint_url=endpoint)
    buf = io.BytesIO()
    sf.write(buf, generate_pair(0.5, 5.0, 16000, np.random.default_rng(0))[0], 16000, format="WAV")
    keys = ["in/ok.wav", "in/a/../dotdot.wav", "in/../../escape.wav", "in/a/../../../far.wav"]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
    before = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    config = DenoiseConfig(
        input_uri=f"s3://{bucket}/in",
        output_uri=f"s3://{bucket}/out",
        run_id="dots",
        storage=StorageConfig(endpoint_url=endpoint),
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
    )
    summary = run_denoise(config)
    after = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {k for k in after - before if not k.startswith("out/runs/dots/")} == set()
    table = pq.read_table(
        f"{bucket}/out/runs/dots/clips",
        filesystem=__import__("pyarrow.fs", fromlist=["x"]).S3FileSystem(
            endpoint_override=endpoint.split("://")[1], scheme="http", region="us-east-1"
        ),
    )
    rows = {r[S.INPUT_KEY]: r for r in table.to_pylist()}
    assert summary["clips"] == len(rows) and set(rows) == {k[len("in/") :] for k in keys if k.startswith("in/")}
    assert rows["ok.wav"][S.STATUS] == "ok"
    for row in rows.values():
        if row[S.STATUS] == "ok":
            assert ".." not in (row[S.OUTPUT_KEY] or "")
        else:
            assert "outside the prefix" in row[S.ERROR], row
