"""Export, runtimes, the compact checkpoint and the measurement of the triad, on real ONNX Runtime / OpenVINO."""

import json
import sys
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from pqd import load_dataset, load_model
from pqd.deploy.compact import load_compact, save_compact
from pqd.deploy.convert import to_deploy
from pqd.deploy.onnx import export, export_model, onnx_int8_weights
from pqd.deploy.runtime import open_session
from pqd.errors import PQDError
from pqd.measure.accuracy import evaluate_target, predict_onnx, predict_torch
from pqd.measure.bound import count_macs
from pqd.measure.latency import bench
from pqd.measure.results import measure_run
from pqd.models import create_model
from pqd.quant import QConvBN, QLinear


def optimized_ops(path, tmp_path):
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)


@pytest.mark.parametrize("name,convs,adds", [("resnet18", 20, 8), ("vgg16_bn", 13, 0), ("wrn28_10", 28, 12)])
def test_int8_export_runs_int8_kernels_in_ort(tmp_path, name, convs, adds):
    torch.manual_seed(0)
    from pqd.quant import calibrate, freeze, prepare_qat

    model = prepare_qat(create_model(name, 10, width=0.125))
    calibrate(model, [torch.rand(16, 3, 32, 32)])
    freeze(model)
    path = export_model(model.eval(), tmp_path / "m.onnx")
    ops = optimized_ops(path, tmp_path)
    assert ops["QLinearConv"] == convs and ops["QLinearAdd"] == adds
    assert ops["Conv"] == 0 and ops["Gemm"] == 0 and ops["QGemm"] == 1  # classifier in int8 too
    x = torch.rand(5, 3, 32, 32)  # dynamic batch
    ref = model(x).detach().numpy()
    for rt in ("ort", "openvino"):
        out = open_session(path, rt).run(x.numpy())
        assert out.shape == (5, 10)
        step = float(model.q_logits.qparams()[0])
        assert np.abs(out - ref).max() <= 4 * step + 1e-5


def test_fp32_export_matches_pytorch(tmp_path, teacher_run):
    path = export(teacher_run, tmp_path / "fp32.onnx")
    model, _ = load_model(teacher_run)
    x = torch.rand(3, 3, 32, 32)
    for rt in ("ort", "openvino"):
        assert np.allclose(open_session(path, rt).run(x.numpy()), model(x).detach().numpy(), atol=1e-3)
    assert count_macs(path) > 0 and not any(n.op_type == "QuantizeLinear" for n in onnx.load(str(path)).graph.node)


def test_artifact_is_faithful_and_sparse(tmp_path, pipeline_run, cifar10_dir):
    model, _ = load_model(pipeline_run)
    path = export(pipeline_run, tmp_path / "int8.onnx")
    ds = load_dataset("cifar10", cifar10_dir, "test")
    pred_art = predict_onnx(open_session(path, "ort"), ds)
    pred_qat = predict_torch(model, ds)
    labels = ds.labels.numpy()
    assert (pred_art == pred_qat).mean() >= 0.97  # real-data check (>= 99%, <= 0.3 pt): tests/test_realdata.py
    assert abs((pred_art == labels).mean() - (pred_qat == labels).mean()) <= 0.03
    # sparsity: every masked weight is an exact int8 zero; any extra zero is a weight that rounds to 0 in int8
    int8 = onnx_int8_weights(path)
    for name, m in model.named_modules():
        inner = m.conv if isinstance(m, QConvBN) else m.linear if isinstance(m, QLinear) else None
        if inner is None or not hasattr(inner, "weight_mask"):
            continue
        w = int8[f"{name}.weight_int8"]
        mask = inner.weight_mask.numpy()
        assert np.all(w[~mask] == 0)
        from pqd.quant.modules import quantize_weight

        q, _ = quantize_weight(m.folded()[0] if isinstance(m, QConvBN) else inner.weight)
        assert np.array_equal(w, q.numpy())  # the file holds exactly the simulated int8 weights
        assert (w == 0).sum() == (~mask).sum() + ((q.numpy() == 0) & mask).sum()


def test_compact_round_trip_is_the_same_deployed_model(tmp_path, pipeline_run, teacher_run):
    model, meta = load_model(pipeline_run)
    meta = {k: meta[k] for k in ("model", "num_classes", "options", "transforms")}
    path = save_compact(model, tmp_path / "m.pqdz", meta=meta)
    loaded, header = load_compact(path)
    ref = to_deploy(model)
    for (k, a), b in zip(ref.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(loaded(x), ref(x))
    a = open_session(export_model(model, tmp_path / "a.onnx"), "ort").run(x.numpy())
    b = open_session(export_model(model, tmp_path / "b.onnx"), "ort").run(x.numpy())
    assert np.array_equal(a, b)
    assert path.stat().st_size < 0.3 * (tmp_path / "a.onnx").stat().st_size  # 50% sparse int8 + zstd
    fmodel, fmeta = load_model(teacher_run)
    fpath = save_compact(fmodel, tmp_path / "f.pqdz", meta={k: fmeta[k] for k in meta})
    floaded, fheader = load_compact(fpath)
    assert fheader["form"] == "fp32" and torch.equal(floaded(x), fmodel(x))


def test_measure_run_writes_the_triad(pipeline_run):
    res = measure_run(pipeline_run, runtimes=["ort", "openvino"], threads=[1], runs=20, warmup=3, bound=False)
    saved = json.loads((pipeline_run / "results.json").read_text())
    assert saved["accuracy"] == res["accuracy"] and res["precision"] == "int8"
    assert res["mask_sparsity"] == pytest.approx(0.5, abs=1e-6)
    assert res["int8_masked_sparsity"] >= res["mask_sparsity"]
    s = res["sizes"]
    assert s["compact_bytes"] < s["onnx_bytes"] < s["fp32_checkpoint_bytes"]
    assert s["compact_ratio"] == pytest.approx(s["compact_bytes"] / s["fp32_checkpoint_bytes"])
    assert {(r["runtime"], r["threads"]) for r in res["latency"]} == {("ort", 1), ("openvino", 1)}
    assert all(r["runs"] == 20 and r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] for r in res["latency"])
    assert res["machine"]["cpu"] and "onnxruntime" in res["machine"]["versions"]


def test_bench_reports_fingerprint_bound_and_percentiles(tmp_path, teacher_run):
    path = export(teacher_run)  # beside its model.pt, which the torch runtime runs
    rep = bench([path], runtimes="ort,torch", threads="1", runs=30, warmup=2, throughput_batch=8)
    assert len(rep.results) == 2
    r = next(r for r in rep.results if r.runtime == "ort")
    assert r.runs == 30 and r.median_ms <= r.p90_ms <= r.p99_ms
    assert r.bound_ms > 0 and r.bound_ratio == pytest.approx(r.median_ms / r.bound_ms)
    assert r.throughput_ips > 0 and r.macs == count_macs(path)
    assert "measured on" in str(rep) and rep.to_dict()["machine"]["usable_cores"] >= 1


def test_evaluate_artifact_and_bad_inputs(tmp_path, pipeline_run, teacher_run, cifar10_dir, cifar100_dir, monkeypatch):
    path = export(pipeline_run)
    acc = evaluate_target(path, runtime="openvino")
    assert acc.runtime == "openvino" and acc.images == 256
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not an onnx model at all")
    with pytest.raises(PQDError, match="is not an ONNX model"):
        evaluate_target(junk, dataset="cifar10", data_dir=cifar10_dir)
    with pytest.raises(PQDError, match="predicts 10 classes but cifar100 has 100"):
        evaluate_target(path, dataset="cifar100", data_dir=cifar100_dir)
    with pytest.raises(PQDError, match="unknown runtime 'tensorrt'"):
        evaluate_target(path, runtime="tensorrt")
    with pytest.raises(PQDError, match="never quantized"):
        export(teacher_run, tmp_path / "x.onnx", int8=True)
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if OpenVINO were not installed
    with pytest.raises(PQDError, match="OpenVINO is not installed"):
        open_session(path, "openvino")


def test_full_size_macs(tmp_path):
    path = export_model(create_model("resnet18", 10).eval(), tmp_path / "r18.onnx")
    assert count_macs(path) == pytest.approx(0.556e9, rel=0.01)
