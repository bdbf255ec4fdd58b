"""Study configurations and the presets ``paper``, ``small``, ``quick`` and ``smoke``.

A method is a stage order joined by '-' ('prune-quantize-distill'), or 'fp32' for the trained baseline itself.
Every preset field can be overridden from a YAML file or the command line (``--set field=value``).
"""

from __future__ import annotations

from itertools import permutations
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pqd.config import read_yaml
from pqd.errors import PQDError, format_validation_error
from pqd.stages.recipe import STAGE_NAMES
from pqd.training.loop import TrainConfig

ORDERINGS = ["-".join(p) for p in permutations(("prune", "quantize", "distill"))]
ALL_METHODS = ["fp32", "prune", "quantize", "distill", "prune-quantize", *ORDERINGS]


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] = ["resnet18"]
    datasets: list[str] = ["cifar10"]
    methods: list[str] = ALL_METHODS
    seeds: list[int] = [0]
    model_options: dict[str, Any] = {}
    data_dir: str = "data"
    download: bool = False
    subset: int | None = Field(None, gt=0, description="training images per cell (None: all)")
    test_subset: int | None = Field(None, gt=0, description="test images per cell (None: all)")
    teacher: TrainConfig = TrainConfig(epochs=200, lr=0.1, warmup_epochs=1)
    stages: TrainConfig = TrainConfig(lr=0.01)  # training settings of every compression stage (epochs: below)
    epochs: dict[str, int] = {"prune": 20, "quantize": 40, "distill": 40}
    sparsity: float = Field(0.8, ge=0, lt=1)
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)
    runtimes: list[str] = ["ort", "openvino"]
    threads: list[int] = [1, 2]
    latency_runs: int = Field(200, gt=0)
    device: str = "auto"

    @field_validator("methods")
    @classmethod
    def _methods(cls, v):
        for m in v:
            parts = m.split("-")
            if m != "fp32" and (any(p not in STAGE_NAMES for p in parts) or len(set(parts)) != len(parts)):
                raise ValueError(f"unknown method '{m}': use 'fp32' or stages joined by '-', e.g. prune-quantize-distill")
        return v

    @field_validator("epochs")
    @classmethod
    def _epochs(cls, v):
        missing = [s for s in STAGE_NAMES if s not in v]
        if missing or any(e <= 0 for e in v.values()):
            raise ValueError(f"needs a positive epoch count for each of {', '.join(STAGE_NAMES)}")
        return v


PRESETS: dict[str, dict] = {
    # the paper's grid and budgets: sized for a GPU (3 backbones x 2 datasets x 11 methods x 3 seeds)
    "paper": {"models": ["resnet18", "wrn28_10", "vgg16_bn"], "datasets": ["cifar10", "cifar100"],
              "seeds": [0, 1, 2],
              "teacher": {"epochs": 200, "lr": 0.1, "warmup_epochs": 1, "batch_size": 128},
              "stages": {"lr": 0.01, "batch_size": 128}, "epochs": {"prune": 20, "quantize": 40, "distill": 40}},
    # a 2-core CPU within hours: ResNet-18 at half width on 10k CIFAR-10 images, the 1:2:2 split as 1/2/2 epochs
    "small": {"models": ["resnet18"], "datasets": ["cifar10"], "seeds": [0], "model_options": {"width": 0.5},
              "subset": 10000, "teacher": {"epochs": 10, "lr": 0.1, "warmup_epochs": 1},
              "stages": {"lr": 0.01}, "epochs": {"prune": 1, "quantize": 2, "distill": 2},
              "runtimes": ["ort", "openvino"], "threads": [2]},
    # the README's main job: minutes on a CPU, the paper's pipeline against its baseline and single techniques
    "quick": {"models": ["resnet18"], "datasets": ["cifar10"], "seeds": [0], "model_options": {"width": 0.25},
              "methods": ["fp32", "prune", "quantize", "distill", "prune-quantize", "prune-quantize-distill"],
              "subset": 20000, "test_subset": 2000, "teacher": {"epochs": 5, "lr": 0.1, "warmup_epochs": 0.5},
              "stages": {"lr": 0.01}, "epochs": {"prune": 1, "quantize": 1, "distill": 1},
              "runtimes": ["ort"], "threads": [2], "latency_runs": 100},
    # tiny models and data, a minute or two; used by the tests
    "smoke": {"models": ["resnet18"], "datasets": ["cifar10"], "seeds": [0], "model_options": {"width": 0.125},
              "subset": 256, "test_subset": 128,
              "teacher": {"epochs": 3, "lr": 0.05, "batch_size": 64, "amp": "off"},
              "stages": {"lr": 0.02, "batch_size": 64, "amp": "off"}, "epochs": {"prune": 1, "quantize": 1, "distill": 1},
              "sparsity": 0.5, "runtimes": ["ort"], "threads": [1], "latency_runs": 20, "device": "cpu"},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(item: str) -> dict:
    """'teacher.epochs=5' -> {'teacher': {'epochs': 5}} (values parsed as YAML: numbers, lists, booleans)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise PQDError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set teacher.epochs=5 or --set models=[resnet18]")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise PQDError(f"--set {item!r}: the value is not valid YAML") from None
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = parsed
    return out


def load_study_config(preset: str = "small", *, config_file: str | Path | None = None,
                      overrides: list[str] | dict | None = None) -> StudyConfig:
    """Preset, then the YAML file, then the overrides; validated."""
    if preset not in PRESETS:
        raise PQDError(f"unknown preset '{preset}': choose {', '.join(PRESETS)}")
    raw = dict(PRESETS[preset])
    if config_file:
        raw = _merge(raw, read_yaml(config_file, "study config"))
    if isinstance(overrides, dict):
        raw = _merge(raw, overrides)
    else:
        for item in overrides or []:
            raw = _merge(raw, parse_override(item))
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as e:
        raise PQDError(format_validation_error(e, f"study ({preset})")) from None
