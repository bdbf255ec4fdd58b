"""pqd: prune -> quantize (INT8 QAT) -> distill for CNN image classifiers, judged on the deployed artifact.

The public API (the `pqd` command is a thin layer over these):
    create_model(name, num_classes, **options)   the model registry
    load_dataset(name, data_dir, split, ...)      CIFAR-10/100 from the official python layout
    train(config, out=...)                       train an FP32 baseline (teacher) into a run directory
    compress(recipe, teacher=..., out=...)       run an ordered recipe of prune / quantize / distill stages
    load_model(run_dir)                          rebuild a saved model (masks and quantizers included)
    export(run_dir, out)                         INT8 QDQ (quantized runs) or FP32 ONNX artifact
    evaluate_target(path, ...)                   accuracy of an artifact (ONNX Runtime / OpenVINO) or a run
    bench(models, runtimes=..., threads=...)     interleaved latency with fingerprint and compute bound
    measure_run(run_dir, ...)                    the triad of a run, written to RUN/results.json
    run_study(load_study_config(preset), out)    the whole grid, then report.md
"""

__version__ = "0.1.0"

from pqd.data import load_dataset  # noqa: E402
from pqd.errors import PQDError  # noqa: E402
from pqd.models import create_model, list_models  # noqa: E402
from pqd.stages import compress, load_recipe, ordering_recipe  # noqa: E402
from pqd.training import evaluate, load_model, train  # noqa: E402
from pqd.deploy.onnx import export  # noqa: E402
from pqd.measure.accuracy import evaluate_target  # noqa: E402
from pqd.measure.latency import bench  # noqa: E402
from pqd.measure.results import measure_run  # noqa: E402
from pqd.study import load_study_config, run_study  # noqa: E402

__all__ = ["PQDError", "__version__", "bench", "compress", "create_model", "evaluate", "evaluate_target", "export",
           "list_models", "load_dataset", "load_model", "load_recipe", "load_study_config", "measure_run",
           "ordering_recipe", "run_study", "train"]
