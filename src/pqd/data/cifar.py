"""CIFAR-10 / CIFAR-100 from the official python layout.

Images are kept as one uint8 tensor (N, 3, 32, 32). Batches are cut from it, moved to the training device and
only there converted to float, cropped and flipped, so augmentation costs one batched op instead of a Python call
per image. Models normalise their own input (see ``pqd.models.layers.Normalize``): batches are RGB in [0, 1],
exactly what the exported ONNX model takes.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from pqd.errors import PQDError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # folder inside data_dir once extracted
    archive: str
    url: str
    md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        name="cifar10",
        folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        label_key="labels",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        folder="cifar-100-python",
        archive="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_files=("train",),
        test_files=("test",),
        label_key="fine_labels",
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
    ),
}


@dataclass
class ArrayDataset:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64, plus what a model needs to know about them."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str = ""
    split: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise PQDError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(name: str, data_dir: str | Path, *, url: str | None = None, md5: str | None = None) -> Path:
    """Fetch the official archive into ``data_dir``, verify its MD5 and extract it. Returns the dataset folder.

    An archive already in ``data_dir`` is verified and used without downloading. ``url``/``md5`` override the
    official ones (mirrors, tests).
    """
    spec = get_spec(name)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    url = url or spec.url
    md5 = md5 or spec.md5
    archive = data_dir / spec.archive
    if not archive.exists():
        tmp = archive.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise PQDError(
                f"could not download {name} from {url} ({e.__class__.__name__}: {e}); offline, put "
                f"{spec.archive} or its extracted folder {spec.folder}/ into {data_dir}"
            ) from None
        tmp.replace(archive)
    got = _md5(archive)
    if got != md5:
        raise PQDError(f"{archive} has MD5 {got}, expected {md5}: the download is corrupt; delete it and retry")
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(data_dir, filter="data")
    return data_dir / spec.folder


def _read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as e:
        raise PQDError(f"{path} is truncated or corrupt ({e.__class__.__name__}); delete it and download again") from None
    if not isinstance(d, dict):
        raise PQDError(f"{path} is not a CIFAR batch (a pickled dict was expected); delete it and download again")
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or label_key not in d:
        raise PQDError(f"{path} has no 'data'/'{label_key}' entries: it is not a {num_classes}-class CIFAR batch")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key])
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise PQDError(f"{path}: images have shape {data.shape} and dtype {data.dtype}, expected (N, 3072) uint8")
    if labels.shape != (data.shape[0],):
        raise PQDError(f"{path}: {labels.shape[0] if labels.ndim else 0} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise PQDError(
            f"{path}: labels span [{labels.min()}, {labels.max()}], outside [0, {num_classes - 1}]: wrong dataset?"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_dataset(
    name: str,
    data_dir: str | Path,
    split: str = "train",
    *,
    download_missing: bool = False,
    val_size: int = 0,
    subset: int | None = None,
    seed: int = 0,
) -> ArrayDataset:
    """Load ``split`` ('train', 'val' or 'test') of ``name`` from ``data_dir``.

    ``val_size`` images are held out of the training set (a fixed random draw from ``seed``): 'train' excludes
    them and 'val' is them. ``subset`` keeps the first N images of the split (after the hold-out).
    """
    spec = get_spec(name)
    if split not in ("train", "val", "test"):
        raise PQDError(f"unknown split '{split}': choose train, val or test")
    folder = Path(data_dir) / spec.folder
    files = spec.test_files if split == "test" else spec.train_files
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        if download_missing:
            download(name, data_dir)
        else:
            raise PQDError(
                f"{folder / missing[0]} not found: pass --download, or put the official {spec.archive} "
                f"(extracted, {spec.folder}/) into {data_dir}"
            )
    parts = [_read_batch(folder / f, spec.label_key, spec.num_classes) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if split != "test" and val_size:
        if not 0 < val_size < len(labels):
            raise PQDError(f"--val-size {val_size} must be between 1 and {len(labels) - 1}")
        perm = np.random.default_rng(seed).permutation(len(labels))
        keep = np.sort(perm[:val_size] if split == "val" else perm[val_size:])
        images, labels = images[keep], labels[keep]
    elif split == "val":
        raise PQDError("split 'val' needs --val-size N (images held out of the training set)")
    if subset is not None:
        if subset <= 0:
            raise PQDError(f"--subset must be positive, got {subset}")
        images, labels = images[:subset], labels[:subset]
    return ArrayDataset(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(labels),
        num_classes=spec.num_classes,
        mean=spec.mean,
        std=spec.std,
        name=name,
        split=split,
    )


def augment(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """Random ``pad``-pixel padded crop and horizontal flip of a float batch (B, C, H, W), on its own device."""
    b, c, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (B, 1, H, 1)
    cols = torch.arange(w, device=dev).expand(b, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + ox[:, None]
    cols = cols[:, None, None, :]  # (B, 1, 1, W)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows, cols]


def batches(
    ds: ArrayDataset,
    batch_size: int,
    *,
    device: torch.device | str = "cpu",
    train: bool = False,
    generator: torch.Generator | None = None,
    channels_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images float [0, 1], labels) on ``device``; shuffled and augmented when ``train``."""
    n = len(ds)
    order = torch.randperm(n, generator=generator) if train else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if train and len(idx) < batch_size and start > 0:
            break  # drop the ragged last batch in training, as is usual
        x = ds.images[idx].to(device, non_blocking=True).float().div_(255.0)
        y = ds.labels[idx].to(device, non_blocking=True)
        if train:
            x = augment(x, generator)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y
