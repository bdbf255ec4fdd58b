"""Run the study grid: teachers once per (model, dataset, seed), then every method's cell, each measured on its
artifact. Finished cells are skipped; an interrupted cell resumes from its checkpoint. Results accumulate in
STUDY/results.csv and STUDY/results.json (rebuilt from every cell's results.json, so shards merge by themselves).

Layout:  STUDY/study.yaml   STUDY/teachers/<model>_<dataset>_s<seed>/   STUDY/cells/<model>_<dataset>_<method>_s<seed>/
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from pqd.errors import PQDError
from pqd.measure.latency import bench
from pqd.measure.results import RESULTS_FILE, attach_latency, measure_run
from pqd.stages.pipeline import compress
from pqd.stages.recipe import ordering_recipe
from pqd.study.presets import StudyConfig
from pqd.training.runs import CHECKPOINT_FILE, MODEL_FILE, train


@dataclass(frozen=True)
class Cell:
    model: str
    dataset: str
    method: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}_{self.dataset}_{self.method}_s{self.seed}"

    @property
    def teacher_name(self) -> str:
        return f"{self.model}_{self.dataset}_s{self.seed}"


def cells(cfg: StudyConfig) -> list[Cell]:
    return [Cell(m, d, meth, s) for m in cfg.models for d in cfg.datasets for s in cfg.seeds for meth in cfg.methods]


def teacher_dir(study: Path, cell: Cell) -> Path:
    return study / "teachers" / cell.teacher_name


def cell_dir(study: Path, cell: Cell) -> Path:
    return teacher_dir(study, cell) if cell.method == "fp32" else study / "cells" / cell.name


def _done(run: Path) -> bool:
    return (run / MODEL_FILE).exists() and not (run / CHECKPOINT_FILE).exists()


def ensure_teacher(cfg: StudyConfig, study: Path, cell: Cell) -> Path:
    out = teacher_dir(study, cell)
    if _done(out):
        return out
    train({"model": cell.model, "model_options": cfg.model_options, "device": cfg.device,
           "data": {"dataset": cell.dataset, "data_dir": cfg.data_dir, "download": cfg.download,
                    "subset": cfg.subset, "test_subset": cfg.test_subset},
           "train": cfg.teacher.model_copy(update={"seed": cell.seed}).model_dump()},
          out=out, resume=(out / CHECKPOINT_FILE).exists())
    return out


def run_cell(cfg: StudyConfig, study: Path, cell: Cell) -> dict:
    teacher = ensure_teacher(cfg, study, cell)
    out = cell_dir(study, cell)
    if cell.method != "fp32" and not _done(out):
        order = cell.method.split("-")
        recipe = ordering_recipe(order, cfg.epochs, name=cell.method,
                                 train=cfg.stages.model_copy(update={"seed": cell.seed}).model_dump(exclude={"epochs"}),
                                 prune={"sparsity": cfg.sparsity},
                                 distill={"temperature": cfg.temperature, "alpha": cfg.alpha})
        compress(recipe, teacher=teacher, out=out, device=cfg.device, resume=(out / CHECKPOINT_FILE).exists())
    result = measure_run(out, latency=False)  # timed later, interleaved with the other cells
    result.update({"method": cell.method, "seed": cell.seed, "cell": cell.name})
    (out / RESULTS_FILE).write_text(json.dumps(result, indent=2))
    return result


def _row(res: dict) -> dict:
    row = {k: res.get(k) for k in ("cell", "model", "dataset", "method", "seed", "precision", "accuracy",
                                   "accuracy_torch", "agreement", "mask_sparsity", "params", "macs")}
    for k in ("fp32_checkpoint_bytes", "onnx_bytes", "compact_bytes", "compact_ratio"):
        row[k] = res["sizes"][k]
    for lat in res.get("latency", []):
        row[f"{lat['runtime']}_t{lat['threads']}_median_ms"] = lat["median_ms"]
        row[f"{lat['runtime']}_t{lat['threads']}_p90_ms"] = lat["p90_ms"]
    return row


def collect(study: Path) -> list[dict]:
    """Every measured cell of a study, from the cells' own results.json files."""
    cfg = StudyConfig.model_validate(yaml.safe_load((study / "study.yaml").read_text()))
    found = []
    for cell in cells(cfg):
        f = cell_dir(study, cell) / RESULTS_FILE
        if f.exists():
            res = json.loads(f.read_text())
            if res.get("cell") == cell.name:
                found.append(res)
    return found


def write_tables(study: Path) -> list[dict]:
    results = collect(study)
    (study / "results.json").write_text(json.dumps(results, indent=2))
    rows = [_row(r) for r in results]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(study / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return results


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    if not shard:
        return None
    try:
        i, n = (int(v) for v in shard.split("/"))
    except ValueError:
        raise PQDError(f"--shard {shard!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise PQDError(f"--shard {shard!r}: I must be in [0, N)")
    return i, n


def measure_latency(cfg: StudyConfig, study: Path, todo: list[Cell], *, remeasure: bool = False) -> None:
    """Time the artifacts of ``todo`` in one interleaved run per (model, dataset), so that the cells of a group are
    compared under the same machine conditions. Cells already timed are kept unless ``remeasure``."""
    groups: dict[tuple[str, str], list[tuple[Path, dict]]] = {}
    for cell in todo:
        f = cell_dir(study, cell) / RESULTS_FILE
        if f.exists():
            res = json.loads(f.read_text())
            if remeasure or not res.get("latency"):
                groups.setdefault((cell.model, cell.dataset), []).append((f, res))
    for (model, dataset), items in groups.items():
        tqdm.write(f"timing {len(items)} artifacts of {model}/{dataset} (interleaved, {cfg.latency_runs} runs each)")
        report = bench([res["onnx"] for _, res in items], runtimes=cfg.runtimes, threads=cfg.threads,
                       runs=cfg.latency_runs)
        attach_latency([res for _, res in items], report)
        for f, res in items:
            f.write_text(json.dumps(res, indent=2))


def run_study(cfg: StudyConfig, out: str | Path, *, shard: str | None = None, teachers_only: bool = False,
              report: bool = True, remeasure: bool = False) -> list[dict]:
    """Run (or continue) the study in ``out``. With ``shard='i/n'`` only every n-th cell from i runs, so a
    cluster scheduler can run one process per shard; teachers are trained by whichever shard needs them first
    unless ``teachers_only`` runs them as their own sharded phase. Latency is timed at the end, interleaved over
    the cells of each (model, dataset); ``remeasure`` times every cell again (e.g. all on one machine after a
    sharded run)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "study.yaml"
    if saved.exists():
        old = StudyConfig.model_validate(yaml.safe_load(saved.read_text()))
        if old.model_dump(exclude={"methods", "seeds", "runtimes", "threads", "latency_runs", "device"}) != \
                cfg.model_dump(exclude={"methods", "seeds", "runtimes", "threads", "latency_runs", "device"}):
            raise PQDError(f"{out} holds a study with other settings: use another --out, or the same preset/overrides")
    saved.write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    todo = cells(cfg)
    if teachers_only:
        todo = [c for c in todo if c.method == "fp32"]
    sh = parse_shard(shard)
    if sh:
        todo = [c for k, c in enumerate(todo) if k % sh[1] == sh[0]]
    bar = tqdm(todo, desc="study", unit="cell", disable=None)
    for cell in bar:
        bar.set_postfix_str(cell.name)
        if (cell_dir(out, cell) / RESULTS_FILE).exists() or (teachers_only and _done(teacher_dir(out, cell))):
            continue
        t0 = time.perf_counter()
        if teachers_only:
            ensure_teacher(cfg, out, cell)
        else:
            res = run_cell(cfg, out, cell)
            tqdm.write(f"[{cell.name}] accuracy {res['accuracy']:.2f}% (artifact), compact "
                       f"{res['sizes']['compact_mib']:.2f} MiB, {time.perf_counter() - t0:.0f} s")
    if not teachers_only:
        measure_latency(cfg, out, todo, remeasure=remeasure)
    results = write_tables(out)
    if report and not teachers_only:
        from pqd.study.report import write_report

        write_report(out)
    return results
