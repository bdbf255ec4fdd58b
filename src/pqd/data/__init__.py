"""Datasets: CIFAR-10/100 from the official python layout, with device-side augmentation."""

from pqd.data.cifar import (
    DATASETS,
    ArrayDataset,
    DatasetSpec,
    augment,
    batches,
    download,
    load_dataset,
)

__all__ = ["DATASETS", "ArrayDataset", "DatasetSpec", "augment", "batches", "download", "load_dataset"]
