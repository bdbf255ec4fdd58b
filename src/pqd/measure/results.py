"""The triad for one run, measured on its artifact: accuracy, size on disk, latency (plus sparsity and MACs).

``measure_run`` exports the run (ONNX + compact checkpoint), runs the artifact on the test set, checks it against
the PyTorch model it came from, measures sizes and latency, and writes RUN/results.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml

from pqd.data import load_dataset
from pqd.deploy.compact import save_compact
from pqd.deploy.onnx import export_model, onnx_int8_weights
from pqd.deploy.runtime import open_session
from pqd.errors import PQDError
from pqd.measure.accuracy import predict_onnx, predict_torch
from pqd.measure.bound import count_macs
from pqd.measure.fingerprint import fingerprint
from pqd.measure.latency import bench
from pqd.measure.size import sizes
from pqd.quant import QConvBN, QLinear, is_quantized
from pqd.stages.prune import sparsity_report
from pqd.training import load_model

RESULTS_FILE = "results.json"


def _masked_int8_sparsity(model, int8: dict[str, np.ndarray]) -> float | None:
    zeros = total = 0
    for name, m in model.named_modules():
        inner = m.conv if isinstance(m, QConvBN) else m.linear if isinstance(m, QLinear) else None
        if inner is not None and hasattr(inner, "weight_mask"):
            w = int8.get(f"{name}.weight_int8")
            if w is None:
                return None
            zeros += int((w == 0).sum())
            total += w.size
    return zeros / total if total else None


def _data(run: Path) -> dict:
    cfg = run / "config.yaml"
    return (yaml.safe_load(cfg.read_text()) or {}).get("data", {}) if cfg.exists() else {}


def measure_run(run: str | Path, *, runtimes=("ort",), threads=(1,), data_dir: str | Path | None = None,
                test_subset: int | None = None, runs: int = 200, warmup: int = 20, bound: bool = True,
                latency: bool = True) -> dict:
    """Measure the triad of a finished run on its exported artifact; writes and returns RUN/results.json.
    ``latency=False`` leaves the timing to a later interleaved run over many artifacts (the study does this)."""
    run = Path(run)
    model, meta = load_model(run)
    data = _data(run)
    dataset, data_dir = data.get("dataset"), data_dir or data.get("data_dir")
    if not dataset or not data_dir:
        raise PQDError(f"{run} has no data settings in config.yaml: is it a run directory written by pqd?")
    ds = load_dataset(dataset, data_dir, "test", subset=test_subset or data.get("test_subset"))
    quantized = is_quantized(model)
    onnx_path = export_model(model, run / "model.onnx")
    compact_path = save_compact(model, run / "model.pqdz", meta={k: meta[k] for k in
                                                                 ("model", "num_classes", "options", "transforms")})
    session = open_session(onnx_path, "ort")
    session.check_input(ds)
    pred_art = predict_onnx(session, ds)
    pred_torch = predict_torch(model, ds)
    labels = ds.labels.numpy()
    acc_art = 100.0 * float((pred_art == labels).mean())
    acc_torch = 100.0 * float((pred_torch == labels).mean())
    int8 = onnx_int8_weights(onnx_path) if quantized else {}
    sp = sparsity_report(model)
    result = {
        "run": str(run),
        "model": meta["model"],
        "dataset": dataset,
        "transforms": [t["stage"] for t in meta["transforms"]],
        "precision": "int8" if quantized else "fp32",
        "accuracy": acc_art,
        "accuracy_runtime": "ort",
        "accuracy_torch": acc_torch,
        "agreement": 100.0 * float((pred_art == pred_torch).mean()),
        "test_images": len(ds),
        "mask_sparsity": sp["mask_sparsity"],
        "weight_sparsity": sp["weight_sparsity"],
        "int8_zero_fraction": (sum(int((w == 0).sum()) for w in int8.values()) / sum(w.size for w in int8.values()))
        if int8 else None,
        "int8_masked_sparsity": _masked_int8_sparsity(model, int8) if int8 else None,
        "params": sum(p.numel() for n, p in model.named_parameters()),
        "macs": count_macs(onnx_path),
        "sizes": sizes(model, onnx_path, compact_path).to_dict(),
        "onnx": str(onnx_path),
        "compact": str(compact_path),
    }
    result["latency"], result["machine"] = [], fingerprint()
    if latency:
        report = bench([onnx_path], runtimes=runtimes, threads=threads, runs=runs, warmup=warmup, bound=bound)
        attach_latency([result], report)
    (run / RESULTS_FILE).write_text(json.dumps(result, indent=2))
    return result


def attach_latency(results: list[dict], report) -> None:
    """Put the rows of a BenchReport into the results whose 'onnx' file they timed (with the fingerprint)."""
    for res in results:
        res["latency"] = [{k: v for k, v in asdict(r).items() if k != "model"} for r in report.results
                          if Path(r.model) == Path(res["onnx"])]
        res["machine"] = report.machine


def load_results(run: str | Path) -> dict:
    path = Path(run) / RESULTS_FILE if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise PQDError(f"{path} not found: run `pqd measure {run}` first")
    return json.loads(path.read_text())


def latency_of(result: dict, runtime: str = "ort", threads: int | None = None) -> float | None:
    rows = [r for r in result.get("latency", []) if r["runtime"] == runtime and (threads is None or r["threads"] == threads)]
    if not rows:
        return None
    return min(rows, key=lambda r: -r["threads"])["median_ms"] if threads is None else rows[0]["median_ms"]


def runs_table(results: list[dict]) -> str:
    """A plain-text table of measured runs (what `pqd report RUN...` prints)."""
    lat_keys = sorted({(r["runtime"], r["threads"]) for res in results for r in res.get("latency", [])})
    head = f"{'run':<28}{'prec':>5}{'acc %':>7}{'agree %':>8}{'sparsity':>9}{'FP32 MiB':>9}{'ONNX MiB':>9}{'compact':>8}"
    head += "".join(f"{rt + '/' + str(t) + ' ms':>11}" for rt, t in lat_keys)
    lines = [head]
    for res in results:
        s = res["sizes"]
        name = Path(res["run"]).name[-27:]
        line = (f"{name:<28}{res['precision']:>5}{res['accuracy']:>7.2f}{res['agreement']:>8.1f}"
                f"{res['mask_sparsity']:>9.3f}{s['fp32_checkpoint_mib']:>9.2f}{s['onnx_mib']:>9.2f}{s['compact_mib']:>8.2f}")
        for rt, t in lat_keys:
            v = next((r["median_ms"] for r in res.get("latency", []) if r["runtime"] == rt and r["threads"] == t), None)
            line += f"{v:>11.3f}" if v is not None else f"{'-':>11}"
        lines.append(line)
    return "\n".join(lines)
