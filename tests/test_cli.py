import json

import pytest

from pqd.cli import main


@pytest.mark.parametrize("cmd", [[], ["train"], ["eval"], ["compress"]])
def test_help(cmd, capsys):
    assert main([*cmd, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_train_then_eval(tmp_path, cifar10_dir, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--out", str(out), "--data-dir", str(cifar10_dir), "--width", "0.125", "--epochs", "1",
               "--batch-size", "64", "--amp", "off", "--device", "cpu"])
    assert rc == 0
    assert "test_accuracy" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    assert main(["eval", str(out), "--subset", "100"]) == 0
    assert "on 100 images" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["train", "--out", "{tmp}/x", "--model", "alexnet"], "unknown model 'alexnet'"),
    (["train", "--out", "{tmp}/x", "--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["train", "--out", "{tmp}/x", "--data-dir", "{tmp}/nothing"], "not found: pass --download"),
    (["eval", "{tmp}/nothing"], "not found"),
    (["compress", "--out", "{tmp}/c", "--recipe", "{tmp}/none.yaml", "--teacher", "{tmp}"], "recipe .* not found"),
])
def test_errors_are_one_line(tmp_path, cifar10_dir, capsys, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    if "--data-dir" not in args and args[0] == "train":
        args += ["--data-dir", str(cifar10_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pqd: error:") and "\n" not in err and "Traceback" not in err
    import re
    assert re.search(message, err)
