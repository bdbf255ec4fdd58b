"""Shared fixtures: tiny CIFAR-format datasets written by the tests themselves, and tiny trained runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest


def make_cifar(root: Path, name: str = "cifar10", n_train: int = 512, n_test: int = 256, seed: int = 0,
               num_classes: int | None = None) -> Path:
    """Write a small learnable dataset in the official python layout: each class is a colour/stripe pattern
    plus noise. Returns ``root``."""
    rng = np.random.default_rng(seed)
    k = num_classes or (10 if name == "cifar10" else 100)
    protos = rng.integers(0, 256, size=(k, 3, 1, 1)).astype(np.float32)
    stripes = np.zeros((k, 1, 32, 32), np.float32)
    for c in range(k):
        period = 2 + c % 7
        stripes[c, 0, :, :] = (np.arange(32)[None, :] // period % 2) * 60 * (1 if c % 2 else -1)

    def images(n):
        labels = rng.integers(0, k, size=n)
        x = protos[labels] * 0.7 + stripes[labels] + rng.normal(0, 25, size=(n, 3, 32, 32))
        return np.clip(x, 0, 255).astype(np.uint8).reshape(n, 3072), labels

    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        per = n_train // 5
        for i in range(5):
            x, y = images(per)
            with open(folder / f"data_batch_{i + 1}", "wb") as f:
                pickle.dump({b"data": x, b"labels": y.tolist(), b"batch_label": b"x"}, f)
        x, y = images(n_test)
        with open(folder / "test_batch", "wb") as f:
            pickle.dump({b"data": x, b"labels": y.tolist()}, f)
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        for split, n in (("train", n_train), ("test", n_test)):
            x, y = images(n)
            with open(folder / split, "wb") as f:
                pickle.dump({b"data": x, b"fine_labels": y.tolist(), b"coarse_labels": (y // 5).tolist()}, f)
    return root


@pytest.fixture(scope="session")
def cifar10_dir(tmp_path_factory) -> Path:
    return make_cifar(tmp_path_factory.mktemp("c10"), "cifar10")


@pytest.fixture(scope="session")
def cifar100_dir(tmp_path_factory) -> Path:
    return make_cifar(tmp_path_factory.mktemp("c100"), "cifar100", n_train=400, n_test=200)


TINY_TRAIN = {"epochs": 5, "batch_size": 64, "lr": 0.05, "warmup_epochs": 0.5, "amp": "off"}


@pytest.fixture(scope="session")
def teacher_run(tmp_path_factory, cifar10_dir) -> Path:
    """A tiny ResNet-18 trained for a few epochs on the tiny dataset."""
    from pqd import train

    out = tmp_path_factory.mktemp("runs") / "teacher"
    train({"model": "resnet18", "model_options": {"width": 0.125},
           "data": {"dataset": "cifar10", "data_dir": str(cifar10_dir)}, "train": TINY_TRAIN, "device": "cpu"},
          out=out)
    return out


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory, teacher_run) -> Path:
    """The paper's order (prune 50% -> QAT -> KD) on the tiny teacher."""
    from pqd import compress, ordering_recipe

    out = tmp_path_factory.mktemp("runs") / "pipeline"
    compress(ordering_recipe(("prune", "quantize", "distill"), {"prune": 2, "quantize": 2, "distill": 1},
                             train={"batch_size": 64, "amp": "off", "lr": 0.02}, prune={"sparsity": 0.5}),
             teacher=teacher_run, out=out, device="cpu")
    return out


def pytest_collection_modifyitems(config, items):
    """Opt-in tests: `slow` run with PQD_SLOW=1, `realdata` with PQD_DATA=DIR (holding cifar-10-batches-py)."""
    import os

    for item in items:
        if "slow" in item.keywords and not os.environ.get("PQD_SLOW"):
            item.add_marker(pytest.mark.skip(reason="slow: set PQD_SLOW=1"))
        if "realdata" in item.keywords and not os.environ.get("PQD_DATA"):
            item.add_marker(pytest.mark.skip(reason="real CIFAR-10: set PQD_DATA=DIR"))
