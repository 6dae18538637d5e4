"""Frozen-dataclass configs from YAML/dicts: nested, typed, unknown keys are an error.

Each component keeps its own frozen dataclass next to its code; a job config
is a dataclass whose fields are those component configs. The resolved config
(every default filled in) is what gets saved with a run's outputs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def _convert(tp, value, where: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], value, where) if len(non_none) == 1 else value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build ``cls`` from a (possibly nested) mapping; raises :class:`ConfigError` on unknown keys or types."""
    if values is None:
        values = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def typed(cls: type[T], value: Any, where: str) -> T:
    """A config section as ``cls``: None gives the defaults, a mapping is converted, an instance is kept."""
    if value is None:
        return cls()
    return _convert(cls, value, where)


def to_dict(config) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) for YAML/JSON."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(config))


def load_yaml(cls: type[T], path: str | None, overrides: dict[str, Any] | None = None) -> T:
    """Config from a YAML file (optional) with dotted-key overrides applied on top."""
    import yaml

    values: dict[str, Any] = {}
    if path:
        from pipeline.core import storage

        loaded = yaml.safe_load(storage.read_bytes(path).decode())
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        values = loaded or {}
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(cls, values, where=path or "config")
