"""Run directories and the baseline (teacher) training API.

A run directory holds:
  config.yaml      the resolved configuration (everything needed to repeat the run)
  metrics.jsonl    one line per epoch
  checkpoint.pt    written atomically after every epoch (model, optimizer, progress); used by --resume
  model.pt         the final model: architecture, options, applied compression transforms and weights
  metrics.json     final numbers (test accuracy, ...)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from pqd.config import save_yaml
from pqd.data import load_dataset
from pqd.errors import PQDError, format_validation_error
from pqd.models import create_model
from pqd.training.loop import TrainConfig, atomic_save, evaluate, fit, resolve_device

MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = "cifar10"
    data_dir: str = "data"
    download: bool = False
    val_size: int = Field(0, ge=0)
    subset: int | None = Field(None, gt=0)
    test_subset: int | None = Field(None, gt=0)

    def load(self, split: str, seed: int = 0):
        subset = self.test_subset if split == "test" else self.subset
        return load_dataset(self.dataset, self.data_dir, split, download_missing=self.download,
                            val_size=self.val_size, subset=subset, seed=seed)


class BaselineConfig(BaseModel):
    """What ``pqd train`` runs: a model trained from scratch with cross-entropy."""

    model_config = ConfigDict(extra="forbid")

    model: str = "resnet18"
    model_options: dict[str, Any] = {}
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    device: str = "auto"


@dataclass
class TrainResult:
    run_dir: str
    model: str
    dataset: str
    test_accuracy: float
    epochs: int
    train_time_s: float
    images_per_s: float

    def __str__(self) -> str:
        return "\n".join(f"{k:>15}: {v:.4g}" if isinstance(v, float) else f"{k:>15}: {v}" for k, v in asdict(self).items())


def save_model(model: nn.Module, path: Path, *, name: str, num_classes: int, options: dict,
               transforms: list[dict]) -> None:
    """Save the final model with what is needed to rebuild its structure (see ``load_model``)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_save({"pqd_format": 1, "model": name, "num_classes": num_classes, "options": options,
                 "transforms": transforms, "state_dict": state}, path)


def read_model_file(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise PQDError(f"{path} not found: pass a finished run directory or its {MODEL_FILE}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises many types for a bad file)
        raise PQDError(f"{path} is not a readable pqd model file ({e.__class__.__name__}); re-run the job that wrote it") from None
    if not isinstance(blob, dict) or blob.get("pqd_format") != 1:
        raise PQDError(f"{path} is not a pqd model file (no 'pqd_format'); pass a file written by pqd train/compress")
    return blob


def build_model(name: str, num_classes: int, options: dict, transforms: list[dict]) -> nn.Module:
    """Rebuild a model's structure: the architecture, then each compression transform's structural change."""
    from pqd.stages import restore_structure

    model = create_model(name, num_classes, **options)
    restore_structure(model, transforms)
    return model


def load_state(model: nn.Module, state: dict, source: str, name: str) -> None:
    missing, unexpected = [], []
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or bad:
        detail = (f"{len(missing)} missing, {len(unexpected)} unexpected, {len(bad)} wrong-shape tensors"
                  + (f", e.g. {(missing or unexpected or bad)[0]}" if (missing or unexpected or bad) else ""))
        raise PQDError(f"{source} does not match model '{name}' with these options ({detail}): "
                       "was it saved from another model, width or number of classes?")
    model.load_state_dict(state)


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Load a model saved by pqd (a run directory or its model.pt). Returns (model in eval mode, file metadata)."""
    blob = read_model_file(path)
    model = build_model(blob["model"], blob["num_classes"], blob["options"], blob["transforms"])
    load_state(model, blob["state_dict"], str(path), blob["model"])
    model.eval()
    return model, {k: v for k, v in blob.items() if k != "state_dict"}


def prepare_run_dir(out: Path, resume: bool) -> dict | None:
    """Create ``out``; return its checkpoint when resuming. Refuses to overwrite a run unless resuming."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT_FILE
    if resume:
        if not ckpt.exists():
            return None
        try:
            return torch.load(ckpt, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001
            raise PQDError(f"{ckpt} is unreadable ({e.__class__.__name__}); delete it to start the run again") from None
    if ckpt.exists() or (out / MODEL_FILE).exists():
        raise PQDError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    return None


def train(config: BaselineConfig | dict | None = None, *, out: str | Path, resume: bool = False,
          **overrides) -> TrainResult:
    """Train an FP32 baseline (a teacher) into run directory ``out``.

    ``config`` is a BaselineConfig or a dict of its fields; ``overrides`` set top-level fields (model, device, ...).
    With ``resume=True`` an interrupted run in ``out`` continues from its last epoch with its saved config.
    """
    out = Path(out)
    ckpt = prepare_run_dir(out, resume)
    if resume and (out / "config.yaml").exists():
        raw = yaml.safe_load((out / "config.yaml").read_text())
    else:
        raw = config.model_dump() if isinstance(config, BaseModel) else dict(config or {})
        raw.update(overrides)
    try:
        cfg = BaselineConfig.model_validate(raw)
    except ValidationError as e:
        raise PQDError(format_validation_error(e, "train config")) from None
    if resume and ckpt is None and (out / MODEL_FILE).exists():
        raise PQDError(f"{out} is already finished; choose another --out to train again")
    device = resolve_device(cfg.device)
    train_ds = cfg.data.load("train", cfg.train.seed)
    eval_ds = cfg.data.load("val", cfg.train.seed) if cfg.data.val_size else None
    test_ds = cfg.data.load("test")
    torch.manual_seed(cfg.train.seed)
    options = {**cfg.model_options, "mean": list(train_ds.mean), "std": list(train_ds.std)}
    model = create_model(cfg.model, train_ds.num_classes, **options)
    save_yaml(cfg.model_dump(), out / "config.yaml")
    metrics_path = out / "metrics.jsonl"
    if ckpt is not None:
        load_state(model, ckpt["model"], str(out / CHECKPOINT_FILE), cfg.model)
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in ckpt["history"]))
    else:
        metrics_path.write_text("")
    t0 = time.perf_counter()
    history = fit(model, train_ds, cfg.train, device=device, eval_ds=eval_ds, checkpoint_path=out / CHECKPOINT_FILE,
                  resume=ckpt, metrics_path=metrics_path, log_fields={"stage": "baseline"}, desc=f"{cfg.model}")
    test = evaluate(model, test_ds, device=device)
    model.to("cpu", memory_format=torch.contiguous_format)
    save_model(model, out / MODEL_FILE, name=cfg.model, num_classes=train_ds.num_classes, options=options,
               transforms=[])
    result = TrainResult(
        run_dir=str(out), model=cfg.model, dataset=cfg.data.dataset, test_accuracy=test["accuracy"],
        epochs=cfg.train.epochs, train_time_s=sum(r["time_s"] for r in history) or time.perf_counter() - t0,
        images_per_s=sum(r["images_per_s"] for r in history) / max(1, len(history)),
    )
    (out / "metrics.json").write_text(json.dumps({**asdict(result), "test_loss": test["loss"],
                                                  "test_images": test["images"], "history": history}, indent=2))
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    return result
