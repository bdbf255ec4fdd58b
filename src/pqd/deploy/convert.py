"""The deploy form: what a quantized model is once training is over.

``to_deploy`` turns a QAT model (fake-quant modules) into plain modules holding int8 weights, per-channel scales,
float biases and fixed activation scales / zero points. Its PyTorch forward computes exactly what the QAT model
computes in eval mode; its ONNX export is a QDQ graph that ONNX Runtime and OpenVINO run with int8 kernels. The
compact checkpoint stores this form.

Two custom ops carry the quantization through ``torch.onnx.export`` (dynamo) and are translated to
QuantizeLinear / DequantizeLinear: ``pqd::qdq`` (per-tensor uint8 quantize + dequantize of an activation) and
``pqd::dequantize_weight`` (per-channel int8 weights to float).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from pqd.quant.modules import (A_QMAX, A_QMIN, ActFakeQuant, QBatchNorm2d, QConvBN, QLinear, quantize_weight,
                                swap_modules)


@torch.library.custom_op("pqd::qdq", mutates_args=())
def qdq(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, A_QMIN, A_QMAX)


@qdq.register_fake
def _(x, scale, zero_point):
    return torch.empty_like(x)


@torch.library.custom_op("pqd::dequantize_weight", mutates_args=())
def dequantize_weight(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """int8 weights (zero point 0, carried explicitly for the ONNX graph) to float, per output channel."""
    return q.float() * scale.view(-1, *[1] * (q.dim() - 1))


@dequantize_weight.register_fake
def _(q, scale, zero_point):
    return torch.empty(q.shape, dtype=torch.float32, device=q.device)


class DeployQDQ(nn.Module):
    """A fixed uint8 activation quantizer (QuantizeLinear + DequantizeLinear in ONNX)."""

    def __init__(self, scale: float, zero_point: int):
        super().__init__()
        self.scale, self.zero_point = float(scale), int(zero_point)

    def forward(self, x):
        return qdq(x, self.scale, self.zero_point)

    def requantize(self, x):
        return self(x)

    def extra_repr(self):
        return f"scale={self.scale:.6g}, zero_point={self.zero_point}"


class DeployConv(nn.Module):
    """Convolution with int8 weights (per output channel scales) and a float bias: QLinearConv once deployed."""

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation,
                 groups):
        super().__init__()
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", scale.float())
        self.register_buffer("weight_zero_point", torch.zeros(q.shape[0], dtype=torch.int8))
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x):
        w = dequantize_weight(self.weight_int8, self.weight_scale, self.weight_zero_point)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class DeployLinear(nn.Module):
    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", scale.float())
        self.register_buffer("weight_zero_point", torch.zeros(q.shape[0], dtype=torch.int8))
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    def forward(self, x):
        return F.linear(x, dequantize_weight(self.weight_int8, self.weight_scale, self.weight_zero_point), self.bias)


def _convert(m: nn.Module) -> nn.Module | None:
    if isinstance(m, QConvBN):
        w, _, _ = m.folded()
        q, s = quantize_weight(w)
        c = m.conv
        return DeployConv(q, s, m.deployed()[1], c.stride, c.padding, c.dilation, c.groups)
    if isinstance(m, QLinear):
        q, s = quantize_weight(m.linear.weight)
        return DeployLinear(q, s, m.deployed()[1])
    if isinstance(m, ActFakeQuant):
        scale, zp = m.qparams()
        return DeployQDQ(scale.item(), zp.item())
    if isinstance(m, QBatchNorm2d):
        bn = nn.BatchNorm2d(m.num_features, m.eps)
        bn.load_state_dict({k: v for k, v in m.state_dict().items() if k != "frozen"})
        return bn.eval()
    return None


@torch.no_grad()
def to_deploy(model: nn.Module) -> nn.Module:
    """A deploy-form copy of a quantized model (the input is left unchanged)."""
    model = copy.deepcopy(model).eval().to("cpu", memory_format=torch.contiguous_format)
    swap_modules(model, _convert)
    return model.eval()


def int8_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> int8 weight tensor of every DeployConv / DeployLinear."""
    return {n: m.weight_int8 for n, m in model.named_modules() if isinstance(m, (DeployConv, DeployLinear))}
