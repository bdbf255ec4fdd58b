"""CPU runtimes that execute an exported artifact: ONNX Runtime, OpenVINO, and eager PyTorch for reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pqd.errors import PQDError

RUNTIMES = ("ort", "openvino", "torch")


class Session:
    """A loaded model in one runtime: ``run(x)`` maps a float32 NCHW batch in [0, 1] to logits."""

    name = ""

    def __init__(self, path: Path, threads: int | None):
        self.path, self.threads = path, threads

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check_input(self, ds) -> None:
        """Refuse a dataset the model was not built for (image size, channels, number of classes)."""
        x = ds.images[:1].float().div(255.0).numpy()
        shape = self.input_shape()
        if shape is not None and [d for d in shape[1:]] != list(x.shape[1:]):
            raise PQDError(f"{self.path} takes input {shape[1:]} but {ds.name} images are {list(x.shape[1:])}")
        out = self.run(x)
        if out.shape[-1] != ds.num_classes:
            raise PQDError(f"{self.path} predicts {out.shape[-1]} classes but {ds.name} has {ds.num_classes}: "
                           "pass the dataset it was trained on")

    def input_shape(self) -> list | None:
        return None


def check_onnx(path: str | Path) -> Path:
    import onnx

    path = Path(path)
    if not path.is_file():
        raise PQDError(f"{path} not found: export one with `pqd export RUN_DIR`")
    try:
        onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001  (protobuf raises several types)
        raise PQDError(f"{path} is not an ONNX model ({e.__class__.__name__}); export one with `pqd export RUN_DIR`") from None
    return path


class OrtSession(Session):
    name = "ort"

    def __init__(self, path, threads):
        super().__init__(path, threads)
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads:
            so.intra_op_num_threads = threads
        # ONNX Runtime's default thread spinning is kept: it is what users get, and it is ~15% faster for int8
        # at batch 1 here. The latency harness pauses between variants so idle pools stop spinning.
        try:
            self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise PQDError(f"ONNX Runtime cannot load {path}: {str(e).splitlines()[0][:200]}") from None
        self.input_name = self.sess.get_inputs()[0].name

    def input_shape(self):
        return self.sess.get_inputs()[0].shape

    def run(self, x):
        return self.sess.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


class OpenVinoSession(Session):
    """OpenVINO on the CPU with FP32 inference precision for the float parts (its default on CPUs with BF16
    support is BF16, which is faster but numerically different); int8 parts run in u8/s8."""

    name = "openvino"

    def __init__(self, path, threads):
        super().__init__(path, threads)
        try:
            import openvino as ov
        except ImportError:
            raise PQDError("OpenVINO is not installed: pip install 'pqd[openvino]', or use --runtime ort") from None
        core = ov.Core()
        cfg = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = threads
        self.model = core.read_model(str(path))
        self.compiled = core.compile_model(self.model, "CPU", cfg)
        self.request = self.compiled.create_infer_request()

    def input_shape(self):
        ps = self.model.inputs[0].get_partial_shape()
        return [d.get_length() if d.is_static else None for d in ps]

    def run(self, x):
        self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return self.request.get_output_tensor(0).data.copy()


class TorchSession(Session):
    """Eager PyTorch on the model the artifact came from (its run's model.pt, in deploy form when quantized).
    A reference point only: quantized models run here with float kernels on dequantized weights."""

    name = "torch"

    def __init__(self, path, threads):
        super().__init__(path, threads)
        import torch

        from pqd.deploy.convert import to_deploy
        from pqd.quant import is_quantized
        from pqd.training import load_model

        src = path if path.suffix == ".pt" else path.parent / "model.pt"
        if not src.is_file():
            raise PQDError(f"--runtime torch needs the PyTorch model beside {path} ({src} not found)")
        model, _ = load_model(src)
        self.model = to_deploy(model) if is_quantized(model) else model.eval()
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch

    def run(self, x):
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def open_session(path: str | Path, runtime: str = "ort", *, threads: int | None = None) -> Session:
    if runtime not in RUNTIMES:
        raise PQDError(f"unknown runtime '{runtime}': choose {', '.join(RUNTIMES)}")
    path = Path(path)
    if runtime != "torch" or path.suffix == ".onnx":
        check_onnx(path)
    return {"ort": OrtSession, "openvino": OpenVinoSession, "torch": TorchSession}[runtime](path, threads)
