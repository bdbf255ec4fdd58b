"""The `pqd` command: parses options, calls the Python API, prints the result. No logic of its own."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from pqd.config import read_yaml
from pqd.errors import PQDError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="pqd: prune -> quantize (INT8 QAT) -> distill CNN classifiers, measured on the deployed "
                       "artifact.")


@app.command()
def train(
    out: Path = typer.Option(..., help="Run directory to create (or continue with --resume)."),
    model: Optional[str] = typer.Option(None, help="resnet18 | wrn28_10 | vgg16_bn [default resnet18]."),
    dataset: Optional[str] = typer.Option(None, help="cifar10 | cifar100 [default cifar10]."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder holding cifar-10-batches-py/ or cifar-100-python/ "
                                                       "[default ./data]."),
    download: bool = typer.Option(False, help="Download the official archive (MD5-checked) when missing."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs [default 1]."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size [default 128]."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate [default 0.1]."),
    warmup_epochs: Optional[float] = typer.Option(None, help="Linear warm-up epochs [default 0]."),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing [default 0]."),
    amp: Optional[str] = typer.Option(None, help="auto | off | bf16 | fp16 [default auto]."),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    seed: Optional[int] = typer.Option(None, help="Random seed [default 0]."),
    width: Optional[float] = typer.Option(None, help="Channel width multiplier (tiny models for quick tests)."),
    val_size: Optional[int] = typer.Option(None, help="Hold N training images out as a validation split."),
    subset: Optional[int] = typer.Option(None, help="Train on the first N training images only."),
    test_subset: Optional[int] = typer.Option(None, help="Test on the first N test images only."),
    device: str = typer.Option("auto", help="cpu | cuda | auto"),
    config: Optional[Path] = typer.Option(None, help="YAML with any BaselineConfig fields (options override it)."),
    resume: bool = typer.Option(False, help="Continue the interrupted run in --out with its saved config."),
):
    """Train an FP32 baseline (the teacher) from scratch."""
    from pqd.training import train as api_train

    cfg = read_yaml(config, "train config") if config else {}
    if model is not None:
        cfg["model"] = model
    cfg["device"] = device
    data = cfg.setdefault("data", {})
    data.update({k: v for k, v in {"dataset": dataset, "data_dir": str(data_dir) if data_dir else None,
                                   "download": download or None,
                                   "val_size": val_size, "subset": subset, "test_subset": test_subset}.items()
                 if v is not None})
    tr = cfg.setdefault("train", {})
    tr.update({k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "warmup_epochs": warmup_epochs,
                                 "label_smoothing": label_smoothing, "amp": amp, "compile": compile,
                                 "seed": seed}.items() if v is not None})
    if width is not None:
        cfg.setdefault("model_options", {})["width"] = width
    typer.echo(str(api_train(cfg, out=out, resume=resume)))


@app.command("eval")
def eval_cmd(
    target: Path = typer.Argument(..., help="A run directory, a model.pt, or an exported .onnx file."),
    dataset: Optional[str] = typer.Option(None, help="cifar10 | cifar100 [default: the run's]."),
    data_dir: Optional[Path] = typer.Option(None, help="Dataset folder [default: the run's]."),
    split: str = typer.Option("test", help="test | val | train"),
    subset: Optional[int] = typer.Option(None, help="Evaluate the first N images only."),
    runtime: str = typer.Option("ort", help="For .onnx files: ort (ONNX Runtime) | openvino."),
    device: str = typer.Option("cpu", help="For PyTorch models: cpu | cuda | auto."),
):
    """Top-1 accuracy of a PyTorch run or of an exported ONNX artifact."""
    from pqd.measure.accuracy import evaluate_target

    typer.echo(str(evaluate_target(target, dataset=dataset, data_dir=data_dir, split=split, subset=subset,
                                   runtime=runtime, device=device)))


@app.command()
def compress(
    out: Path = typer.Option(..., help="Run directory to create (or continue with --resume)."),
    recipe: Optional[Path] = typer.Option(None, help="Recipe YAML (see recipes/)."),
    teacher: Optional[Path] = typer.Option(None, help="Trained FP32 run: the starting model and the KD teacher."),
    student: Optional[Path] = typer.Option(None, help="Start from this run instead of the teacher."),
    data_dir: Optional[Path] = typer.Option(None, help="Dataset folder [default: the teacher run's]."),
    dataset: Optional[str] = typer.Option(None, help="cifar10 | cifar100 [default: the teacher run's]."),
    subset: Optional[int] = typer.Option(None, help="Train on the first N training images only."),
    test_subset: Optional[int] = typer.Option(None, help="Test on the first N test images only."),
    device: str = typer.Option("auto", help="cpu | cuda | auto"),
    resume: bool = typer.Option(False, help="Continue the interrupted run in --out at its stage and epoch."),
):
    """Run an ordered recipe of prune / quantize / distill stages on a trained model."""
    from pqd.stages import compress as api_compress

    typer.echo(str(api_compress(recipe, out=out, teacher=teacher, student=student, data_dir=data_dir,
                                dataset=dataset, subset=subset, test_subset=test_subset, device=device,
                                resume=resume)))


def _csv(value: str) -> str:
    return value.replace(" ", "")


@app.command()
def export(
    run: Path = typer.Argument(..., help="A run directory (or its model.pt)."),
    out: Optional[Path] = typer.Option(None, help="Output .onnx [default: RUN/model.onnx]."),
    int8: Optional[bool] = typer.Option(None, "--int8/--fp32", help="Demand INT8 (QDQ) or FP32 [default: by run]."),
):
    """Export a run to ONNX: INT8 QDQ if it was quantized, else FP32. Input RGB in [0, 1], dynamic batch."""
    from pqd.deploy.onnx import export as api_export

    typer.echo(str(api_export(run, out, int8=int8)))


@app.command()
def bench(
    models: List[Path] = typer.Argument(..., help="One or more .onnx files."),
    runtime: str = typer.Option("ort", help="Comma-separated: ort,openvino,torch."),
    threads: str = typer.Option("1", help="Comma-separated thread counts, e.g. 1,2."),
    runs: int = typer.Option(200, help="Timed runs per variant (at least)."),
    warmup: int = typer.Option(20, help="Untimed warm-up runs per variant."),
    max_seconds: Optional[float] = typer.Option(None, help="Stop timing after this long (keeps >= 60 runs)."),
    throughput_batch: Optional[int] = typer.Option(None, help="Also measure images/s at this batch size."),
    out: Optional[Path] = typer.Option(None, help="Save the results (with the machine fingerprint) as JSON."),
):
    """Batch-1 latency of ONNX artifacts: interleaved, median/p90/p99, threads pinned, compute bound."""
    from pqd.measure.latency import bench as api_bench

    report = api_bench(models, runtimes=_csv(runtime), threads=_csv(threads), runs=runs, warmup=warmup,
                       max_seconds=max_seconds, throughput_batch=throughput_batch)
    typer.echo(str(report))
    if out:
        report.save(out)


@app.command()
def measure(
    runs_: List[Path] = typer.Argument(..., metavar="RUN_DIR...", help="Finished run directories."),
    runtime: str = typer.Option("ort", help="Comma-separated: ort,openvino,torch."),
    threads: str = typer.Option("1", help="Comma-separated thread counts."),
    data_dir: Optional[Path] = typer.Option(None, help="Dataset folder [default: the run's]."),
    timed_runs: int = typer.Option(200, "--runs", help="Timed runs per latency variant."),
):
    """Export each run and measure its triad on the artifact; writes RUN/results.json."""
    from pqd.measure.results import measure_run, runs_table

    results = [measure_run(r, runtimes=_csv(runtime), threads=_csv(threads), data_dir=data_dir, runs=timed_runs)
               for r in runs_]
    typer.echo(runs_table(results))


@app.command()
def report(
    targets: List[Path] = typer.Argument(..., metavar="DIR...", help="Measured run directories, or one study dir."),
):
    """Print measured runs as a table, or write a study directory's Markdown report with plots."""
    from pqd.measure.results import load_results, runs_table

    if len(targets) == 1 and (targets[0] / "study.yaml").exists():
        from pqd.study.report import write_report

        path = write_report(targets[0])
        typer.echo(f"report: {path}  (plots in {path.parent / 'plots'}, tables in results.csv / results.json)")
        return
    typer.echo(runs_table([load_results(t) for t in targets]))


@app.command()
def study(
    out: Path = typer.Option(..., help="Study directory (created, or continued: finished cells are skipped)."),
    preset: str = typer.Option("small", help="paper | small | quick | smoke"),
    data_dir: Optional[Path] = typer.Option(None, help="Dataset folder (holds cifar-10-batches-py/ ...)."),
    download: bool = typer.Option(False, help="Download missing datasets (MD5-checked)."),
    config: Optional[Path] = typer.Option(None, help="YAML overriding preset fields."),
    set_: List[str] = typer.Option([], "--set", help="FIELD=VALUE override, repeatable (e.g. teacher.epochs=5)."),
    shard: Optional[str] = typer.Option(None, help="Run only shard I/N of the cells (one process per shard)."),
    teachers_only: bool = typer.Option(False, help="Only train the teachers (run first when sharding)."),
    device: Optional[str] = typer.Option(None, help="cpu | cuda | auto [default: preset]."),
    remeasure: bool = typer.Option(False, help="Time every cell's artifact again, interleaved, on this machine."),
):
    """Run the whole study: teachers, single techniques, the pipeline, every ordering; then the report."""
    from pqd.study import load_study_config, run_study

    over = list(set_)
    if data_dir is not None:
        over.append(f"data_dir={data_dir}")
    if download:
        over.append("download=true")
    if device:
        over.append(f"device={device}")
    cfg = load_study_config(preset, config_file=config, overrides=over)
    results = run_study(cfg, out, shard=shard, teachers_only=teachers_only, remeasure=remeasure)
    if not teachers_only:
        typer.echo(f"{len(results)} cells measured; report: {out / 'report.md'}; tables: {out / 'results.csv'}")


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; returns the exit status. User errors print one line and return 2, never a traceback."""
    try:
        app(args=argv, prog_name="pqd")  # standalone mode: typer reports usage errors itself
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except PQDError as e:
        typer.echo(f"pqd: error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("pqd: interrupted; the last epoch checkpoint is kept: rerun with --resume to continue", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
