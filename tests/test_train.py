import json

import pytest
import torch

import pqd.training.loop as loop
from conftest import TINY_TRAIN
from pqd import train
from pqd.errors import PQDError
from pqd.training import load_model
from pqd.training.loop import lr_at


def _cfg(data_dir, **train_over):
    return {"model": "resnet18", "model_options": {"width": 0.125},
            "data": {"dataset": "cifar10", "data_dir": str(data_dir)},
            "train": {**TINY_TRAIN, **train_over}, "device": "cpu"}


def test_training_learns_and_writes_a_run_directory(teacher_run):
    metrics = json.loads((teacher_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 35.0  # chance is 10%
    lines = (teacher_run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[-1])["epoch"] == 5
    assert (teacher_run / "config.yaml").exists() and (teacher_run / "model.pt").exists()
    assert not (teacher_run / "checkpoint.pt").exists()  # removed once the run is finished
    model, meta = load_model(teacher_run)
    assert meta["model"] == "resnet18" and meta["options"]["width"] == 0.125


def test_resume_gives_the_same_result(tmp_path, cifar10_dir, monkeypatch):
    full = tmp_path / "full"
    train(_cfg(cifar10_dir), out=full)

    part = tmp_path / "part"
    real_save, saves = loop.atomic_save, []

    def interrupting_save(obj, path):
        real_save(obj, path)
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt  # the machine dies right after the epoch-2 checkpoint

    monkeypatch.setattr(loop, "atomic_save", interrupting_save)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(cifar10_dir), out=part)
    monkeypatch.setattr(loop, "atomic_save", real_save)
    assert torch.load(part / "checkpoint.pt", weights_only=False)["epoch"] == 2
    with pytest.raises(PQDError, match="already holds a run: pass --resume"):
        train(_cfg(cifar10_dir), out=part)
    train(out=part, resume=True)
    a, _ = load_model(full)
    b, _ = load_model(part)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert len((part / "metrics.jsonl").read_text().splitlines()) == 5


def test_cifar100_and_validation_split(tmp_path, cifar100_dir):
    res = train({"model": "vgg16_bn", "model_options": {"width": 0.125},
                 "data": {"dataset": "cifar100", "data_dir": str(cifar100_dir), "val_size": 80},
                 "train": {**TINY_TRAIN, "epochs": 1}, "device": "cpu"}, out=tmp_path / "c100")
    assert res.dataset == "cifar100"
    row = json.loads((tmp_path / "c100" / "metrics.jsonl").read_text().splitlines()[0])
    assert "val_acc" in row and "test_acc" not in row


def test_bad_config_and_device(tmp_path, cifar10_dir):
    with pytest.raises(PQDError, match=r"train config: train.lr: Input should be greater than 0 \(got -1"):
        train(_cfg(cifar10_dir, lr=-1), out=tmp_path / "a")
    with pytest.raises(PQDError, match="train config: train.epochz: unknown field"):
        train(_cfg(cifar10_dir, epochz=1), out=tmp_path / "b")
    bad = _cfg(cifar10_dir)
    bad["device"] = "tpu"
    with pytest.raises(PQDError, match="unknown device 'tpu'"):
        train(bad, out=tmp_path / "c")
    if not torch.cuda.is_available():
        bad["device"] = "cuda"
        with pytest.raises(PQDError, match="no CUDA device"):
            train(bad, out=tmp_path / "d")


def test_checkpoint_from_another_model_is_refused(tmp_path, teacher_run):
    blob = torch.load(teacher_run / "model.pt", weights_only=True)
    blob["model"] = "vgg16_bn"
    torch.save(blob, tmp_path / "model.pt")
    with pytest.raises(PQDError, match="does not match model 'vgg16_bn'.*another model"):
        load_model(tmp_path / "model.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PQDError, match="not a readable pqd model file"):
        load_model(tmp_path / "junk.pt")


def test_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 10, 0.1, 0.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.001
