"""Unstructured magnitude pruning with the gradual cubic schedule of Zhu & Gupta (2017).

Masks live in the model as ``weight_mask`` buffers on each pruned Conv2d/Linear, so they travel with checkpoints
and survive every later transform. ``apply_masks`` re-zeroes the masked weights; the pipeline runs it after every
optimizer step of every stage, which makes the mask permanent: pruned weights stay exactly zero through QAT,
distillation, batch-norm folding and export.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class PruneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sparsity: float = Field(0.8, ge=0, lt=1, description="target fraction of zero weights in the pruned layers")
    scope: Literal["global", "layer"] = "global"
    initial_sparsity: float = Field(0.0, ge=0, lt=1)
    ramp: float = Field(0.75, gt=0, le=1, description="fraction of the stage over which sparsity rises")
    updates: int = Field(20, gt=0, description="mask updates during the ramp")
    exclude: list[str] = Field(default_factory=lambda: ["stem", "fc"],
                               description="module-name patterns left dense (a pattern also covers its children)")


def _excluded(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or name.startswith(p + ".") for p in patterns)


def prunable(model: nn.Module, exclude: list[str]) -> list[tuple[str, nn.Module]]:
    """(name, module) of every Conv2d/Linear not excluded."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not _excluded(n, exclude)]


def attach_masks(model: nn.Module, cfg: PruneConfig) -> list[tuple[str, nn.Module]]:
    """Give every prunable layer a ``weight_mask`` buffer (all ones if new). Returns the layers."""
    layers = prunable(model, cfg.exclude)
    for _, m in layers:
        if not hasattr(m, "weight_mask"):
            m.register_buffer("weight_mask", torch.ones_like(m.weight, dtype=torch.bool))
    return layers


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    for m in model.modules():
        mask = getattr(m, "weight_mask", None)
        if mask is not None:
            m.weight.mul_(mask)


def has_masks(model: nn.Module) -> bool:
    return any(hasattr(m, "weight_mask") for m in model.modules())


def cubic_sparsity(step: int, total: int, cfg: PruneConfig) -> float:
    """Zhu & Gupta: s_t = s_f + (s_i - s_f) (1 - t / T)^3 over the ramp, updated ``cfg.updates`` times."""
    ramp_steps = max(1, int(total * cfg.ramp))
    every = max(1, ramp_steps // cfg.updates)
    t = min(ramp_steps, (step // every) * every)
    if step >= ramp_steps:
        t = ramp_steps
    return cfg.sparsity + (cfg.initial_sparsity - cfg.sparsity) * (1 - t / ramp_steps) ** 3


@torch.no_grad()
def update_masks(layers: list[tuple[str, nn.Module]], sparsity: float, scope: str) -> None:
    """Prune the smallest-magnitude weights to reach ``sparsity`` (exactly round(s * n) zeros). Masks only
    shrink: weights pruned earlier stay pruned."""
    groups = [layers] if scope == "global" else [[l] for l in layers]
    for group in groups:
        scores = torch.cat([torch.where(m.weight_mask, m.weight.abs().float(), -1.0).flatten() for _, m in group])
        k = int(round(sparsity * scores.numel()))
        keep = torch.ones_like(scores, dtype=torch.bool)
        if k > 0:
            keep[torch.topk(scores, k, largest=False, sorted=False).indices] = False
        offset = 0
        for _, m in group:
            n = m.weight.numel()
            m.weight_mask.copy_(keep[offset:offset + n].view_as(m.weight) & m.weight_mask)
            offset += n
            m.weight.mul_(m.weight_mask)


def sparsity_report(model: nn.Module) -> dict:
    """Fractions of zeros: in the masks, and in all conv/linear weights (masked or not)."""
    masked = zeros_in_masks = 0
    total = zero_weights = 0
    layers = {}
    for n, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            total += m.weight.numel()
            zero_weights += int((m.weight == 0).sum())
            mask = getattr(m, "weight_mask", None)
            if mask is not None:
                masked += mask.numel()
                zeros_in_masks += int((~mask).sum())
                layers[n] = 1 - float(mask.float().mean())
    return {
        "mask_sparsity": zeros_in_masks / masked if masked else 0.0,
        "weight_sparsity": zero_weights / total if total else 0.0,
        "masked_weights": masked,
        "pruned_weights": zeros_in_masks,
        "total_weights": total,
        "layers": layers,
    }


class Pruner:
    """The prune stage's training hook: raises sparsity along the cubic schedule, then holds it."""

    def __init__(self, model: nn.Module, cfg: PruneConfig):
        self.cfg = cfg
        self.layers = attach_masks(model, cfg)
        self.current = -1.0

    def step(self, step: int, total: int) -> None:
        s = cubic_sparsity(step, total, self.cfg)
        if s != self.current:
            update_masks(self.layers, s, self.cfg.scope)
            self.current = s

    def finish(self) -> None:
        if self.current != self.cfg.sparsity:
            update_masks(self.layers, self.cfg.sparsity, self.cfg.scope)
            self.current = self.cfg.sparsity
