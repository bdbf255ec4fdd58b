"""YAML files of configs, recipes and run records: read with one-line errors, written atomically."""

from __future__ import annotations

from pathlib import Path

import yaml

from pqd.errors import PQDError


def read_yaml(path: str | Path, what: str) -> dict:
    """A YAML mapping from ``path``; ``what`` names the file's role in error messages."""
    path = Path(path)
    if not path.is_file():
        raise PQDError(f"{what} {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PQDError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PQDError(f"{path}: expected a mapping of {what} fields")
    return data


def save_yaml(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(obj, sort_keys=False))
    tmp.replace(path)
