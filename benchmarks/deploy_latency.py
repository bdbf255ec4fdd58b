"""Deployed latency of the three backbones at full size (random weights), measured in one interleaved run.

Prints, per backbone: INT8/FP32 latency ratios per runtime; pqd's QAT export against ONNX Runtime's own static
quantization (quantize_static, QDQ, per-channel) of the same FP32 model; sparse/dense ratios at 50/80/90%
unstructured sparsity; and measured/compute-bound ratios. Targets (issue 4): pqd INT8 within 1.1x of
quantize_static; INT8 >= 3.5x faster than FP32 in ONNX Runtime for ResNet-18 and VGG-16-BN; within 1.3x of the
int8 compute bound.

    python benchmarks/deploy_latency.py [--models resnet18,vgg16_bn,wrn28_10] [--threads 2] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from pqd.deploy.onnx import export_model
from pqd.measure.fingerprint import describe
from pqd.measure.latency import bench
from pqd.models import create_model
from pqd.quant import calibrate, freeze, prepare_qat
from pqd.stages.prune import PruneConfig, Pruner


def qat_model(name: str, calib: list[torch.Tensor], sparsity: float = 0.0):
    torch.manual_seed(0)
    model = create_model(name, 10)
    if sparsity:
        Pruner(model, PruneConfig(sparsity=sparsity)).finish()
    prepare_qat(model)
    calibrate(model, calib)
    freeze(model)
    return model.eval()


def ort_static(fp32_path: Path, out: Path, calib: list[torch.Tensor]) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x.numpy()} for x in calib])

        def get_next(self):
            return next(self.it, None)

    pre = out.with_name(out.stem + "_pre.onnx")
    quant_pre_process(str(fp32_path), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,vgg16_bn,wrn28_10")
    ap.add_argument("--runtimes", default="ort,openvino")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--json", type=Path, help="also save every figure with the machine fingerprint")
    args = ap.parse_args()
    calib = [torch.rand(8, 3, 32, 32) for _ in range(4)]
    runtimes = args.runtimes.split(",")
    saved = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for name in args.models.split(","):
            torch.manual_seed(0)
            paths = {"fp32": export_model(create_model(name, 10).eval(), d / f"{name}_fp32.onnx")}
            paths["int8"] = export_model(qat_model(name, calib), d / f"{name}_int8.onnx")
            paths["ort_static"] = ort_static(paths["fp32"], d / f"{name}_static.onnx", calib)
            for s in (0.5, 0.8, 0.9):
                paths[f"int8_s{int(s * 100)}"] = export_model(qat_model(name, calib, s), d / f"{name}_int8_s{int(s * 100)}.onnx")
            rep = bench(list(paths.values()), runtimes=runtimes, threads=args.threads, runs=args.runs)
            by = {(Path(r.model).stem.removeprefix(name + "_"), r.runtime, r.threads): r for r in rep.results}
            print(f"\n== {name} (batch 1) on {describe(rep.machine)}")
            print(rep)
            for t in sorted({k[2] for k in by}):
                for rt in runtimes:
                    g = lambda v: by[(v, rt, t)].median_ms  # noqa: E731
                    print(f"{name} {rt} {t} threads: FP32/INT8 speed-up {g('fp32') / g('int8'):.2f}x; "
                          f"pqd INT8 / quantize_static {g('int8') / g('static'):.2f}x; "
                          + "; ".join(f"sparse {s}% / dense {g(f'int8_s{s}') / g('int8'):.2f}x" for s in (50, 80, 90))
                          + f"; INT8 measured / bound {by[('int8', rt, t)].bound_ratio:.2f}x")
            saved.append(rep.to_dict())
    if args.json:
        args.json.write_text(json.dumps(saved, indent=2))


if __name__ == "__main__":
    main()
