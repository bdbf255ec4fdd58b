"""The study: a grid of models x datasets x methods x seeds, each cell compressed, exported and measured."""

from pqd.study.grid import Cell, cells, run_study
from pqd.study.presets import PRESETS, StudyConfig, load_study_config
from pqd.study.report import pareto_front, write_report

__all__ = ["PRESETS", "Cell", "StudyConfig", "cells", "load_study_config", "pareto_front", "run_study", "write_report"]
