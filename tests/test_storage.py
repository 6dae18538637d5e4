"""Storage layer: atomic local writes and the input/output overlap guard."""

import os

import pytest

from pipeline.core import storage


def test_local_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    target = str(tmp_path / "deep" / "state.json")
    storage.write_bytes(target, b"first")
    storage.write_bytes(target, b"second")
    assert open(target, "rb").read() == b"second"
    # A write that fails half-way leaves the previous object whole and no temporary file behind.
    with pytest.raises(TypeError):
        storage.write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert open(target, "rb").read() == b"second"
    assert os.listdir(tmp_path / "deep") == ["state.json"]


@pytest.mark.parametrize(
    "input_uri, output_uri, overlap",
    [
        ("s3://b/in", "s3://b/in/out", True),
        ("s3://b/in/", "s3://b", True),
        ("s3://b/in", "s3://b/input-denoised", False),
        ("s3://b/in", "s3://other/in", False),
        ("data/in", "data/out", False),
        ("data/in", "./data/in/runs", True),
    ],
)
def test_output_inside_input_is_refused(input_uri, output_uri, overlap):
    if overlap:
        with pytest.raises(ValueError, match="overlap"):
            storage.check_disjoint(input_uri, output_uri)
    else:
        storage.check_disjoint(input_uri, output_uri)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask):
    """Issue 22 #2: the atomic write's temp file (0600) must not leak its mode into results."""
    old = os.umask(umask)
    try:
        target = tmp_path / "out" / "report.html"
        storage.write_bytes(str(target), b"<html></html>")
        storage.write_bytes(str(target), b"<html>again</html>")  # a replace, too
        src = tmp_path / "src.bin"
        src.write_bytes(b"x")
        storage.put_file(str(src), str(tmp_path / "out" / "copy.bin"))
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (target.stat().st_mode & 0o777) == expected
    assert ((tmp_path / "out" / "copy.bin").stat().st_mode & 0o777) in (expected, 0o644 & ~umask)


def test_every_s3_client_takes_the_endpoint_from_aws_endpoint_url_s3(s3_bucket, monkeypatch):
    """Issue 22 #1: with only AWS_ENDPOINT_URL_S3 set, boto/s3fs and pyarrow's own S3 client reach the same server."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    endpoint, bucket = s3_bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    config = storage.StorageConfig(
        max_attempts=1, operation_attempts=1, connect_timeout_seconds=2, read_timeout_seconds=2
    )
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2, 3]}), buf)
    storage.write_bytes(f"s3://{bucket}/t.parquet", buf.getvalue(), config)
    fs, path = storage.arrow_filesystem(f"s3://{bucket}/t.parquet", config)
    assert pq.read_table(path, filesystem=fs).column("x").to_pylist() == [1, 2, 3]
    assert storage.resolve_endpoint(config) == endpoint
    # An explicit endpoint wins over the variable, for every client alike.
    assert storage.resolve_endpoint(storage.StorageConfig(endpoint_url="http://127.0.0.1:1")) == "http://127.0.0.1:1"
