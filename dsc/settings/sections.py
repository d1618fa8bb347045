"""The settings of every command: one pydantic section each (``[subset]``, ``[augment]``, ...) and
``DscSettings``, all of them. Each section also declares which of its settings may differ on a resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SD_DEFAULT = "CompVis/stable-diffusion-v1-4"


class Section(BaseModel):
    """One command's settings. ``resume_free`` names the settings that do not change results: they may
    differ when a job is resumed. ``resume_view`` is the one resume rule (dsc/jobs.py applies it)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    resume_free: ClassVar[tuple[str, ...]] = ()

    def resume_view(self) -> dict[str, Any]:
        """The settings a resumed job must share with the partial output (``resume_free`` left out)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in self.resume_free}


class SubsetSettings(Section):
    # decoding processes do not change the store (a study compares a built DATA.h5 by this rule)
    resume_free: ClassVar[tuple[str, ...]] = ("workers",)

    dataset: str = "toyparts"
    root: Path | None = None
    masks: Path | None = None
    super_class: str | None = None
    tag: str | None = None
    classes: int | None = Field(default=None, ge=1, description="choose N classes at random (seeded)")
    class_names: list[str] | None = None
    holdout_classes: int = Field(default=0, ge=0, description="extra classes kept as far-OOD test data")
    min_per_class: int = Field(default=1, ge=1)
    max_per_class: int | None = Field(default=None, ge=1)
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    crop_to_object: bool = False
    mask_dilation: int = Field(default=32, ge=0)
    pad: Literal["edge", "constant"] = Field(default="edge", description="fill outside the image borders")
    on_missing_mask: Literal["error", "skip", "full"] = Field(
        default="error", description="a missing, unreadable or wrongly sized mask: stop, skip the image, or "
        "use a full mask")
    resolution: int = Field(default=224, ge=8, le=4096)
    seed: int = 0
    workers: int = Field(default=0, ge=0, description="decode processes; 0 = one per core")
    options: dict[str, Any] = Field(default_factory=dict, description="dataset plugin options")
    require_groups: bool = Field(default=False, description="refuse to split images that have no group "
                                 "(instead of making each its own group, with a warning)")

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(x < 0 for x in v) or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0:
            raise ValueError("split must be three non-negative fractions train,val,test summing to 1")
        return v


class ModelSettings(Section):
    model: str = SD_DEFAULT
    revision: str | None = None
    local_files_only: bool = False
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"


class InvertSettings(ModelSettings):
    # Only the effective batch (batch_size x gradient_accumulation) changes the learned tokens.
    resume_free: ClassVar[tuple[str, ...]] = (
        "local_files_only", "device", "dtype", "batch_size", "gradient_accumulation", "validation_grids",
        "validation_samples", "validation_steps")

    num_vectors: int = Field(default=4, ge=1)
    initializer: str = "class-name"
    steps: int = Field(default=2000, ge=1)
    lr: float = Field(default=5e-4, gt=0)
    scale_lr: bool = True
    batch_size: int = Field(default=8, ge=1)
    gradient_accumulation: int = Field(default=1, ge=1)
    lr_warmup: int = Field(default=0, ge=0)
    resolution: int = Field(default=512, ge=8)
    examples_per_class: int | None = Field(default=None, ge=1)
    few_shot_seed: int | None = Field(default=None, description="seed of the few-shot draw; default: seed")
    crop_to_object: bool = False
    templates: Literal["dafusion", "diffusers-object", "photo"] = "dafusion"
    flip: bool = Field(default=True, description="also learn from mirrored images (encoded once, like the rest)")
    seed: int = 0
    validation_grids: bool = False
    validation_samples: int = Field(default=4, ge=1, le=16)
    validation_steps: int = Field(default=25, ge=1)
    # personalization (docs/commands/invert.md, "Methods"): tokens, a LoRA on the UNet's attention, or both
    method: Literal["textual-inversion", "lora", "ti+lora"] = "textual-inversion"
    lora_rank: int = Field(default=4, ge=1)
    lora_alpha: float | None = Field(default=None, gt=0, description="None: the rank (LoRA scale 1)")
    lora_targets: list[str] = Field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"], min_length=1)
    lora_lr: float = Field(default=1e-4, gt=0, description="the LoRA's learning rate (never scaled)")
    # DreamBooth prior preservation (lora, ti+lora): class images of the frozen model in every batch
    prior_preservation: bool = False
    prior_images: int = Field(default=100, ge=1, description="class images per class (DreamBooth: 100)")
    prior_weight: float = Field(default=1.0, gt=0, description="weight of their loss (DreamBooth: 1.0)")
    prior_steps: int = Field(default=50, ge=1, description="denoising steps of each class image")

    @property
    def few_shot_draw_seed(self) -> int:
        """The seed of the few-shot draw: ``few_shot_seed``, else ``seed``."""
        return self.seed if self.few_shot_seed is None else self.few_shot_seed

    def resume_view(self) -> dict[str, Any]:
        """As ``Section.resume_view``, plus the derived ``effective_batch``, less what ``method`` does not use."""
        view = {**super().resume_view(), "effective_batch": self.batch_size * self.gradient_accumulation}
        if self.method == "textual-inversion" or not self.prior_preservation:  # no class images
            view = {k: v for k, v in view.items() if not k.startswith("prior_")}
        if self.method == "textual-inversion":  # the LoRA's settings do not apply
            return {k: v for k, v in view.items() if not k.startswith("lora_")}
        if self.method == "lora":  # no tokens
            return {k: v for k, v in view.items() if k not in ("num_vectors", "initializer", "lr", "scale_lr")}
        return view


class AugmentSettings(ModelSettings):
    """``dsc augment``. ``preset`` fills every value still at its default (docs/commands/augment.md)."""

    # every image has its own generator, so the batch size does not change the images
    resume_free: ClassVar[tuple[str, ...]] = ("batch_size",)

    preset: Literal["dafusion", "thesis"] | None = None
    strategy: str = "dafusion"
    tokens: Path | None = None
    mode: Literal["normal", "ood"] = "normal"
    ood_strategy: Literal["strength", "other-class", "inpaint-object", "blend"] = "strength"
    per_image: int = Field(default=10, ge=1)
    strength: list[float] | None = Field(default=None, description="None: 0.5 normal, 0.75 ood, 1.0 inpaint-object")
    strength_probs: list[float] | None = None
    guidance: float = Field(default=7.5, ge=0)
    steps: int = Field(default=50, ge=1)
    scheduler: str = "default"
    prompt_template: str = "a photo of a {token}"
    ood_prompt: str = Field(default="a photo of an object", description="inpaint-object: what replaces the object")
    blend_weight: float = Field(default=0.5, gt=0, lt=1, description="blend: weight of the other class")
    # strategy options (dsc/augment/families.py; None: the strategy's default, left out of the plan hash)
    per_class: int | None = Field(default=None, ge=1, description="text-to-image: images per class; None: "
                                  "--per-image x the class's source images")
    gamma: float | None = Field(default=None, gt=0, description="diff-mix: soft-label weight strength**gamma "
                                "of the partner class; None: 0.8")
    pairs: Literal["uniform", "confusion"] | None = Field(default=None, description="diff-mix: partner class "
                                                          "drawn uniformly or by --filter's val confusion")
    examples_per_class: int | None = Field(default=None, ge=1)
    few_shot_seed: int | None = Field(default=None, description="seed of the few-shot draw; default: seed")
    classes: list[str] | None = None
    batch_size: int = Field(default=8, ge=1)
    seed: int = 0
    mask: Literal["none", "object", "background"] = "none"
    mask_dilation: int = Field(default=16, ge=0)
    split: Literal["train", "val", "test"] = "train"
    resolution: int = Field(default=512, ge=8)
    filter: Path | None = Field(default=None, description="run whose real-data classifier filters the images")
    min_confidence: float | None = Field(default=None, ge=0, le=1,
                                         description="normal images: keep a source-class probability >= X; "
                                         "None with --filter: 0.5")
    max_source_confidence: float | None = Field(
        default=None, ge=0, le=1, description="OOD images: reject a source-class probability above X; None with "
        "--filter: 0.5")

    @property
    def few_shot_draw_seed(self) -> int:
        """The seed of the few-shot draw: ``few_shot_seed``, else ``seed``."""
        return self.seed if self.few_shot_seed is None else self.few_shot_seed

    @field_validator("strength")
    @classmethod
    def _strength_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not (0.0 < s <= 1.0) for s in v)):
            raise ValueError("every strength must lie in (0, 1]")
        return v

    @field_validator("strength_probs")
    @classmethod
    def _probs(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (any(p < 0 for p in v) or abs(sum(v) - 1.0) > 1e-6):
            raise ValueError("strength probabilities must be non-negative and sum to 1")
        return v

    @field_validator("resolution")
    @classmethod
    def _multiple_of_8(cls, v: int) -> int:
        if v % 8:
            raise ValueError("resolution must be a multiple of 8 (the VAE downsamples by 8)")
        return v


class TrainSettings(Section):
    resume_free: ClassVar[tuple[str, ...]] = ("workers",)  # data-loading processes
    backbone: str = "timm:resnet18"
    pretrained: bool = False
    checkpoint: Path | None = None
    image_size: int | None = Field(default=None, ge=8, description="training size in px; default: the resolution "
                                   "of DATA.h5, capped at the backbone's native input size (docs/training.md#image-size)")
    stem: Literal["auto", "imagenet", "small"] = Field(
        default="auto", description="ResNet stem: small (3x3 stride-1 conv, no max-pool), imagenet, or auto: "
        "small for a ResNet from random weights at image_size <= 64 (docs/training.md#small-images)")
    batch_size: int = Field(default=256, ge=2)
    epochs: int = Field(default=100, ge=1, description="passes over the positives; with steps or images: the "
                        "number of evaluation rounds")
    steps: int | None = Field(default=None, ge=1, description="training budget in optimizer steps (instead of "
                              "epochs)")
    images: int | None = Field(default=None, ge=1, description="training budget in images drawn into batches "
                               "(instead of epochs)")
    lr: float = Field(default=0.05, gt=0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = Field(default=1e-4, ge=0)
    warmup_epochs: int = Field(default=0, ge=0)
    seed: int = 0
    balanced: bool = False
    synthetic_policy: Literal["extra", "view"] = "extra"
    synthetic_probability: float = Field(default=0.5, ge=0, le=1)
    augmentation: Literal["auto", "supcon", "light", "none"] = Field(
        default="auto", description="views: auto (light at <= 64 px, supcon above), supcon, light or none")
    workers: int = Field(default=0, ge=0)
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"
    channels_last: bool = True
    knn_k: int = Field(default=20, ge=1)
    negatives_fraction: float | None = Field(default=None, gt=0, lt=1,
                                             description="share of each batch drawn from --negatives; "
                                             "default: their share of all training images")
    examples_per_class: int | None = Field(default=None, ge=1, description="few-shot: train on this many real "
                                           "train images per class, a seeded draw (docs/training.md#few-shot)")
    few_shot_seed: int | None = Field(default=None, description="seed of the few-shot draw; default: seed")
    arm: str | None = Field(default=None, description="the study arm's name (set by dsc study [study.arms]); "
                            "the run's synthetic-data label in metrics.json and the report")

    @property
    def few_shot_draw_seed(self) -> int:
        """The seed of the few-shot draw: ``few_shot_seed``, else ``seed``."""
        return self.seed if self.few_shot_seed is None else self.few_shot_seed

    @model_validator(mode="after")
    def _one_budget(self) -> TrainSettings:
        if self.steps is not None and self.images is not None:
            raise ValueError("set one training budget: steps or images (or neither, for epochs)")
        return self

    @property
    def budget(self) -> str:
        """The unit of the training budget: "epochs", "steps" or "images" (docs/training.md)."""
        return "steps" if self.steps is not None else "images" if self.images is not None else "epochs"


class PretrainSettings(TrainSettings):
    temperature: float = Field(default=0.1, gt=0)
    base_temperature: float | None = None
    head: Literal["mlp-bn", "mlp"] = Field(default="mlp-bn", description="projection head: mlp-bn (BatchNorm "
                                           "projector, as SimCLR v2 / MoCo v3; cannot collapse) or mlp (SupContrast's)")
    head_dim: int = Field(default=128, ge=1)
    head_hidden: int | None = None
    ood_policy: Literal["negatives", "hard", "instance"] = "negatives"
    ood_weight: float = Field(default=1.0, ge=0)
    mix_label: Literal["dominant", "source", "drop"] = Field(
        default="dominant", description="SupCon label of a mixed (diff-mix) image: dominant (its class of weight "
        ">= mix_threshold, else left out of the positives), source (class i), drop (left out); docs/training.md")
    mix_threshold: float = Field(default=0.7, ge=0.5, le=1, description="least weight of the dominant class "
                                 "for mix_label dominant")


class BaselineSettings(TrainSettings):
    ood_loss: Literal["none", "extra-class", "outlier-exposure"] = "none"
    ood_weight: float = Field(default=0.5, ge=0, description="weight of the outlier-exposure term")
    corruptions: bool = Field(default=True, description="measure corruption robustness in the final evaluation")
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    protocol: Literal["fine-tune", "linear"] = Field(
        default="fine-tune", description="fine-tune: encoder and linear layer trained end to end; linear: the "
        "encoder frozen (its weights and BatchNorm statistics), only the linear layer trained, the frozen-features "
        "baseline of a --pretrained or --checkpoint encoder (docs/training.md#protocols)")


class ProbeSettings(Section):
    epochs: int = Field(default=100, ge=1)
    lr: float = Field(default=0.1, gt=0)
    batch_size: int = Field(default=256, ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    with_synthetic: bool = False
    checkpoint: Literal["best", "last"] = "best"
    seed: int = 0
    corruptions: bool = Field(default=True, description="evaluate robustness under image corruptions")
    severities: list[int] = Field(default_factory=lambda: [1, 3, 5], description="corruption severities")
    knn_k: int = Field(default=5, ge=1, description="k of the k-NN OOD score")
    eval_batch_size: int = Field(default=256, ge=1, description="images per batch for feature extraction")
    device: str = "auto"

    @field_validator("severities")
    @classmethod
    def _severities_range(cls, v: list[int]) -> list[int]:
        if not v or any(s not in (1, 2, 3, 4, 5) for s in v):
            raise ValueError("severities must be a non-empty list of values in 1..5")
        return sorted(set(v))


class ReportSettings(Section):
    baseline: str | None = Field(default=None, description="baseline configuration name or run directory")
    per_class: bool = False
    strict: bool = Field(default=False, description="refuse runs made from different DATA.h5 stores")
    curves: bool = True
    primary_metric: Literal["top1", "macro_f1", "ece", "corruption_top1", "ood_auroc", "ood_fpr95",
                            "synthetic_ood_auroc", "synthetic_ood_fpr95"] = Field(
        default="top1", description="the one metric whose comparisons with the baseline are Holm-corrected and "
        "marked; every other metric is secondary")
    ood_score: Literal["msp", "energy", "knn"] = "msp"
    alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level of the tests; intervals "
                         "cover 1 - alpha")
    top_confused: int = Field(default=5, ge=0)
    min_confidence: float = Field(default=0.5, ge=0, le=1, description="confidence filter threshold")
    near_copy_ratio: float = Field(default=0.25, gt=0, description="near-copy: NN distance below this "
                                   "fraction of the median real-to-real NN distance")
    max_per_class: int = Field(default=500, ge=2, description="images per class used for quality")
    features: Literal["random-cnn", "pixels"] = "random-cnn"
    seed: int = 0


class DscSettings(BaseSettings):
    """All of dsc's settings, one section per command."""

    model_config = SettingsConfigDict(
        env_prefix="DSC_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    subset: SubsetSettings = Field(default_factory=SubsetSettings)
    invert: InvertSettings = Field(default_factory=InvertSettings)
    augment: AugmentSettings = Field(default_factory=AugmentSettings)
    pretrain: PretrainSettings = Field(default_factory=PretrainSettings)
    baseline: BaselineSettings = Field(default_factory=BaselineSettings)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
