"""Batch-1 latency (and optional batch-N throughput) of artifacts in CPU runtimes.

Method: every (model, runtime, threads) variant is loaded, warmed up, then timed in interleaved rounds (a block
of runs of each variant in turn, with a short pause between variants), so that drift of a noisy machine hits all
variants alike. Reported: median, p90, p99 over at least ``runs`` timed runs (or until ``max_seconds``).
Each result carries the machine fingerprint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pqd.deploy.runtime import RUNTIMES, open_session
from pqd.errors import PQDError
from pqd.measure.bound import count_macs, graph_is_int8, measure_peak
from pqd.measure.fingerprint import describe, fingerprint


@dataclass
class Latency:
    model: str
    runtime: str
    threads: int
    batch: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    runs: int
    macs: int
    int8: bool
    bound_ms: float | None = None
    bound_ratio: float | None = None
    throughput_ips: float | None = None


@dataclass
class BenchReport:
    results: list[Latency]
    machine: dict = field(default_factory=fingerprint)

    def __str__(self) -> str:
        head = (f"{'model':<34}{'runtime':>9}{'thr':>4}{'median ms':>11}{'p90 ms':>9}{'p99 ms':>9}"
                f"{'MMACs':>8}{'bound ms':>10}{'x bound':>8}")
        lines = [f"measured on {describe(self.machine)}", head]
        for r in self.results:
            name = r.model if len(r.model) <= 33 else "..." + r.model[-30:]
            lines.append(f"{name:<34}{r.runtime:>9}{r.threads:>4}{r.median_ms:>11.3f}{r.p90_ms:>9.3f}{r.p99_ms:>9.3f}"
                         f"{r.macs / 1e6:>8.0f}{(r.bound_ms or float('nan')):>10.3f}{(r.bound_ratio or float('nan')):>8.2f}"
                         + (f"  {r.throughput_ips:.0f} img/s @batch {r.batch}" if r.throughput_ips else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"machine": self.machine, "results": [asdict(r) for r in self.results]}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def _parse_list(value, kind, name):
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    try:
        return [kind(v) for v in value]
    except ValueError:
        raise PQDError(f"--{name}: expected a comma-separated list, got {value!r}") from None


def bench(models, *, runtimes="ort", threads="1", runs: int = 200, warmup: int = 20, block: int = 20,
          max_seconds: float | None = None, throughput_batch: int | None = None, bound: bool = True,
          pause_s: float = 0.05, image_size: int = 32) -> BenchReport:
    """Time each ONNX model in each runtime at each thread count, interleaved. See the module docstring."""
    models = [Path(m) for m in models]
    runtimes = _parse_list(runtimes, str, "runtime")
    threads = _parse_list(threads, int, "threads")
    for r in runtimes:
        if r not in RUNTIMES:
            raise PQDError(f"unknown runtime '{r}': choose from {', '.join(RUNTIMES)}")
    if not models:
        raise PQDError("no model given: pass one or more .onnx files")
    rng = np.random.default_rng(0)
    x1 = rng.random((1, 3, image_size, image_size), dtype=np.float32)
    graph = {m: (count_macs(m), graph_is_int8(m)) for m in models}  # read each graph once, not per variant
    results = []
    for t in threads:
        variants = []
        for m in models:
            for r in runtimes:
                s = open_session(m, r, threads=t)
                for _ in range(warmup):
                    s.run(x1)
                variants.append((m, r, s, []))
        deadline = time.perf_counter() + max_seconds if max_seconds else None
        while any(len(v[3]) < runs for v in variants):
            for m, r, s, times in variants:
                if len(times) >= runs:
                    continue
                time.sleep(pause_s)
                for _ in range(min(block, runs - len(times))):
                    t0 = time.perf_counter()
                    s.run(x1)
                    times.append(time.perf_counter() - t0)
            if deadline and time.perf_counter() > deadline and all(len(v[3]) >= min(runs, 3 * block) for v in variants):
                break
        for m, r, s, times in variants:
            ms = np.array(times) * 1e3
            macs, int8 = graph[m]
            lat = Latency(model=str(m), runtime=r, threads=t, batch=1, median_ms=float(np.median(ms)),
                          p90_ms=float(np.percentile(ms, 90)), p99_ms=float(np.percentile(ms, 99)), runs=len(ms),
                          macs=macs, int8=int8)
            if bound:
                peak = measure_peak(t, int8)
                lat.bound_ms = macs / peak * 1e3
                lat.bound_ratio = lat.median_ms / lat.bound_ms
            if throughput_batch:
                xb = rng.random((throughput_batch, 3, image_size, image_size), dtype=np.float32)
                s.run(xb)
                tb = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    s.run(xb)
                    tb.append(time.perf_counter() - t0)
                lat.throughput_ips = throughput_batch / float(np.median(tb))
            results.append(lat)
        del variants
    return BenchReport(results)
