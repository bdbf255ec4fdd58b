"""The one training loop and the run-directory conventions around it."""

from pqd.training.loop import CrossEntropyTask, Hooks, TrainConfig, evaluate, fit, resolve_device
from pqd.training.runs import TrainResult, load_model, train

__all__ = ["CrossEntropyTask", "Hooks", "TrainConfig", "TrainResult", "evaluate", "fit", "load_model",
           "resolve_device", "train"]
