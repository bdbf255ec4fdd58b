"""Knowledge distillation (Hinton et al. 2015) as a task object that wraps the teacher (as in timm)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1, description="weight of the distillation term; 1 - alpha weighs CE")
    teacher: str | None = Field(None, description="teacher run directory; default: compress --teacher")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t / T) || softmax(s / T)), averaged over the batch."""
    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * (t * t)


class DistillTask:
    """Loss of the distill stage: alpha * KD + (1 - alpha) * CE. The teacher runs in eval mode without grad."""

    def __init__(self, teacher: nn.Module, cfg: DistillConfig):
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.cfg = cfg

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        with torch.no_grad():
            t_logits = self.teacher(x)
        logits = model(x)
        kd = kd_loss(logits, t_logits, self.cfg.temperature)
        ce = F.cross_entropy(logits.float(), y)
        loss = self.cfg.alpha * kd + (1 - self.cfg.alpha) * ce
        return loss, logits, {"kd": kd.detach(), "ce": ce.detach()}
