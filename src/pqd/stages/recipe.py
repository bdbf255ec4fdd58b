"""Recipes: an ordered list of compression stages with their epochs and options, validated on load.

    name: paper
    train: {lr: 0.01, batch_size: 128}   # training defaults for every stage (epochs come from each stage)
    schedule: per_stage                  # the LR schedule restarts per stage; 'global' runs one over all stages
    stages:
      - {stage: prune, epochs: 20, sparsity: 0.8}
      - {stage: quantize, epochs: 40}
      - {stage: distill, epochs: 40, temperature: 4.0, alpha: 0.9}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pqd.config import read_yaml
from pqd.errors import PQDError
from pqd.errors import format_validation_error as format_error
from pqd.stages.distill import DistillConfig
from pqd.stages.prune import PruneConfig
from pqd.stages.quantize import QuantizeConfig
from pqd.training.loop import TrainConfig

STAGE_NAMES = ("prune", "quantize", "distill")


class _StageFields(BaseModel):
    epochs: int = Field(gt=0)
    lr: float | None = Field(None, gt=0, description="overrides the recipe's train.lr for this stage")


class PruneStage(PruneConfig, _StageFields):
    stage: Literal["prune"]


class QuantizeStage(QuantizeConfig, _StageFields):
    stage: Literal["quantize"]


class DistillStage(DistillConfig, _StageFields):
    stage: Literal["distill"]


Stage = Annotated[Union[PruneStage, QuantizeStage, DistillStage], Field(discriminator="stage")]
_CONFIGS = {"prune": PruneConfig, "quantize": QuantizeConfig, "distill": DistillConfig}


def stage_config(stage: Stage) -> BaseModel:
    """The transform's own config (what is recorded with the model), without epochs/lr."""
    cls = _CONFIGS[stage.stage]
    return cls.model_validate(stage.model_dump(include=set(cls.model_fields)))


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    schedule: Literal["per_stage", "global"] = "per_stage"
    train: TrainConfig = TrainConfig(lr=0.01)
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _once_each(self):
        seen = set()
        for i, s in enumerate(self.stages):
            if s.stage in seen:
                raise ValueError(f"stages[{i}]: stage '{s.stage}' is listed twice; each stage runs at most once")
            seen.add(s.stage)
        return self

    @property
    def order(self) -> str:
        return "->".join(s.stage for s in self.stages)

    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def stage_train(self, stage: Stage) -> TrainConfig:
        return self.train.model_copy(update={"epochs": stage.epochs, "lr": stage.lr or self.train.lr})


def load_recipe(source: str | Path | dict | Recipe) -> Recipe:
    """Validate a recipe from a YAML file, a dict or a Recipe. Errors are one line naming the field."""
    if isinstance(source, Recipe):
        return source
    name = "recipe"
    if isinstance(source, (str, Path)):
        name = str(source)
        source = read_yaml(source, "recipe")
    try:
        return Recipe.model_validate(source)
    except ValidationError as e:
        raise PQDError(format_error(e, name)) from None


def ordering_recipe(order: tuple[str, ...] | list[str], epochs: dict[str, int] | None = None, *,
                    name: str | None = None, train: dict | None = None, **stage_options) -> Recipe:
    """A recipe running ``order`` with the paper's split (prune 20, quantize 40, distill 40) unless ``epochs``
    says otherwise. ``stage_options`` = {stage: {option: value}}."""
    epochs = {"prune": 20, "quantize": 40, "distill": 40, **(epochs or {})}
    stages = [{"stage": s, "epochs": epochs[s], **stage_options.get(s, {})} for s in order]
    return load_recipe({"name": name or "-".join(order), "train": {"lr": 0.01, **(train or {})}, "stages": stages})
