"""Credentials never reach errors, logs or tables: redact() itself, and the CLI's one-line errors and logs."""

from __future__ import annotations

import logging

import pytest

from jobs.cli import main
from pipeline.core.redact import redact
from pipeline.inference.rows import error_text

SECRET = "S3cr3tPl4nted-7f1c"


def test_redact_removes_env_values_url_userinfo_and_signatures(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "abc")  # too short to mask safely: left alone
    message = (
        f"failed with key {SECRET} at https://AKID:{SECRET}x@minio.local:9000/bucket and "
        f"https://b.s3.amazonaws.com/k.wav?X-Amz-Credential=AKID%2F2026&X-Amz-Signature=deadbeef&x=1"
    )
    out = redact(message)
    assert SECRET not in out and "deadbeef" not in out and "AKID%2F2026" not in out
    assert "https://***@minio.local:9000/bucket" in out and "X-Amz-Signature=***" in out and "&x=1" in out
    assert "abc" in redact("abc stays") and redact("s3://bucket/key.wav: not found") == "s3://bucket/key.wav: not found"


def test_error_text_of_a_table_row_is_redacted(monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET)
    text = error_text(PermissionError(f"denied for token {SECRET} via http://u:{SECRET}@h/x"))
    assert text.startswith("PermissionError: denied") and SECRET not in text


def test_cli_errors_and_logs_never_show_planted_credentials(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    missing = tmp_path / f"inputs-{SECRET}"
    assert main(["denoise", "--input", str(missing), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "input prefix does not exist" in err and SECRET not in err and "***" in err
    # A credential in an endpoint URL, through a log line of library code (the CLI's handlers carry this filter).
    from jobs.cli import _redact_record

    logger = logging.getLogger("pipeline.anything")
    record = logger.makeRecord(
        "pipeline.anything", logging.INFO, __file__, 1, "endpoint %s", (f"http://k:{SECRET}@127.0.0.1:9",), None
    )
    assert (
        _redact_record(record) and SECRET not in record.getMessage() and "http://***@127.0.0.1:9" in record.getMessage()
    )


@pytest.mark.parametrize("uri", [f"http://user:{SECRET}@127.0.0.1:9/in"])
def test_cli_error_for_a_url_with_credentials_is_redacted(uri, tmp_path, capsys):
    assert main(["denoise", "--input", uri, "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("diffgmm denoise: error:") and SECRET not in err


@pytest.mark.slow
def test_a_planted_secret_reaches_no_output_object_log_line_or_ray_session_log(
    ray_local, s3_bucket, tiny_checkpoint, caplog, monkeypatch
):
    """The secret rides in the config (a URL's user-info) and the environment; errors are provoked; then everything is searched."""
    import io
    import uuid
    from pathlib import Path

    import boto3
    import numpy as np
    import soundfile as sf

    from pipeline.audio.demo_data import generate_pair
    from pipeline.core.runs import read_parquet
    from pipeline.core.storage import StorageConfig
    from pipeline.denoise.job import DenoiseConfig, run_denoise
    from pipeline.inference.model_stage import ModelStageConfig

    endpoint, bucket = s3_bucket
    secret = f"Planted{uuid.uuid4().hex}"
    client = boto3.client("s3", endpoint_url=endpoint)
    for i in range(3):
        buf = io.BytesIO()
        sf.write(buf, generate_pair(0.5, 5.0, 16000, np.random.default_rng(i))[0], 16000, format="WAV")
        client.put_object(Bucket=bucket, Key=f"in/c{i}.wav", Body=buf.getvalue())
    client.put_object(Bucket=bucket, Key="in/not-audio.wav", Body=b"plain text, not audio")
    # References behind HTTP basic auth (a URL with user-info), on a port where nothing listens: every
    # reference read fails with an error that names the URL, on the workers, into rows and logs.
    references = f"http://reader:{secret}@127.0.0.1:9/references"
    from jobs.cli import _redact_record

    # Debug logs as `diffgmm -v` writes them: botocore's canonical requests carry the session token.
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(_redact_record)
    # What a library could echo; set for the whole test, as a process's credentials are.
    monkeypatch.setenv("AWS_SESSION_TOKEN", secret)
    config = DenoiseConfig(
        input_uri=f"s3://{bucket}/in",
        output_uri=f"s3://{bucket}/out",
        run_id="leak",
        reference_uri=references,
        storage=StorageConfig(endpoint_url=endpoint, operation_attempts=2),
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
    )
    summary = run_denoise(config)
    # An operator error with the secret in the failing URI, through the CLI's one line.
    assert main(["denoise", "--input", f"http://u:{secret}@127.0.0.1:9/in", "--output", "/tmp/never"]) == 1
    assert summary["clips"] == 4 and summary["errors"] == 1  # the run really happened, with an error row
    rows = read_parquet(f"s3://{bucket}/out/runs/leak/clips/part-00000.parquet", config.storage)
    assert all("http://***@127.0.0.1:9/references/" in e for e in rows.column("metrics_error").to_pylist() if e), (
        rows.column("metrics_error").to_pylist()
    )

    objects = client.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]
    assert any(o["Key"].endswith("_COMMITTED.json") for o in objects)
    for o in objects:
        assert secret.encode() not in client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read(), o["Key"]
    assert secret not in caplog.text
    session = Path(ray_local._private.worker._global_node.get_session_dir_path())
    logs = [p for p in session.rglob("*") if p.is_file()]
    assert any(p.name.startswith("worker-") for p in logs), "no Ray worker logs to search"
    for path in logs:
        assert secret.encode() not in path.read_bytes(), path
