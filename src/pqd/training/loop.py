"""The one training loop: every stage (baseline, prune, quantize, distill) trains through ``fit``.

A stage changes the model (masks, fake quantizers) and may bring its own loss ``task`` and hooks; the loop owns the
optimizer, the learning-rate schedule, mixed precision, checkpoints and logging. Randomness is re-seeded from
(seed, epoch) at each epoch start, so a run resumed from an epoch checkpoint repeats exactly what an uninterrupted
run does.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm.auto import tqdm

from pqd.data import ArrayDataset, batches
from pqd.errors import PQDError


class TrainConfig(BaseModel):
    """Optimisation settings of one training phase (a baseline, or one compression stage)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(1, gt=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: float = Field(0.0, ge=0)
    min_lr: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    compile: bool = False
    seed: int = 0


class CrossEntropyTask:
    """The plain loss: cross-entropy (optionally label-smoothed). Returns (loss, logits, loss parts)."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        return loss, logits, {"ce": loss.detach()}


@dataclass
class Hooks:
    """Stage callbacks. ``epoch_start(epoch)``; ``step_end(step, total_steps)`` after each optimizer step."""

    epoch_start: list[Callable[[int], None]] = field(default_factory=list)
    step_end: list[Callable[[int, int], None]] = field(default_factory=list)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PQDError(f"--device {device}: no CUDA device is available here; use --device cpu or auto")
        return torch.device(device)
    raise PQDError(f"unknown device '{device}': choose cpu, cuda or auto")


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None: full precision)."""
    if amp == "off":
        return None
    if device.type == "cuda":
        if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16
    if amp == "fp16":
        raise PQDError("amp fp16 is for CUDA; on a CPU use bf16, auto or off")
    bf16_ok = bool(getattr(torch.backends.mkldnn, "is_available", lambda: False)()) and _cpu_has_bf16()
    if amp == "bf16" or (amp == "auto" and bf16_ok):
        return torch.bfloat16
    return None


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def lr_at(step: int, total: int, warmup: int, base: float, min_lr: float) -> float:
    """Linear warm-up then cosine decay to ``min_lr``, per optimizer step."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * t))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)  # no weight decay on BN parameters and biases
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


@torch.no_grad()
def evaluate(model: nn.Module, ds: ArrayDataset, *, device: torch.device | str = "cpu", batch_size: int = 256,
             channels_last: bool = False) -> dict[str, float]:
    """Top-1 accuracy (percent) and mean cross-entropy of ``model`` on ``ds``, in full precision, eval mode."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    for x, y in batches(ds, batch_size, device=device, channels_last=channels_last):
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    model.train(was_training)
    return {"accuracy": 100.0 * correct / max(1, n), "loss": loss_sum / max(1, n), "images": n}


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: an interrupted save never leaves a broken checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(
    model: nn.Module,
    train_ds: ArrayDataset,
    cfg: TrainConfig,
    *,
    device: torch.device,
    task: Callable | None = None,
    hooks: Hooks | None = None,
    eval_ds: ArrayDataset | None = None,
    checkpoint_path: Path | None = None,
    checkpoint_extra: dict | None = None,
    resume: dict | None = None,
    metrics_path: Path | None = None,
    log_fields: dict | None = None,
    desc: str = "train",
    schedule: tuple[int, int] | None = None,
) -> list[dict]:
    """Train ``model`` in place for ``cfg.epochs`` epochs. Returns one metrics dict per epoch.

    After every epoch, if ``checkpoint_path`` is given, the model, optimizer and metrics so far are saved
    atomically together with ``checkpoint_extra``. ``resume`` is such a checkpoint: training continues after its
    last completed epoch. ``schedule`` = (offset, total) places this phase inside a longer LR schedule (in
    optimizer steps); by default the schedule spans just this phase.
    """
    task = task or CrossEntropyTask(cfg.label_smoothing)
    hooks = hooks or Hooks()
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    history: list[dict] = []
    start_epoch = 0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        history = list(resume["history"])
        start_epoch = int(resume["epoch"])
    dtype = amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    forward_model = torch.compile(model) if cfg.compile else model
    steps_per_epoch = len(train_ds) // cfg.batch_size if len(train_ds) >= cfg.batch_size else 1
    total = steps_per_epoch * cfg.epochs
    offset, span = schedule or (0, total)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        for h in hooks.epoch_start:
            h(epoch)
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        parts_sum: dict[str, torch.Tensor] = {}
        seen = 0
        bar = tqdm(batches(train_ds, cfg.batch_size, device=device, train=True, generator=gen,
                           channels_last=cfg.channels_last),
                   total=steps_per_epoch, desc=f"{desc} {epoch + 1}/{cfg.epochs}", leave=False, disable=None)
        for i, (x, y) in enumerate(bar):
            step = epoch * steps_per_epoch + i
            lr = lr_at(offset + step, span, warmup, cfg.lr, cfg.min_lr)
            for g in optimizer.param_groups:
                g["lr"] = lr
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss, logits, parts = task(forward_model, x, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            for h in hooks.step_end:
                h(step + 1, total)
            n = len(y)
            seen += n
            loss_sum += loss.detach() * n
            correct += (logits.detach().argmax(1) == y).sum()
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0) + v.float() * n
            if i % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{100 * correct.item() / seen:.1f}",
                                img_s=f"{seen / (time.perf_counter() - t0):.0f}")
        bar.close()
        elapsed = time.perf_counter() - t0
        row = {
            **(log_fields or {}),
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": loss_sum.item() / max(1, seen),
            "train_acc": 100.0 * correct.item() / max(1, seen),
            **{f"loss_{k}": v.item() / max(1, seen) for k, v in parts_sum.items()},
            "images_per_s": seen / elapsed,
            "time_s": elapsed,
        }
        if eval_ds is not None:
            ev = evaluate(model, eval_ds, device=device, channels_last=cfg.channels_last)
            row[f"{eval_ds.split or 'eval'}_acc"] = ev["accuracy"]
        history.append(row)
        if checkpoint_path is not None:
            atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                         "history": history, **(checkpoint_extra or {})}, checkpoint_path)
        if metrics_path is not None:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float) and k != "lr")
        tqdm.write(f"{desc} epoch {epoch + 1}/{cfg.epochs}: {shown}")
    return history
