"""MACs of an ONNX model and the compute-bound latency on this CPU.

MACs are counted from the graph (Conv and Gemm/MatMul, per image). The peak is measured here, not assumed: large
single 3x3 convolutions (int8 QDQ or FP32) are timed in every installed runtime, and the best MACs per second is
this CPU's attainable peak at that thread count. The bound is MACs / peak, the same for every runtime; a model at
1.0x of its bound cannot get faster without doing fewer operations.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from pqd.deploy.onnx import make_single_conv

_PEAKS: dict[tuple, float] = {}


def count_macs(path: str | Path) -> int:
    """Multiply-accumulates of one image through the Conv / Gemm / MatMul nodes of an ONNX model."""
    model = onnx.load(str(path))
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs = 0
    for n in model.graph.node:
        if n.op_type == "Conv":
            out, w = shapes.get(n.output[0]), shapes.get(n.input[1])
            if out and w:
                macs += int(np.prod(out[1:])) * int(np.prod(w[1:]))
        elif n.op_type in ("Gemm", "MatMul"):
            a, out = shapes.get(n.input[0]), shapes.get(n.output[0])
            if a and out:
                macs += int(a[-1]) * int(np.prod(out[1:]))
    return macs


def graph_is_int8(path: str | Path) -> bool:
    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type == "QuantizeLinear" for n in model.graph.node)


def measure_peak(threads: int, int8: bool, *, seconds: float = 0.6) -> float:
    """Attainable MACs/s on this CPU for large 3x3 convolutions, best over the installed runtimes (cached)."""
    from pqd.deploy.runtime import open_session
    from pqd.errors import PQDError

    key = (threads, int8)
    if key in _PEAKS:
        return _PEAKS[key]
    best = 0.0
    with tempfile.TemporaryDirectory() as d:
        for runtime, (cin, hw) in ((r, s) for r in ("ort", "openvino") for s in ((256, 16), (512, 16), (640, 8))):
            path = make_single_conv(Path(d) / f"peak_{cin}_{hw}.onnx", cin, cin, hw, int8)
            try:
                sess = open_session(path, runtime, threads=threads)
            except PQDError:  # a runtime that is not installed
                continue
            x = np.random.default_rng(0).random((1, cin, hw, hw), dtype=np.float32)
            for _ in range(5):
                sess.run(x)
            times, t_end = [], time.perf_counter() + seconds / 3
            while time.perf_counter() < t_end or len(times) < 10:
                t0 = time.perf_counter()
                sess.run(x)
                times.append(time.perf_counter() - t0)
            best = max(best, cin * cin * 9 * hw * hw / float(np.median(times)))
    _PEAKS[key] = best
    return best
