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
