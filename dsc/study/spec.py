"""The study file's tables as models and the planned runs of a study (``dsc study``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from dsc.study.stages import Stages

METHODS = ("ce", "supcon")
VARIANTS = ("none", "normal", "ood", "normal+ood")
#: What each variant trains with: (normal synthetic positives?, OOD negatives?)
USES = {"none": (False, False), "normal": (True, False), "ood": (False, True), "normal+ood": (True, True)}
BUDGETS = ("steps", "images", "epochs")
#: A named arm ([study.arms]): also its run folders' middle part ('+' as '-').
ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")
SECTIONS = ("study", "subset", "invert", "augment", "train", "pretrain", "baseline", "probe", "report", "slurm")
#: [report] keys naming the pictures the study's report draws, with the `dsc study` / `dsc report` option of each.
PICTURES = {"results_figure": "--results-figure", "samples": "--samples", "confusion": "--confusion",
            "embedding_map": "--embedding-map", "embedding_run": "--embedding-run"}


class StudySpec(BaseModel):
    """The ``[study]`` table."""

    model_config = ConfigDict(extra="forbid")

    data: Path = Field(description="DATA.h5 made by `dsc subset` (built from [subset] when the file has one)")
    synthetic: list[Path] = Field(default_factory=list, description="normal synthetic stores (positives), or "
                                  "names of [augment.NAME] recipes the study builds")
    ood: list[Path] = Field(default_factory=list, description="OOD synthetic stores (negatives), or names of "
                            "[augment.NAME] recipes")
    eval_ood: list[Path] = Field(default_factory=list,
                                 description="evaluation-only OOD stores for `dsc probe --ood`")
    output: Path = Field(default=Path("study"), description="folder of the run directories")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    methods: list[Literal["ce", "supcon"]] = Field(default_factory=lambda: list(METHODS), min_length=1)
    variants: list[Literal["none", "normal", "ood", "normal+ood"]] = Field(
        default_factory=lambda: list(VARIANTS), min_length=1)
    arms: dict[str, list[str]] | None = Field(
        default=None, description="named arms instead of variants ([study.arms]): each arm's name and the stores "
        "or recipes it trains with, taken from synthetic (positives) and ood (negatives); an empty list is the "
        "arm on real data only. Example: dafusion = [\"dafusion\"], diff-mix = [\"diff-mix\"], none = []")
    budget: Literal["steps", "images", "epochs"] = Field(
        default="steps", description="the training budget of every arm of a method: the optimizer steps (or "
        "images) the 'none' arm takes in its epochs; 'epochs': each arm trains its epochs (more images, more "
        "steps). A steps or images value in [train], [pretrain] or [baseline] is used as it is")
    ce_ood_loss: Literal["extra-class", "outlier-exposure"] = Field(
        default="outlier-exposure", description="how the CE baseline uses OOD images when [baseline] sets none")
    examples_per_class: list[int] = Field(
        default_factory=list, description="few-shot sweep: every arm, method and seed is run once per value, "
        "trained on that many real train images per class (the seeded draw of docs/training.md#few-shot); "
        "empty: the whole train split")

    vary: list[Literal["train", "few-shot draw", "synthetic"]] | None = Field(
        default=None, min_length=1,
        description="what a seed changes: the training (initialisation, batches, views, probe), the few-shot "
        "draw of a sweep, the synthetic stores the study builds (tokens and images); a part not listed keeps "
        "the first seed's. Default: all three when the study builds stores, else train and few-shot draw")

    @field_validator("vary")
    @classmethod
    def _vary(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if "train" not in v:
            raise ValueError("vary must include 'train': the report pairs runs by their training seed")
        return list(dict.fromkeys(v))

    @field_validator("arms")
    @classmethod
    def _arms(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("arms is empty: name at least one arm, e.g. none = [] and dafusion = [\"dafusion\"]")
        for name, entries in v.items():
            if not ARM_NAME.fullmatch(name):
                raise ValueError(f"arm name {name!r} must be letters, digits, '-', '_' or '+', starting with a "
                                 "letter or digit")
            if len(set(entries)) != len(entries):
                raise ValueError(f"arm {name!r} lists a store twice")
        dirs = [n.replace("+", "-") for n in v]
        if len(set(dirs)) != len(dirs):
            raise ValueError("two arm names differ only in '+' and '-' (their run folders would clash)")
        return v

    @model_validator(mode="after")
    def _arms_use_pools(self) -> StudySpec:
        if self.arms is None:
            return self
        if "variants" in self.model_fields_set:
            raise ValueError("set either variants or [study.arms], not both (named arms replace the variants)")
        pools = {str(p) for p in [*self.synthetic, *self.ood]}
        unknown = sorted({e for entries in self.arms.values() for e in entries} - pools)
        if unknown:
            raise ValueError(f"arm entries {', '.join(unknown)} are listed in neither synthetic nor ood (list each "
                             "store or recipe there, by its role: positives or negatives)")
        return self

    def arm_stores(self) -> dict[str, tuple[list[Path], list[Path]]]:
        """Each arm's (synthetic stores, OOD stores): the named arms, or the variants' (``USES``)."""
        if self.arms is None:
            return {v: (list(self.synthetic) if USES[v][0] else [], list(self.ood) if USES[v][1] else [])
                    for v in self.variants}
        ood = {str(p) for p in self.ood}
        return {name: ([Path(e) for e in entries if e not in ood], [Path(e) for e in entries if e in ood])
                for name, entries in self.arms.items()}

    @property
    def arm_names(self) -> list[str]:
        """The arms of every method: the named arms, or the variants."""
        return list(self.arms) if self.arms is not None else list(self.variants)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @field_validator("examples_per_class")
    @classmethod
    def _shots(cls, v: list[int]) -> list[int]:
        if any(k < 1 for k in v):
            raise ValueError("examples per class must be at least 1")
        if len(set(v)) != len(v):
            raise ValueError("examples_per_class values must be distinct")
        return sorted(v)

    @property
    def shots(self) -> list[int | None]:
        """The few-shot cells: each ``examples_per_class`` value, or one cell on the whole train split."""
        return list(self.examples_per_class) or [None]


class SlurmSpec(BaseModel):
    """The ``[slurm]`` table: the resources of each run's job under ``dsc study --executor slurm``."""

    model_config = ConfigDict(extra="forbid")

    cluster: Literal["slurm", "local"] = Field(
        default="slurm", description="slurm: submit with sbatch; local: the same job array on this machine "
        "through submitit (to try a study file before a cluster)")
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    timeout_min: int = Field(default=720, ge=1, description="wall time of one run's job; a job that reaches "
                             "it is requeued and resumes from its last checkpoint")
    gpus_per_node: int = Field(default=0, ge=0)
    cpus_per_task: int | None = Field(default=None, ge=1)
    mem_gb: int | None = Field(default=None, ge=1)
    array_parallelism: int | None = Field(default=None, ge=1, description="jobs of the array running at once")
    additional: dict[str, str] = Field(default_factory=dict, description="other sbatch options, e.g. "
                                       "{constraint = \"a100\"}")
    folder: Path | None = Field(default=None, description="job scripts and logs; default <output>/.slurm")

    def parameters(self) -> dict[str, Any]:
        """``submitit.AutoExecutor.update_parameters`` keywords."""
        out: dict[str, Any] = {"timeout_min": self.timeout_min, "gpus_per_node": self.gpus_per_node,
                               "name": "dsc-study"}
        for key in ("cpus_per_task", "mem_gb"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.cluster == "slurm":
            for key in ("partition", "account", "qos", "array_parallelism"):
                if getattr(self, key) is not None:
                    out[f"slurm_{key}"] = getattr(self, key)
            if self.additional:
                out["slurm_additional_parameters"] = dict(self.additional)
        return out


class Pictures(BaseModel):
    """The pictures the study's report draws (``[report]`` keys, or ``dsc study`` options that override them);
    relative paths are relative to the working directory, like every path of the study file."""

    model_config = ConfigDict(extra="forbid")

    results_figure: Path | None = None
    samples: Path | None = None
    confusion: Path | None = None
    embedding_map: Path | None = None
    embedding_run: str | None = None

    def paths(self) -> list[Path]:
        """The figure files asked for."""
        return [p for p in (self.results_figure, self.samples, self.confusion, self.embedding_map) if p is not None]


@dataclass
class PlannedRun:
    """One training run of the study (plus its probe for SupCon)."""

    method: str               # "ce" | "supcon"
    variant: str              # "none" | "normal" | "ood" | "normal+ood", or a named arm
    seed: int
    path: Path
    settings: Any             # BaselineSettings | PretrainSettings
    synthetic: list[Path]
    negatives: list[Path]
    data: Path = Path()
    sources: dict[str, str] = field(default_factory=dict)
    action: str = "run"       # run | resume | probe | skip
    reason: str = ""
    examples_per_class: int | None = None  # the few-shot cell (None: the whole train split)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def command(self) -> str:
        return "baseline" if self.method == "ce" else "pretrain"


@dataclass
class Study:
    """A parsed, validated study file."""

    path: Path
    spec: StudySpec
    sections: dict[str, dict[str, Any]]
    runs: list[PlannedRun] = field(default_factory=list)
    probe_settings: Any = None
    probe_sources: dict[str, str] = field(default_factory=dict)
    report_settings: Any = None
    pictures: Pictures = field(default_factory=Pictures)
    budget_notes: list[str] = field(default_factory=list)   # how each method's training budget was set
    slurm: SlurmSpec = field(default_factory=SlurmSpec)     # [slurm]: used by --executor slurm
    stages: Stages | None = None                            # what the study builds before its runs
    pending_runs: int = 0   # runs planned only once the data is built (its budget and image size depend on it)
