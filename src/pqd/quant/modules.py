"""Fake-quantization modules built on ``torch.fake_quantize_per_channel_affine`` / ``per_tensor_affine``.

``prepare_qat`` swaps, in place: ConvBN -> QConvBN (BN folded), plain Conv2d -> QConvBN without BN,
Linear -> QLinear, QuantPoint -> ActFakeQuant, standalone BatchNorm2d -> QBatchNorm2d (freezable). Parameters and
buffers keep their identity, so pruning masks and optimizer state carry over.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from pqd.models.layers import ConvBN, QuantPoint

W_QMAX = 127  # symmetric int8 weights in [-127, 127]
A_QMIN, A_QMAX = 0, 255  # uint8 activations


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric scale max|w| / 127 (float32)."""
    amax = w.detach().float().abs().flatten(1).amax(1)
    return (amax / W_QMAX).clamp_min(1e-12)


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    s = weight_scale(w)
    zp = torch.zeros_like(s, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w.float(), s, zp, 0, -W_QMAX, W_QMAX)


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The int8 weights and scales that ``fake_quant_weight`` simulates: q * scale == fake_quant_weight(w)."""
    s = weight_scale(w)
    q = torch.round(fake_quant_weight(w).detach() / s.view(-1, *[1] * (w.ndim - 1)))
    return q.to(torch.int8), s


def quantize_bias(b: torch.Tensor | None, input_quant: "ActFakeQuant | None", w: torch.Tensor):
    """Round a bias to the int32 grid s_in * s_w[c] that ONNX Runtime / OpenVINO use for QLinearConv / QGemm
    (straight-through gradient). Without a linked input quantizer the bias stays float."""
    if b is None or input_quant is None:
        return b
    step = (input_quant.qparams()[0].detach() * weight_scale(w)).clamp_min(1e-20)
    return b + (torch.round(b / step) * step - b).detach()


class _FakeQuantAct(torch.autograd.Function):
    """Per-tensor affine fake quantization, computed in float32 and returned in the input's dtype.

    Same values as ``torch.fake_quantize_per_tensor_affine`` in float32 (tested), about twice as fast on CPU, and it
    hands bf16 back under autocast instead of forcing float32 activations. Straight-through gradient inside the
    clamping range, zero outside."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin: int, qmax: int):
        q = x.to(torch.float32, copy=True).mul_(1.0 / scale).round_().add_(zero_point)  # never in place on x
        inside = (q >= qmin) & (q <= qmax)
        ctx.save_for_backward(inside)
        return q.clamp_(qmin, qmax).sub_(zero_point).mul_(scale).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


class ActFakeQuant(nn.Module):
    """Per-tensor uint8 fake quantizer with a moving-average min/max observer (the range always includes 0)."""

    def __init__(self, averaging_constant: float = 0.01):
        super().__init__()
        self.averaging_constant = averaging_constant
        self.register_buffer("min_val", torch.tensor(0.0))
        self.register_buffer("max_val", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("observing", torch.tensor(True))
        self.force_observe = False  # set by ``calibrate`` to observe in eval mode

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        mn, mx = (v.float() for v in torch.aminmax(x.detach()))
        if not bool(self.initialized):
            self.min_val.copy_(mn)
            self.max_val.copy_(mx)
            self.initialized.fill_(True)
        else:
            c = self.averaging_constant
            self.min_val.mul_(1 - c).add_(c * mn)
            self.max_val.mul_(1 - c).add_(c * mx)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        mn = torch.clamp(self.min_val, max=0.0)
        mx = torch.clamp(self.max_val, min=0.0)
        scale = ((mx - mn) / (A_QMAX - A_QMIN)).clamp_min(1e-8)
        zp = torch.clamp(torch.round(-mn / scale), A_QMIN, A_QMAX).to(torch.int32)
        return scale.reshape(1), zp.reshape(1)

    _trace: dict | None = None  # storage pointer -> quantizer, filled only while ``link_input_quantizers`` runs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(self.observing) and (self.training or self.force_observe):
            self.observe(x)
        return self.requantize(x)

    def requantize(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize with the current range, without observing (e.g. after max-pooling)."""
        scale, zp = self.qparams()
        out = _FakeQuantAct.apply(x, scale, zp.float(), A_QMIN, A_QMAX)
        if ActFakeQuant._trace is not None:
            ActFakeQuant._trace[out.untyped_storage().data_ptr()] = (self, out)
        return out

    def extra_repr(self) -> str:
        return f"range=[{float(self.min_val):.4g}, {float(self.max_val):.4g}], observing={bool(self.observing)}"


class QConvBN(nn.Module):
    """Conv2d with its following BatchNorm2d folded in and int8 weights simulated.

    Training with live BN (before freezing): weights are folded with the running std and fake-quantized, the
    convolution output is un-scaled and batch norm normalises with batch statistics (Jacob et al. 2018,
    Krishnamoorthi 2018). Frozen BN or eval mode: conv(x, fq(w * gamma / sigma)) + folded bias, exactly the
    deployed convolution.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None):
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.register_buffer("bn_frozen", torch.tensor(False))
        self.input_quant: ActFakeQuant | None = None  # set by ``link_input_quantizers`` (not a submodule)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(folded float weight, folded bias, gamma / sigma) with running statistics."""
        w, b = self.conv.weight, self.conv.bias
        if self.bn is None:
            return w, b, None
        g = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        bias = b if b is not None else torch.zeros_like(self.bn.running_mean)
        return w * g.view(-1, 1, 1, 1), self.bn.bias + (bias - self.bn.running_mean) * g, g

    def _conv(self, x, w, b):
        c = self.conv
        return F.conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups)

    def deployed(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(fake-quantized folded weight, bias rounded to int32 at scale s_in * s_w): the deployed arithmetic."""
        w, b, _ = self.folded()
        return fake_quant_weight(w), quantize_bias(b, self.input_quant, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn is not None and self.training and not bool(self.bn_frozen):
            w, _, g = self.folded()
            # conv(x, fq(w * g)) / g, with the per-channel division moved onto the (small) weight tensor
            y = self._conv(x, fake_quant_weight(w) / g.view(-1, 1, 1, 1), None)
            if self.conv.bias is not None:
                y = y + self.conv.bias.view(1, -1, 1, 1)
            return self.bn(y)
        return self._conv(x, *self.deployed())


class QLinear(nn.Module):
    """Linear layer with per-output-channel int8 weights simulated."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear
        self.input_quant: ActFakeQuant | None = None

    def deployed(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        w = self.linear.weight
        return fake_quant_weight(w), quantize_bias(self.linear.bias, self.input_quant, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.float(), *self.deployed())


class QBatchNorm2d(nn.BatchNorm2d):
    """A batch norm that is not folded into a convolution (pre-activation nets); it stays float when deployed,
    and uses running statistics once frozen."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("frozen", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        training = self.training and not bool(self.frozen)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training,
                            self.momentum if self.momentum is not None else 0.1, self.eps)


def _swap(module: nn.Module) -> nn.Module | None:
    if isinstance(module, ConvBN):
        return QConvBN(module.conv, module.bn)
    if isinstance(module, nn.Conv2d):
        return QConvBN(module, None)
    if isinstance(module, nn.Linear):
        return QLinear(module)
    if isinstance(module, QuantPoint):
        return ActFakeQuant()
    if type(module) is nn.BatchNorm2d:
        new = QBatchNorm2d(module.num_features, module.eps, module.momentum)
        new.weight, new.bias = module.weight, module.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(new, name, getattr(module, name))
        return new
    return None


def swap_modules(parent: nn.Module, convert) -> None:
    """Replace, in place, every submodule for which ``convert(module)`` returns a module; recurse into the rest."""
    for name, child in list(parent.named_children()):
        new = convert(child)
        if new is not None:
            setattr(parent, name, new)
        else:
            swap_modules(child, convert)


def prepare_qat(model: nn.Module, image_size: int = 32) -> nn.Module:
    """Swap every quantizable module of a pqd model for its fake-quantized form, in place. Idempotent."""
    if is_quantized(model):
        return model
    device = next(model.parameters()).device
    swap_modules(model, _swap)
    model.to(device)  # new quantizer buffers follow the model
    link_input_quantizers(model, image_size)
    return model


@torch.no_grad()
def link_input_quantizers(model: nn.Module, image_size: int = 32) -> None:
    """Tell each QConvBN / QLinear which activation quantizer produces its input (its bias is then simulated on
    the int32 grid s_in * s_w). Found by one traced forward pass in eval mode; a layer fed by a float tensor (e.g.
    after a standalone batch norm's float result) keeps a float bias."""
    layers = [m for m in model.modules() if isinstance(m, (QConvBN, QLinear))]
    trace: dict = {}

    def pre_hook(mod, args):
        hit = trace.get(args[0].untyped_storage().data_ptr())
        fq = hit[0] if hit is not None and hit[1].shape.numel() == args[0].shape.numel() else None
        object.__setattr__(mod, "input_quant", fq)  # a reference, not a submodule: state_dict unchanged

    handles = [m.register_forward_pre_hook(pre_hook) for m in layers]
    was = model.training
    device = next(model.parameters()).device
    ActFakeQuant._trace = trace
    try:
        model.eval()
        model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        ActFakeQuant._trace = None
        for h in handles:
            h.remove()
        model.train(was)


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, (ActFakeQuant, QConvBN, QLinear)) for m in model.modules())


def freeze(model: nn.Module, *, observers: bool = True, bn: bool = True, frozen: bool = True) -> None:
    """Stop (or with ``frozen=False`` restart) range observation and/or batch-norm statistics updates."""
    for m in model.modules():
        if observers and isinstance(m, ActFakeQuant):
            m.observing.fill_(not frozen)
        if bn and isinstance(m, QConvBN):
            m.bn_frozen.fill_(frozen)
        if bn and isinstance(m, QBatchNorm2d):
            m.frozen.fill_(frozen)


@torch.no_grad()
def calibrate(model: nn.Module, inputs: Iterable[torch.Tensor]) -> None:
    """Initialise activation ranges by running ``inputs`` through the model in eval mode."""
    fqs = [m for m in model.modules() if isinstance(m, ActFakeQuant)]
    was = model.training
    model.eval()
    for m in fqs:
        m.force_observe = True
    try:
        for x in inputs:
            model(x)
    finally:
        for m in fqs:
            m.force_observe = False
        model.train(was)
