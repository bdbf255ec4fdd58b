"""Checks on real CIFAR-10 (opt-in: PQD_DATA=DIR holding cifar-10-batches-py; a few minutes on 2 cores).

The exported INT8 artifact must agree with the QAT model it came from on >= 99% of the 10,000 test images and
match its accuracy within 0.3 points (issue 4).
"""

import os

import numpy as np
import pytest

from pqd import compress, load_dataset, load_model, ordering_recipe, train
from pqd.deploy.onnx import export
from pqd.deploy.runtime import open_session
from pqd.measure.accuracy import predict_onnx, predict_torch

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real_pipeline(tmp_path_factory):
    data = os.environ["PQD_DATA"]
    root = tmp_path_factory.mktemp("real")
    train({"model": "resnet18", "model_options": {"width": 0.5}, "device": "cpu",
           "data": {"dataset": "cifar10", "data_dir": data, "subset": 20000},
           "train": {"epochs": 4, "lr": 0.1, "warmup_epochs": 0.5}}, out=root / "teacher")
    compress(ordering_recipe(("prune", "quantize", "distill"), {"prune": 1, "quantize": 1, "distill": 1},
                             prune={"sparsity": 0.8}),
             teacher=root / "teacher", out=root / "pqd", device="cpu", subset=20000)
    return root / "pqd", data


def test_int8_artifact_is_faithful_on_the_cifar10_test_set(real_pipeline):
    run, data = real_pipeline
    model, _ = load_model(run)
    ds = load_dataset("cifar10", data, "test")
    for runtime in ("ort", "openvino"):
        pred_art = predict_onnx(open_session(export(run), runtime), ds)
        pred_qat = predict_torch(model, ds)
        labels = ds.labels.numpy()
        agreement = (pred_art == pred_qat).mean()
        gap = abs((pred_art == labels).mean() - (pred_qat == labels).mean()) * 100
        print(f"{runtime}: agreement {agreement * 100:.2f}%, accuracy gap {gap:.2f} points, "
              f"artifact accuracy {(pred_art == labels).mean() * 100:.2f}%")
        assert agreement >= 0.99 and gap <= 0.3
        assert (pred_art == labels).mean() > 0.5
