"""The compact checkpoint (.pqdz): what the deployed model needs, stored as small as it honestly gets.

Layout: zstd( 8-byte header length | JSON header | tensor payloads ). A tensor with many zeros is stored as a
bitmap of its non-zeros (np.packbits) followed by the non-zero values; others are stored raw. For a quantized run
the tensors are the deploy form (int8 weights, per-channel scales, float biases) and the header holds the
activation scales / zero points, so ``load_compact`` rebuilds exactly the model that was exported. For a float run
they are the FP32 weights and batch-norm buffers.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch
import zstandard
from torch import nn

from pqd.deploy.convert import DeployQDQ, to_deploy
from pqd.errors import PQDError
from pqd.quant import is_quantized

MAGIC = "pqd-compact-1"
SPARSE_ABOVE = 0.3  # zero fraction above which the bitmap encoding is used


def _deploy_state(model: nn.Module) -> tuple[dict, dict]:
    acts = {n: [m.scale, m.zero_point] for n, m in model.named_modules() if isinstance(m, DeployQDQ)}
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("weight_mask")}
    return state, acts


def save_compact(model: nn.Module, path: str | Path, *, meta: dict, level: int = 19) -> Path:
    """Write ``model`` (a pqd model as trained; converted to its deploy form here) to ``path``."""
    path = Path(path)
    quantized = is_quantized(model)
    deploy = to_deploy(model) if quantized else model.eval()
    state, acts = _deploy_state(deploy)
    tensors, chunks, offset = [], [], 0
    for name, t in state.items():
        a = t.detach().cpu().contiguous().numpy()
        nz = a != 0
        entry = {"name": name, "dtype": str(a.dtype), "shape": list(a.shape)}
        if a.size >= 64 and 1 - nz.mean() > SPARSE_ABOVE:
            blob = np.packbits(nz.ravel()).tobytes() + a[nz].tobytes()
            entry["encoding"] = "bitmap"
        else:
            blob = a.tobytes()
            entry["encoding"] = "raw"
        entry["offset"], entry["length"] = offset, len(blob)
        offset += len(blob)
        tensors.append(entry)
        chunks.append(blob)
    header = json.dumps({"format": MAGIC, "form": "int8" if quantized else "fp32", "activations": acts,
                         "tensors": tensors, **meta}).encode()
    raw = struct.pack("<Q", len(header)) + header + b"".join(chunks)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(zstandard.ZstdCompressor(level=level).compress(raw))
    tmp.replace(path)
    return path


def load_compact(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the deployed model from a compact checkpoint. Returns (model in eval mode, header)."""
    from pqd.training.runs import build_model

    path = Path(path)
    try:
        raw = zstandard.ZstdDecompressor().decompress(path.read_bytes(), max_output_size=1 << 32)
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
    except (OSError, zstandard.ZstdError, struct.error, ValueError) as e:
        raise PQDError(f"{path} is not a pqd compact checkpoint ({e.__class__.__name__})") from None
    if header.get("format") != MAGIC:
        raise PQDError(f"{path} is not a pqd compact checkpoint (format {header.get('format')!r})")
    payload = memoryview(raw)[8 + n:]
    state = {}
    for t in header["tensors"]:
        blob = payload[t["offset"]:t["offset"] + t["length"]]
        dtype, shape = np.dtype(t["dtype"]), t["shape"]
        size = int(np.prod(shape)) if shape else 1
        if t["encoding"] == "bitmap":
            nbits = (size + 7) // 8
            nz = np.unpackbits(np.frombuffer(blob[:nbits], np.uint8), count=size).astype(bool)
            a = np.zeros(size, dtype)
            a[nz] = np.frombuffer(blob[nbits:], dtype)
        else:
            a = np.frombuffer(blob, dtype).copy()
        state[t["name"]] = torch.from_numpy(a.reshape(shape))
    if header["form"] == "int8":
        model = to_deploy(build_model(header["model"], header["num_classes"], header["options"],
                                      [x for x in header["transforms"] if x["stage"] != "prune"]))
        for name, (scale, zp) in header["activations"].items():
            m = model.get_submodule(name)
            m.scale, m.zero_point = scale, zp
    else:
        model = build_model(header["model"], header["num_classes"], header["options"], [])
    model.load_state_dict(state)
    return model.eval(), header
