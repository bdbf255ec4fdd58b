"""Compression stages (prune, quantize, distill), recipes and the pipeline that runs them in any order."""

from pqd.stages.distill import DistillConfig, DistillTask, kd_loss
from pqd.stages.pipeline import CompressResult, compress, restore_structure
from pqd.stages.prune import PruneConfig, apply_masks, sparsity_report
from pqd.stages.quantize import QuantizeConfig
from pqd.stages.recipe import STAGE_NAMES, Recipe, load_recipe, ordering_recipe

__all__ = ["STAGE_NAMES", "CompressResult", "DistillConfig", "DistillTask", "PruneConfig", "QuantizeConfig", "Recipe",
           "apply_masks", "compress", "kd_loss", "load_recipe", "ordering_recipe", "restore_structure",
           "sparsity_report"]
