"""Export to ONNX: FP32 models as plain graphs, quantized models as INT8 QDQ graphs.

The exported model is self-contained: input ``input`` float32 NCHW RGB in [0, 1] (normalisation is inside the
graph), output ``logits``, dynamic batch size. INT8 graphs store weights as int8 initializers behind
DequantizeLinear (per output channel) and activations as QuantizeLinear/DequantizeLinear pairs; ONNX Runtime fuses
them into QLinearConv / QLinearAdd / QGemm, OpenVINO into u8 convolutions.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxscript import opset18 as op
from torch import nn

from pqd.deploy.convert import to_deploy
from pqd.errors import PQDError
from pqd.quant import is_quantized

OPSET = 18
INPUT, OUTPUT = "input", "logits"


def _qdq_onnx(x, scale: float, zero_point: int):
    s = op.Constant(value_float=scale)
    z = op.Cast(op.Constant(value_int=zero_point), to=TensorProto.UINT8)
    return op.DequantizeLinear(op.QuantizeLinear(x, s, z), s, z)


def _dequantize_weight_onnx(q, scale, zero_point):
    return op.DequantizeLinear(q, scale, zero_point, axis=0)


def _custom_table():
    return {torch.ops.pqd.qdq.default: _qdq_onnx,
            torch.ops.pqd.dequantize_weight.default: _dequantize_weight_onnx}


def _global_pools(model: onnx.ModelProto) -> None:
    """ReduceMean over H, W (keepdims) -> GlobalAveragePool, which ONNX Runtime runs in int8 between Q/DQ."""
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    for node in model.graph.node:
        if node.op_type != "ReduceMean" or len(node.input) < 2:
            continue
        axes = consts.get(node.input[1])
        keep = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        if axes is not None and keep == 1 and sorted(int(a) % 4 for a in np.atleast_1d(axes)) == [2, 3]:
            node.op_type = "GlobalAveragePool"
            del node.input[1:]
            del node.attribute[:]


def export_module(model: nn.Module, path: str | Path, *, image_size: int = 32) -> Path:
    """Export ``model`` (eval mode, float input in [0, 1]) to ``path`` with a dynamic batch dimension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu", memory_format=torch.contiguous_format)
    example = (torch.rand(2, 3, image_size, image_size),)
    batch = torch.export.Dim("batch", min=1, max=4096)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, example, dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes=({0: batch},), custom_translation_table=_custom_table(),
                                    opset_version=OPSET, optimize=True, verbose=False)
    proto = program.model_proto
    _global_pools(proto)
    proto.producer_name = "pqd"
    onnx.checker.check_model(proto)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, tmp)
    tmp.replace(path)
    return path


def export_model(model: nn.Module, path: str | Path, *, int8: bool | None = None) -> Path:
    """Export a pqd model: INT8 QDQ if it was quantized (or ``int8=True``), else FP32."""
    quantized = is_quantized(model)
    if int8 and not quantized:
        raise PQDError("this model was never quantized, so there is no INT8 form to export: run a recipe with a "
                       "quantize stage first, or export it as FP32")
    if int8 is False and quantized:
        raise PQDError("this model was trained with quantization; its faithful export is INT8 (drop --fp32)")
    return export_module(to_deploy(model) if quantized else model, path)


def export(run: str | Path, out: str | Path | None = None, *, int8: bool | None = None) -> Path:
    """Export the model of a run directory (or model.pt) to ONNX. Default output: RUN/model.onnx."""
    from pqd.training import load_model

    model, _ = load_model(run)
    run = Path(run)
    out = Path(out) if out else (run if run.is_dir() else run.parent) / "model.onnx"
    return export_model(model, out, int8=int8)


def onnx_int8_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The int8 weight initializers of an exported model (those behind a per-channel DequantizeLinear)."""
    m = onnx.load(str(path))
    inits = {i.name: i for i in m.graph.initializer}
    out = {}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].data_type == TensorProto.INT8:
            out[n.input[0]] = numpy_helper.to_array(inits[n.input[0]])
    return out


def make_single_conv(path: Path, cin: int, cout: int, hw: int, int8: bool) -> Path:
    """A one-convolution model (3x3, ``cin`` -> ``cout`` on hw x hw) used to measure this CPU's peak."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", cin, hw, hw])
    y = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", cout, hw, hw])
    if int8:
        inits = [numpy_helper.from_array(rng.integers(-127, 128, (cout, cin, 3, 3)).astype(np.int8), "w"),
                 numpy_helper.from_array(np.full(cout, 0.01, np.float32), "ws"),
                 numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                 numpy_helper.from_array(np.array(0, np.uint8), "z")]
        nodes = [helper.make_node("QuantizeLinear", [INPUT, "s", "z"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
                 helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"], axis=0),
                 helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["r"]),
                 helper.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"]),
                 helper.make_node("DequantizeLinear", ["rq", "s", "z"], [OUTPUT])]
    else:
        inits = [numpy_helper.from_array(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32) * 0.01, "w")]
        nodes = [helper.make_node("Conv", [INPUT, "w"], [OUTPUT], pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "peak", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 9
    onnx.save(m, path)
    return path
