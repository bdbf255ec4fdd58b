"""Size on disk: the FP32 checkpoint, the ONNX artifact and the compact checkpoint, in bytes, MiB and as ratios."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from pqd.quant import ActFakeQuant


def fp32_checkpoint_bytes(model: nn.Module) -> int:
    """Bytes of a plain dense FP32 state dict of this architecture (weights and BN buffers, as torch.save writes
    it): what shipping the model uncompressed costs. Masks and quantizer state are not part of it."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("weight_mask")}
    quant_buffers = {f"{n}.{b}" for n, m in model.named_modules() if isinstance(m, ActFakeQuant)
                     for b, _ in m.named_buffers()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()
             if k not in quant_buffers and not k.endswith(("bn_frozen", ".frozen"))}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.tell()


@dataclass
class Sizes:
    fp32_checkpoint_bytes: int
    onnx_bytes: int
    compact_bytes: int

    def to_dict(self) -> dict:
        d = asdict(self)
        base = self.fp32_checkpoint_bytes
        for k in list(d):
            d[k.replace("_bytes", "_mib")] = d[k] / 2**20
            d[k.replace("_bytes", "_ratio")] = d[k] / base if base else None
        return d


def sizes(model: nn.Module, onnx_path: Path, compact_path: Path) -> Sizes:
    return Sizes(fp32_checkpoint_bytes(model), Path(onnx_path).stat().st_size, Path(compact_path).stat().st_size)
