import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from conftest import make_cifar
from pqd.data import augment, batches, download, load_dataset
from pqd.errors import PQDError


def test_reads_official_layouts(cifar10_dir, cifar100_dir):
    tr = load_dataset("cifar10", cifar10_dir, "train")
    te = load_dataset("cifar10", cifar10_dir, "test")
    assert tr.images.shape == (510, 3, 32, 32) and tr.images.dtype == torch.uint8
    assert te.images.shape == (256, 3, 32, 32) and tr.num_classes == 10
    c100 = load_dataset("cifar100", cifar100_dir, "train")
    assert c100.num_classes == 100 and len(c100) == 400 and int(c100.labels.max()) < 100


def test_val_split_is_held_out_and_subset(cifar10_dir):
    tr = load_dataset("cifar10", cifar10_dir, "train", val_size=100)
    va = load_dataset("cifar10", cifar10_dir, "val", val_size=100)
    full = load_dataset("cifar10", cifar10_dir, "train")
    assert len(tr) == 410 and len(va) == 100
    rows = {bytes(x.numpy()) for x in full.images}
    assert {bytes(x.numpy()) for x in tr.images}.isdisjoint({bytes(x.numpy()) for x in va.images})
    assert all(bytes(x.numpy()) in rows for x in va.images)
    assert len(load_dataset("cifar10", cifar10_dir, "train", subset=64)) == 64
    with pytest.raises(PQDError, match="needs --val-size"):
        load_dataset("cifar10", cifar10_dir, "val")


def _write(folder, name, obj_bytes):
    (folder / name).write_bytes(obj_bytes)


@pytest.mark.parametrize("case,message", [
    ("missing", "not found: pass --download"),
    ("truncated", "truncated or corrupt"),
    ("shape", r"expected \(N, 3072\) uint8"),
    ("labels", r"outside \[0, 9\]"),
    ("count", "labels for"),
])
def test_bad_data_gives_one_line_errors(tmp_path, case, message):
    root = make_cifar(tmp_path, n_train=50, n_test=10)
    f = root / "cifar-10-batches-py" / "data_batch_2"
    if case == "missing":
        f.unlink()
    elif case == "truncated":
        f.write_bytes(f.read_bytes()[:1000])
    else:
        d = pickle.loads(f.read_bytes())
        if case == "shape":
            d[b"data"] = d[b"data"].reshape(-1, 32, 32, 3)
        elif case == "labels":
            d[b"labels"][0] = 10
        else:
            d[b"labels"] = d[b"labels"][:-1]
        f.write_bytes(pickle.dumps(d))
    with pytest.raises(PQDError, match=message) as e:
        load_dataset("cifar10", root, "train")
    assert "\n" not in str(e.value) and "data_batch" in str(e.value)


def test_unknown_dataset(tmp_path):
    with pytest.raises(PQDError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", tmp_path)


def _archive(tmp_path, root):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    path = tmp_path / "served.tar.gz"
    path.write_bytes(buf.getvalue())
    return path, hashlib.md5(buf.getvalue()).hexdigest()


def test_download_verifies_md5_and_extracts(tmp_path):
    src = make_cifar(tmp_path / "src", n_train=50, n_test=10)
    archive, md5 = _archive(tmp_path, src)
    dest = tmp_path / "dest"
    folder = download("cifar10", dest, url=archive.as_uri(), md5=md5)
    assert (folder / "test_batch").is_file()
    assert len(load_dataset("cifar10", dest, "test")) == 10
    other = tmp_path / "other"
    with pytest.raises(PQDError, match="MD5 .* expected 0+: the download is corrupt"):
        download("cifar10", other, url=archive.as_uri(), md5="0" * 32)


def test_offline_download_says_where_to_put_files(tmp_path):
    with pytest.raises(PQDError, match="offline, put cifar-10-python.tar.gz"):
        download("cifar10", tmp_path, url="http://127.0.0.1:9/cifar-10-python.tar.gz")


def test_augment_is_a_padded_crop_and_flip():
    x = torch.rand(64, 3, 32, 32)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(64):  # every output is some crop of the padded image, possibly mirrored
        found = any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(2))
                    for oy in range(9) for ox in range(9) for c in [padded[i, :, oy:oy + 32, ox:ox + 32]])
        assert found
    assert not torch.equal(out, x)


def test_batches_shapes_and_ranges(cifar10_dir):
    ds = load_dataset("cifar10", cifar10_dir, "test")
    got = list(batches(ds, 100))
    assert [len(y) for _, y in got] == [100, 100, 56]
    x, _ = got[0]
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert np.allclose(x[0].numpy() * 255, ds.images[0].numpy())
    train = list(batches(ds, 100, train=True, generator=torch.Generator().manual_seed(0)))
    assert [len(y) for _, y in train] == [100, 100]  # ragged last batch dropped in training
