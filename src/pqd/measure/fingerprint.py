"""Where a figure was measured: CPU model, ISA flags, cores, runtime and pqd versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model, flags


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def fingerprint() -> dict:
    model, flags = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": model,
        "isa": [f for f in ISA_FLAGS if f in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("pqd", "torch", "onnxruntime", "openvino", "onnx")},
    }


def describe(fp: dict) -> str:
    """One line for reports: 'AMD EPYC ... (2 cores; avx512_vnni, ...), onnxruntime 1.32.0, openvino ...'."""
    v = fp["versions"]
    rt = ", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "openvino", "torch") if v.get(k))
    return f"{fp['cpu']} ({fp['usable_cores']} cores; {' '.join(fp['isa']) or 'no SIMD flags read'}); {rt}; pqd {v.get('pqd')}"
