"""Model registry: ``create_model(name, num_classes, **options)``, one file per family (as in timm)."""

from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from pqd.errors import PQDError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def deco(fn):
        _MODELS[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, num_classes: int = 10, **options) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes. Options: ``width`` (channel multiplier, for tiny test
    models), ``mean``/``std`` (input normalisation), and family options such as ``dropout`` for wrn28_10."""
    if name not in _MODELS:
        raise PQDError(f"unknown model '{name}': choose one of {', '.join(list_models())}")
    fn = _MODELS[name]
    allowed = [p for p in inspect.signature(fn).parameters if p != "num_classes"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise PQDError(f"model '{name}' has no option {', '.join(unknown)}: it takes {', '.join(allowed)}")
    return fn(num_classes, **options)
