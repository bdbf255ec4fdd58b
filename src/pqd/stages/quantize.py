"""INT8 quantization-aware training: pqd's fake-quant modules (``pqd.quant``), calibrated at the start of the
stage, with observers and batch-norm statistics frozen late in the stage. Quantization stays on afterwards."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from pqd.quant import calibrate, freeze, prepare_qat


class QuantizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    freeze_bn: float = Field(0.75, ge=0, le=1, description="fraction of the stage after which BN statistics freeze")
    freeze_observers: float = Field(0.75, ge=0, le=1,
                                    description="fraction of the stage after which activation ranges freeze")
    calibration_batches: int = Field(8, ge=1, description="batches that initialise activation ranges")


class QATFreezer:
    """Training hook that freezes BN statistics and activation ranges at their points in the stage."""

    def __init__(self, model: nn.Module, cfg: QuantizeConfig):
        self.model, self.cfg = model, cfg

    def step(self, step: int, total: int) -> None:
        if step >= self.cfg.freeze_bn * total:
            freeze(self.model, observers=False, bn=True)
        if step >= self.cfg.freeze_observers * total:
            freeze(self.model, observers=True, bn=False)


def start_qat(model: nn.Module, cfg: QuantizeConfig, calibration_inputs) -> None:
    prepare_qat(model)
    calibrate(model, calibration_inputs)
