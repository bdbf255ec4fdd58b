"""pqd: prune -> quantize (INT8 QAT) -> distill for CNN image classifiers, judged on the deployed artifact.

The public API (the `pqd` command is a thin layer over these):
    create_model(name, num_classes, **options)   the model registry
    load_dataset(name, data_dir, split, ...)      CIFAR-10/100 from the official python layout
    train(config, out=...)                       train an FP32 baseline (teacher) into a run directory
    compress(recipe, teacher=..., out=...)       run an ordered recipe of prune / quantize / distill stages
    load_model(run_dir)                          rebuild a saved model (masks and quantizers included)
"""

__version__ = "0.1.0"

from pqd.data import load_dataset  # noqa: E402
from pqd.errors import PQDError  # noqa: E402
from pqd.models import create_model, list_models  # noqa: E402
from pqd.stages import compress, load_recipe, ordering_recipe  # noqa: E402
from pqd.training import evaluate, load_model, train  # noqa: E402

__all__ = ["PQDError", "__version__", "compress", "create_model", "evaluate", "list_models", "load_dataset",
           "load_model", "load_recipe", "ordering_recipe", "train"]
