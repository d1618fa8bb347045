"""``dsc study STUDY.toml``: the whole study design in one command (docs/commands/study.md).

CE baseline and SupCon + probe, each with no synthetic data, with normal synthetic data, with OOD negatives
only, and with normal + OOD synthetic data, over N seeds; runs that are already complete are skipped,
interrupted ones resumed; the report ends it. Runs are written to ``<output>/<method>-<variant>-s<seed>/``.

Every arm of a method gets the same training budget by default (``[study] budget = "steps"``): the
optimizer steps the "none" arm takes in its epochs, at the same batch size, so an arm with more images does
not also get more training (docs/training.md#training-budget).

The study file has a ``[study]`` table (inputs, seeds, which methods and variants) and optional
``[train]`` (settings shared by pretrain and baseline), ``[pretrain]``, ``[baseline]``, ``[probe]`` and
``[report]`` tables with the same keys as those commands' settings sections. Study values override
``dsc.toml`` and ``DSC_...`` environment values; each run's seed comes from ``seeds``. ``[report]`` may also
name the pictures the report draws (``PICTURES``: ``dsc report``'s picture options as keys).

A study file may also describe the stages before training (``[subset]``, ``[invert]``, ``[augment.NAME]``
recipes), which the study builds per few-shot cell and seed before its runs.

The package: ``spec`` (the study file's tables as models, the planned runs), ``load`` (the file -> a
``Study`` with every run planned), ``stages`` (the stages per cell and seed), ``stage_actions`` (build,
resume or skip each stage, and its work), ``stage_build`` (building one), ``budget`` (the equal training budget), ``pictures`` (the report's
pictures), ``checks`` (every input opened before anything runs), ``actions`` (run, resume, probe or skip,
from what the output already holds), ``run`` (carrying out the plan) and ``command`` (all of it and the
report: ``run_study``, what ``dsc study`` and ``dsc.study()`` call).
"""

from __future__ import annotations

from dsc.study.actions import PROBE_RESULT_FREE, plan, plan_rows
from dsc.study.budget import budget_text
from dsc.study.checks import check_inputs
from dsc.study.command import StudyResult, run_study
from dsc.study.load import load_study
from dsc.study.run import execute
from dsc.study.spec import (
    BUDGETS,
    METHODS,
    PICTURES,
    SECTIONS,
    USES,
    VARIANTS,
    Pictures,
    PlannedRun,
    Study,
    StudySpec,
)

__all__ = ["BUDGETS", "METHODS", "PICTURES", "PROBE_RESULT_FREE", "SECTIONS", "USES", "VARIANTS", "Pictures",
           "PlannedRun", "Study", "StudyResult", "StudySpec", "budget_text", "check_inputs", "execute", "load_study",
           "plan", "plan_rows", "run_study"]
