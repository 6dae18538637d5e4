"""Flaky storage: a fault-injecting proxy (tests/fault_proxy.py) in front of the moto S3 server.

Transient faults (503 SlowDown bursts, reset connections, bodies cut short,
delays) are retried and never show in a table; persistent ones become an error
row, or a job failure with no commit; a nightly run retries rows that failed
for a storage reason. Every test checks that its faults really fired.
"""

from __future__ import annotations

import io
from dataclasses import replace

import boto3
import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from fault_proxy import Fault, FaultProxy

from pipeline.audio.demo_data import generate_pair
from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.ledger import Ledger
from pipeline.core.runs import read_parquet, write_parquet
from pipeline.denoise.job import DenoiseConfig, RunPaths, run_denoise
from pipeline.denoise.nightly import NightlyConfig, run_nightly
from pipeline.inference.model_stage import ModelStageConfig

# Short waits so a test that exhausts its retries stays quick; the defaults are longer.
FAST = dict(retry_backoff_seconds=0.05, connect_timeout_seconds=5.0, read_timeout_seconds=5.0)


@pytest.fixture
def proxy(s3_bucket):
    endpoint, _ = s3_bucket
    with FaultProxy(endpoint) as p:
        yield p


def _wav(seconds: float, seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, generate_pair(seconds, 5.0, 16000, np.random.default_rng(seed))[0], 16000, format="WAV")
    return buf.getvalue()


def _upload(endpoint: str, bucket: str, prefix: str, count: int) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=endpoint)
    files = {f"c{i}.wav": _wav(0.5 + 0.1 * i, i) for i in range(count)}
    for key, body in files.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=body)
    return files


@pytest.mark.parametrize("kind", ["slowdown", "reset", "cut", "delay"])
def test_transient_faults_are_retried_by_every_storage_path(s3_bucket, proxy, kind):
    endpoint, bucket = s3_bucket
    # A delay matters when it outlasts the read timeout: then the request is abandoned and retried.
    config = storage.StorageConfig(endpoint_url=proxy.url, **{**FAST, "read_timeout_seconds": 1.0})
    data = np.random.default_rng(0).bytes(200_000)
    table = pa.table({"k": [str(i) for i in range(500)], "v": np.arange(500.0)})
    boto3.client("s3", endpoint_url=endpoint).put_object(Bucket=bucket, Key="src.bin", Body=data)

    def faults(method: str) -> None:
        # Three in a row: more than one request retry, fewer than botocore's six attempts.
        proxy.add(Fault(kind, method=method, times=3, cut_bytes=1000, delay_seconds=1.5))

    faults("GET")
    assert storage.read_bytes(f"s3://{bucket}/src.bin", config) == data
    faults("PUT")
    storage.write_bytes(f"s3://{bucket}/copy.bin", data, config)
    faults("HEAD")
    assert storage.exists(f"s3://{bucket}/copy.bin", config)
    faults("PUT")
    write_parquet(table, f"s3://{bucket}/t/table.parquet", config)
    faults("GET")
    assert read_parquet(f"s3://{bucket}/t/table.parquet", config).equals(table)
    faults("GET")
    fs, path = storage.arrow_filesystem(f"s3://{bucket}/src.bin", config)  # pyarrow's own S3 client
    with fs.open_input_stream(path) as f:
        assert f.read() == data
    assert boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket, Key="copy.bin")["Body"].read() == data
    # A "cut" needs a body longer than cut_bytes: HEAD and PUT answers have none, so count what could fire.
    assert proxy.injected[kind] >= (9 if kind == "cut" else 18), proxy.injected


def test_without_retries_the_same_faults_fail(s3_bucket, proxy):
    """The break-it check for the test above: one attempt meets the fault."""
    _, bucket = s3_bucket
    storage.write_bytes(f"s3://{bucket}/x.bin", b"x" * 5000, storage.StorageConfig(endpoint_url=proxy.url))
    once = storage.StorageConfig(endpoint_url=proxy.url, max_attempts=1, operation_attempts=1, **FAST)
    proxy.add(Fault("slowdown", method="GET", times=1))
    with pytest.raises(storage.StorageError, match="failed after 1 attempts"):
        storage.read_bytes(f"s3://{bucket}/x.bin", once)


def test_a_body_cut_short_every_time_is_an_error_never_a_short_read(s3_bucket, proxy):
    _, bucket = s3_bucket
    config = storage.StorageConfig(endpoint_url=proxy.url, max_attempts=2, operation_attempts=2, **FAST)
    storage.write_bytes(f"s3://{bucket}/x.bin", b"x" * 50_000, config)
    proxy.add(Fault("cut", method="GET", times=None, cut_bytes=1000))
    with pytest.raises(storage.StorageError, match="reading s3://audio/x.bin failed after 2 attempts"):
        storage.read_bytes(f"s3://{bucket}/x.bin", config)
    assert proxy.injected["cut"] >= 4


def test_not_found_is_not_retried(s3_bucket, proxy):
    _, bucket = s3_bucket
    config = storage.StorageConfig(endpoint_url=proxy.url, **FAST)
    before = proxy.requests
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(f"s3://{bucket}/missing.bin", config)
    assert proxy.requests - before <= 2  # one HEAD (and at most one GET): no retry loop


@pytest.mark.slow
def test_denoise_job_through_a_flaky_store_loses_nothing(ray_local, s3_bucket, proxy, tiny_checkpoint):
    endpoint, bucket = s3_bucket
    files = _upload(endpoint, bucket, "in", 5)
    proxy.add(
        Fault("slowdown", times=None, every=4),
        Fault("reset", times=None, every=9),
        Fault("cut", method="GET", times=None, every=5, cut_bytes=500),
        Fault("delay", times=None, every=7, delay_seconds=0.2),
    )
    config = DenoiseConfig(
        input_uri=f"s3://{bucket}/in",
        output_uri=f"s3://{bucket}/out",
        run_id="flaky",
        storage=storage.StorageConfig(endpoint_url=proxy.url, **FAST),
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
    )
    summary = run_denoise(config)
    assert summary["clips"] == 5 and summary["ok"] == 5, summary
    assert sum(proxy.injected.values()) >= 10, proxy.injected
    proxy.clear()
    paths = RunPaths.of(config.output_uri, "flaky")
    rows = read_parquet(storage.join(paths.clips_uri, "part-00000.parquet"), config.storage).to_pylist()
    assert sorted(r[S.INPUT_KEY] for r in rows) == sorted(files) and all(r[S.ERROR] is None for r in rows)
    client = boto3.client("s3", endpoint_url=endpoint)
    for key, body in files.items():
        out = client.get_object(Bucket=bucket, Key=f"out/runs/flaky/audio/{key}")["Body"].read()
        assert sf.info(io.BytesIO(out)).frames == sf.info(io.BytesIO(body)).frames


@pytest.mark.slow
def test_persistent_faults_are_error_rows_or_a_failed_job_and_nightly_retries_them(
    ray_local, s3_bucket, proxy, tiny_checkpoint
):
    endpoint, bucket = s3_bucket
    _upload(endpoint, bucket, "in", 3)
    config = DenoiseConfig(
        input_uri=f"s3://{bucket}/in",
        output_uri=f"s3://{bucket}/out",
        storage=storage.StorageConfig(endpoint_url=proxy.url, max_attempts=2, operation_attempts=2, **FAST),
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
    )
    night = NightlyConfig(max_attempts=3)

    # Night 1: one input cannot be read at all: its row says why; the others are fine; the run commits.
    proxy.add(Fault("slowdown", method="GET", path=r"/in/c1\.wav", times=None))
    first = run_nightly(replace(config, run_id="n1"), night)
    assert first["summary"]["clips"] == 3 and first["summary"]["errors"] == 1
    ledger = Ledger.read(config.output_uri, config.storage)
    assert ledger.rows["c1.wav"][S.STATUS] == "error" and ledger.rows["c0.wav"][S.STATUS] == "ok"
    assert ledger.rows["c1.wav"][S.ERROR].startswith("storage: reading s3://audio/in/c1.wav failed after 2 attempts")

    # Night 2: the store is healthy again; the storage failure is retried (a bad file would not be).
    proxy.clear()
    second = run_nightly(replace(config, run_id="n2"), night)
    assert second["counts"]["retry"] == 1 and second["summary"]["ok"] == 1
    assert Ledger.read(config.output_uri, config.storage).rows["c1.wav"][S.STATUS] == "ok"

    # The table cannot be written: the job fails with the reason, and no commit marker claims success.
    _upload(endpoint, bucket, "in2", 2)
    job = replace(config, input_uri=f"s3://{bucket}/in2", run_id="broken-table")
    proxy.add(Fault("slowdown", method="PUT", path=r"/clips/", times=None))
    with pytest.raises(storage.StorageError, match="clips/.*failed after 2 attempts"):
        run_denoise(job)
    client = boto3.client("s3", endpoint_url=endpoint)
    listed = client.list_objects_v2(Bucket=bucket, Prefix="out/runs/broken-table/").get("Contents", [])
    assert proxy.injected["slowdown"] >= 4 and not any(o["Key"].endswith("_COMMITTED.json") for o in listed)
    # Once the store recovers, the same run id completes with one row per input.
    proxy.clear()
    assert run_denoise(job)["ok"] == 2


def test_incomplete_multipart_uploads_are_invisible_to_listing(s3_bucket):
    """A crash mid-upload leaves parts, not an object: listings (and so the next run) never see them."""
    from pipeline.core.manifest import list_inputs

    endpoint, bucket = s3_bucket
    client = boto3.client("s3", endpoint_url=endpoint)
    client.put_object(Bucket=bucket, Key="in/whole.wav", Body=_wav(0.5, 0))
    upload = client.create_multipart_upload(Bucket=bucket, Key="in/half.wav")
    client.upload_part(Bucket=bucket, Key="in/half.wav", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1000)
    manifest = list_inputs(f"s3://{bucket}/in", (".wav",), storage.StorageConfig(endpoint_url=endpoint))
    assert manifest.column(S.KEY).to_pylist() == ["whole.wav"]
    assert [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == ["in/half.wav"]
