"""Accuracy of a PyTorch run or of an exported ONNX artifact (ONNX Runtime or OpenVINO)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from pqd.data import ArrayDataset, load_dataset
from pqd.errors import PQDError


@dataclass
class Accuracy:
    target: str
    runtime: str
    dataset: str
    split: str
    images: int
    accuracy: float

    def __str__(self) -> str:
        return f"{self.target} [{self.runtime}] {self.dataset}/{self.split}: top-1 {self.accuracy:.2f}% on {self.images} images"

    def to_dict(self) -> dict:
        return asdict(self)


def _run_data_config(target: Path) -> dict:
    """The data settings of the run a target belongs to (a run dir, its model.pt, or an .onnx inside it)."""
    run = target if target.is_dir() else target.parent
    cfg = run / "config.yaml"
    if cfg.exists():
        data = (yaml.safe_load(cfg.read_text()) or {}).get("data", {})
        return data if isinstance(data, dict) else {}
    return {}


def predict_onnx(session, ds: ArrayDataset, batch_size: int = 256) -> np.ndarray:
    """Top-1 predictions of an artifact session (see ``pqd.deploy.runtime``) over ``ds``."""
    preds = []
    for start in range(0, len(ds), batch_size):
        x = ds.images[start:start + batch_size].float().div_(255.0).numpy()
        preds.append(session.run(x).argmax(1))
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)


def evaluate_target(target: str | Path, *, dataset: str | None = None, data_dir: str | Path | None = None,
                    split: str = "test", subset: int | None = None, runtime: str = "ort",
                    device: str = "cpu", threads: int | None = None) -> Accuracy:
    """Top-1 accuracy of ``target``: a .onnx artifact (run by ``runtime``) or a PyTorch run / model.pt."""
    target = Path(target)
    if not target.exists():
        raise PQDError(f"{target} not found: pass a run directory, a model.pt or an .onnx file")
    data = _run_data_config(target)
    dataset = dataset or data.get("dataset")
    data_dir = data_dir or data.get("data_dir")
    if not dataset or not data_dir:
        raise PQDError(f"cannot tell which data {target} was trained on: pass --dataset and --data-dir")
    ds = load_dataset(dataset, data_dir, split, subset=subset, val_size=data.get("val_size", 0) if split != "test" else 0)
    if target.suffix == ".onnx":
        from pqd.deploy.runtime import open_session

        session = open_session(target, runtime, threads=threads)
        session.check_input(ds)
        pred = predict_onnx(session, ds)
        acc = 100.0 * float((pred == ds.labels.numpy()).mean()) if len(ds) else 0.0
        return Accuracy(str(target), session.name, dataset, split, len(ds), acc)
    from pqd.training import evaluate, load_model, resolve_device

    model, meta = load_model(target)
    if meta["num_classes"] != ds.num_classes:
        raise PQDError(f"{target} predicts {meta['num_classes']} classes but {dataset} has {ds.num_classes}: "
                       "pass the dataset it was trained on")
    res = evaluate(model, ds, device=resolve_device(device))
    return Accuracy(str(target), "torch", dataset, split, len(ds), res["accuracy"])


@torch.no_grad()
def predict_torch(model: torch.nn.Module, ds: ArrayDataset, batch_size: int = 256) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(ds), batch_size):
        out.append(model(ds.images[start:start + batch_size].float().div_(255.0)).argmax(1).numpy())
    return np.concatenate(out)
