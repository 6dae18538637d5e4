"""Checks that families' frozen config dataclasses share in ``__post_init__``."""

from __future__ import annotations


def require_at_least_one(config, names: tuple[str, ...], prefix: str = "") -> None:
    """Raise ``ValueError("<prefix><name> must be >= 1, got <value>")`` for the first field of ``names`` below 1."""
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ValueError(f"{prefix}{name} must be >= 1, got {value}")
