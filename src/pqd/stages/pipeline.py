"""Run a recipe: for each stage, apply its change to the model, then train through the one loop.

    start from a trained FP32 run (the student; by default the teacher itself)
    for stage in recipe:  stage.apply(model);  fit(model, loss=stage.task, hooks=stage.hooks)

Masks, once created, are re-applied after every optimizer step of every later stage. The run directory gets a
checkpoint after every epoch; an interrupted run resumes at the stage and epoch where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from pqd.errors import PQDError
from pqd.quant import freeze, is_quantized, prepare_qat
from pqd.stages.distill import DistillTask
from pqd.stages.prune import Pruner, apply_masks, attach_masks, has_masks, sparsity_report
from pqd.stages.quantize import QATFreezer, QuantizeConfig, start_qat
from pqd.stages.recipe import Recipe, format_error, load_recipe, stage_config
from pqd.training.loop import Hooks, atomic_save, evaluate, fit, resolve_device
from pqd.training.runs import (CHECKPOINT_FILE, MODEL_FILE, DataConfig, load_model, load_state, prepare_run_dir,
                            read_model_file, save_model, save_yaml)
from pqd.data import batches


def restore_structure(model: nn.Module, transforms: list[dict]) -> nn.Module:
    """Re-apply the structural part of recorded transforms (masks, fake quantizers) so a saved state loads."""
    from pqd.stages.prune import PruneConfig

    for t in transforms:
        kind = t.get("stage")
        if kind == "prune":
            attach_masks(model, PruneConfig.model_validate({k: v for k, v in t.items() if k != "stage"}))
        elif kind == "quantize":
            prepare_qat(model)
        elif kind != "distill":
            raise PQDError(f"model file records an unknown transform '{kind}': written by a newer pqd?")
    return model


def transform_record(stage) -> dict:
    return {"stage": stage.stage, **stage_config(stage).model_dump()}


class CompressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: Recipe
    teacher: str | None = None
    student: str | None = None
    data: DataConfig
    device: str = "auto"


@dataclass
class CompressResult:
    run_dir: str
    recipe: str
    order: str
    test_accuracy: float
    mask_sparsity: float
    quantized: bool
    stages: list[dict] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.recipe} ({self.order}) -> {self.run_dir}",
                 f"{'stage':<10}{'epochs':>7}{'test acc %':>12}{'sparsity':>10}{'time s':>9}"]
        for s in self.stages:
            lines.append(f"{s['stage']:<10}{s['epochs']:>7}{s['test_acc']:>12.2f}{s['mask_sparsity']:>10.3f}"
                         f"{s['time_s']:>9.1f}")
        lines.append(f"final test accuracy {self.test_accuracy:.2f}% (PyTorch fake-quant model; "
                     "`pqd export` + `pqd eval` measure the deployed artifact)")
        return "\n".join(lines)


def _teacher_data(teacher: str | None, student: str | None) -> dict:
    run = Path(teacher or student)
    cfg_file = run / "config.yaml"
    if cfg_file.exists():
        cfg = yaml.safe_load(cfg_file.read_text()) or {}
        if "data" in cfg:
            return dict(cfg["data"])
    return {}


def compress(recipe=None, *, out: str | Path, teacher: str | Path | None = None, student: str | Path | None = None,
             data_dir: str | Path | None = None, dataset: str | None = None, device: str = "auto",
             resume: bool = False, subset: int | None = None, test_subset: int | None = None,
             val_size: int | None = None) -> CompressResult:
    """Run ``recipe`` (a YAML path, dict or Recipe) starting from the trained run ``student`` (default: ``teacher``),
    distilling from ``teacher``. Data settings default to the teacher run's; the given ones override them."""
    out = Path(out)
    ckpt = prepare_run_dir(out, resume)
    if resume and (out / "config.yaml").exists():
        try:
            cfg = CompressConfig.model_validate(yaml.safe_load((out / "config.yaml").read_text()))
        except ValidationError as e:
            raise PQDError(format_error(e, str(out / "config.yaml"))) from None
        if ckpt is None and (out / MODEL_FILE).exists():
            raise PQDError(f"{out} is already finished; choose another --out to compress again")
    else:
        if recipe is None:
            raise PQDError("no recipe given: pass --recipe FILE (see recipes/)")
        rec = load_recipe(recipe)
        if teacher is None and student is None:
            raise PQDError("no starting model: pass --teacher RUN_DIR (a run written by `pqd train`)")
        data = _teacher_data(str(teacher) if teacher else None, str(student) if student else None)
        data.update({k: v for k, v in {"data_dir": str(data_dir) if data_dir else None, "dataset": dataset,
                                       "subset": subset, "test_subset": test_subset, "val_size": val_size}.items()
                     if v is not None})
        try:
            cfg = CompressConfig(recipe=rec, teacher=str(teacher) if teacher else None,
                                 student=str(student) if student else None, data=DataConfig.model_validate(data),
                                 device=device)
        except ValidationError as e:
            raise PQDError(format_error(e, "compress")) from None
    for i, s in enumerate(cfg.recipe.stages):
        if s.stage == "distill" and not (s.teacher or cfg.teacher):
            raise PQDError(f"recipe: stages[{i}].distill: no teacher: pass --teacher RUN_DIR or set 'teacher:'")
    return _run(cfg, out, ckpt)


def _run(cfg: CompressConfig, out: Path, ckpt: dict | None) -> CompressResult:
    device = resolve_device(cfg.device)
    recipe = cfg.recipe
    seed = recipe.train.seed
    train_ds = cfg.data.load("train", seed)
    eval_ds = cfg.data.load("val", seed) if cfg.data.val_size else None
    test_ds = cfg.data.load("test")
    start = read_model_file(cfg.student or cfg.teacher)
    if start["num_classes"] != train_ds.num_classes:
        raise PQDError(f"{cfg.student or cfg.teacher} was trained for {start['num_classes']} classes but "
                       f"{cfg.data.dataset} has {train_ds.num_classes}: pass the matching --dataset or teacher")
    model, meta = load_model(cfg.student or cfg.teacher)
    model.to(device)
    transforms = list(meta["transforms"])
    save_yaml(cfg.model_dump(), out / "config.yaml")
    save_yaml(recipe.model_dump(), out / "recipe.yaml")

    first, done_history, summaries = 0, [], []
    if ckpt is not None:
        first = ckpt["stage_index"]
        transforms = list(ckpt["transforms"])
        restore_structure(model, transforms[len(meta["transforms"]):])
        load_state(model, ckpt["model"], str(out / CHECKPOINT_FILE), meta["model"])
        model.to(device)
        done_history, summaries = list(ckpt["done_history"]), list(ckpt["summaries"])
    metrics_path = out / "metrics.jsonl"
    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in done_history + (ckpt or {}).get("history", [])))

    steps_per_epoch = max(1, len(train_ds) // recipe.train.batch_size)
    global_total = recipe.total_epochs * steps_per_epoch
    for i in range(first, len(recipe.stages)):
        stage = recipe.stages[i]
        tcfg = recipe.stage_train(stage)
        mid_stage = ckpt is not None and i == first and ckpt["epoch"] > 0  # resuming inside this stage
        hooks, task = Hooks(), None
        pruner = None
        if stage.stage == "prune":
            pruner = Pruner(model, stage_config(stage))
            hooks.step_end.append(pruner.step)
        if stage.stage == "quantize":
            if not mid_stage:
                calib = (x for _, (x, _) in zip(range(stage.calibration_batches),
                                                batches(train_ds, tcfg.batch_size, device=device)))
                start_qat(model, stage_config(stage), calib)
            hooks.step_end.append(QATFreezer(model, stage_config(stage)).step)
        elif is_quantized(model):
            # a later stage training a quantized model: BN statistics and ranges live again, frozen late in the
            # stage on the quantize stage's schedule (training with frozen BN from the start is unstable)
            qcfg = QuantizeConfig.model_validate(
                {k: v for k, v in next(t for t in transforms if t["stage"] == "quantize").items() if k != "stage"})
            if not mid_stage:
                freeze(model, frozen=False)
            hooks.step_end.append(QATFreezer(model, qcfg).step)
        if stage.stage == "distill":
            teacher_model, _ = load_model(stage.teacher or cfg.teacher)
            task = DistillTask(teacher_model.to(device), stage_config(stage))
            if tcfg.channels_last:
                teacher_model.to(memory_format=torch.channels_last)
        if not mid_stage:
            transforms.append(transform_record(stage))
        if has_masks(model):
            hooks.step_end.append(lambda step, total: apply_masks(model))
        history = fit(
            model, train_ds, tcfg, device=device, task=task, hooks=hooks, eval_ds=eval_ds,
            checkpoint_path=out / CHECKPOINT_FILE, resume=ckpt if mid_stage else None, metrics_path=metrics_path,
            checkpoint_extra={"stage_index": i, "transforms": transforms, "done_history": done_history,
                              "summaries": summaries},
            log_fields={"stage": stage.stage}, desc=stage.stage,
            schedule=(sum(s.epochs for s in recipe.stages[:i]) * steps_per_epoch, global_total)
            if recipe.schedule == "global" else None,
        )
        # end-of-stage actions are idempotent, so re-running them after a resume is harmless
        if pruner is not None:
            pruner.finish()
        if is_quantized(model):
            freeze(model)
        model.to(memory_format=torch.contiguous_format)
        test = evaluate(model, test_ds, device=device)
        sp = sparsity_report(model)
        summaries.append({
            "stage": stage.stage, "epochs": stage.epochs, "test_acc": test["accuracy"],
            "mask_sparsity": sp["mask_sparsity"], "weight_sparsity": sp["weight_sparsity"],
            "time_s": sum(r["time_s"] for r in history),
            **{k: v for k, v in history[-1].items() if k.startswith("loss_") or k.endswith("_acc")},
        })
        done_history = done_history + history
        # the next stage starts from this point: an interrupted run resumes at its first epoch
        atomic_save({"stage_index": i + 1, "epoch": 0, "model": model.state_dict(), "transforms": transforms,
                     "done_history": done_history, "summaries": summaries, "history": []}, out / CHECKPOINT_FILE)
        ckpt = None
    model.to("cpu")
    save_model(model, out / MODEL_FILE, name=meta["model"], num_classes=meta["num_classes"], options=meta["options"],
               transforms=transforms)
    final = summaries[-1]
    sp = sparsity_report(model)
    result = CompressResult(run_dir=str(out), recipe=recipe.name, order=recipe.order, test_accuracy=final["test_acc"],
                            mask_sparsity=sp["mask_sparsity"], quantized=any(t["stage"] == "quantize" for t in transforms),
                            stages=summaries)
    (out / "stages.json").write_text(json.dumps(summaries, indent=2))
    (out / "metrics.json").write_text(json.dumps({**asdict(result), "model": meta["model"],
                                                  "dataset": cfg.data.dataset,
                                                  "sparsity": {k: v for k, v in sp.items() if k != "layers"},
                                                  "layer_sparsity": sp["layers"]}, indent=2))
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    return result
