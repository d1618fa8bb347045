"""``dsc augment``: synthetic variants of real images, in-distribution (positives) or OOD (negatives).

The job: choose source images (one split, optional classes, seeded few-shot), plan every synthetic image
(source row, variant, seed, strength, prompt), then generate in batches with ``dsc.diffusion.generate``.
Each finished batch is saved atomically as a shard in ``AUG.h5.shards/``, so ``--resume`` continues after
Ctrl-C or ``kill -9``; at the end the shards are merged in row order into the store (``.partial``, then
renamed).
The plan is a pure function of the settings and DATA.h5: image k is the same whatever the batch size
or the number of interruptions (one generator per image, seeded from (seed, mode, OOD strategy, source
index, variant), so a normal and an OOD store made with the same ``--seed`` never share an image).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsc import interrupts
from dsc.console import count, plural
from dsc.errors import ConfigError, InputError, Interrupted, MismatchError, OutputExistsError, ResourceError
from dsc.outputs import check_output
from dsc.provenance import Timings, json_hash, provenance
from dsc.settings import AugmentSettings
from dsc.store.schema import REJECTION_COLUMNS, REJECTIONS

log = logging.getLogger(__name__)

#: The paper settings. ``--preset`` fills only values still at their default.
#: An OOD preset never takes its normal strengths: DA-Fusion (normal strengths up to 1.0) has none for OOD.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "dafusion": {  # Trabucco et al.: strength drawn from {0.25, 0.5, 0.75, 1.0}, guidance 7.5, M = 10, 50 steps
        mode: {"guidance": 7.5, "per_image": 10, "steps": 50, "prompt_template": "a photo of a {token}",
               "mask_dilation": 16, **({"strength": [0.25, 0.5, 0.75, 1.0]} if mode == "normal" else {})}
        for mode in ("normal", "ood")},
    "thesis": {  # the study: strength 0.2 (normal) / 0.5 (OOD), guidance 15, M = 4, 16 real images per class
        "normal": {"strength": [0.2], "guidance": 15.0, "per_image": 4, "examples_per_class": 16},
        "ood": {"strength": [0.5], "guidance": 15.0, "per_image": 4, "examples_per_class": 16,
                "ood_strategy": "strength"},
    },
}
#: ``--filter RUN`` without ``--min-confidence`` (normal) or ``--max-source-confidence`` (OOD).
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_MAX_SOURCE_CONFIDENCE = 0.5
DEFAULT_STRENGTH = {"normal": 0.5, "strength": 0.75, "other-class": 0.75, "blend": 0.75, "inpaint-object": 1.0}


@dataclass
class Planned:
    """One synthetic image: where it comes from and what conditions it."""

    source_index: int
    variant: int
    source_label: int
    seed: int
    strength: float
    other_label: int = -1  # class whose prompt replaces or blends with the source's (other-class, blend)


@dataclass
class AugmentResult:
    output: Path
    n_images: int
    n_generated: int
    resumed: bool
    seconds: float
    images_per_second: float
    summary: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- settings
def effective_settings(settings: AugmentSettings, sources: dict[str, str] | None = None) -> AugmentSettings:
    """Apply ``preset`` to the values still at their default, then the mode's default strength."""
    sources = sources or {}
    values = settings.model_dump()
    if settings.preset:
        for key, value in PRESETS[settings.preset][settings.mode].items():
            if sources.get(f"augment.{key}", "default") == "default":
                values[key] = value
    if values["strength"] is None:
        key = "normal" if values["mode"] == "normal" else values["ood_strategy"]
        values["strength"] = [DEFAULT_STRENGTH[key]]
        _check_ood_strength(values)
    if values["mode"] == "ood" and values["ood_strategy"] == "inpaint-object":
        if sources.get("augment.mask", "default") != "default" and values["mask"] != "object":
            raise ConfigError(f"--ood-strategy inpaint-object edits the object; it cannot use --mask "
                              f"{values['mask']}", hint="drop --mask (inpaint-object implies --mask object)")
        values["mask"] = "object"
    _filter_thresholds(values, sources)
    out = AugmentSettings.model_validate(values)
    probs = out.strength_probs
    if probs is not None and len(probs) != len(out.strength):
        raise ConfigError(f"{len(probs)} strength probabilities for {len(out.strength)} strengths",
                          hint="give one probability per --strength value")
    from dsc.diffusion.generate import check_strength

    for s in out.strength:
        check_strength(out.steps, s)
    return out


def _check_ood_strength(values: dict[str, Any]) -> None:
    """OOD by ``strength`` means a stronger edit than the positives get, with the same prompt; refuse a
    default OOD strength that the preset's (or the default) normal strengths reach (the user may set one)."""
    if values["mode"] != "ood" or values["ood_strategy"] != "strength":
        return
    preset = values.get("preset")
    normal = (PRESETS[preset]["normal"].get("strength") if preset else None) or [DEFAULT_STRENGTH["normal"]]
    if min(values["strength"]) <= max(normal):
        name = f"--preset {preset}" if preset else "the defaults"
        raise ConfigError(
            f"{name} with --mode ood --ood-strategy strength has no OOD strength of its own: the normal "
            f"strengths ({', '.join(f'{x:g}' for x in normal)}) reach {max(normal):g}, so an OOD image would be "
            "made like a positive",
            hint="set --strength yourself, or use --ood-strategy blend, other-class or inpaint-object")


def _filter_thresholds(values: dict[str, Any], sources: dict[str, str]) -> None:
    """The filter threshold of the mode: ``min_confidence`` (normal) or ``max_source_confidence`` (OOD), each
    only with ``--filter`` (default 0.5 with it). The other mode's threshold given on the command line (or in
    code) is refused; from a config file or the environment, which may hold both, it is dropped."""
    ood = values["mode"] == "ood"
    own, other = ("max_source_confidence", "min_confidence") if ood else ("min_confidence", "max_source_confidence")
    if values[other] is not None:
        if sources.get(f"augment.{other}", "").startswith(("config file", "environment")):
            values[other] = None
        elif ood:
            raise ConfigError("--min-confidence filters normal images; OOD images are filtered with "
                              "--max-source-confidence X",
                              hint="use --max-source-confidence X: an OOD image the real-data classifier still "
                                   "gives its source class with probability above X is rejected")
        else:
            raise ConfigError("--max-source-confidence filters OOD images (--mode ood); normal images are "
                              "filtered with --min-confidence X", hint="use --min-confidence X, or --mode ood")
    flag = "--" + own.replace("_", "-")
    if values[own] is not None and values["filter"] is None:
        raise ConfigError(f"{flag} needs --filter RUN (the classifier that scores the images)",
                          hint=f"add --filter RUN (a `dsc baseline` run trained on real data), or drop {flag}")
    if values["filter"] is not None and values[own] is None:
        values[own] = DEFAULT_MAX_SOURCE_CONFIDENCE if ood else DEFAULT_MIN_CONFIDENCE


# -------------------------------------------------------------------------------------------------- plan
#: What ``image_seed`` hashes, in order (recorded in every synthetic store as ``seed_derivation``).
SEED_INPUTS = ("base_seed", "mode", "ood_strategy", "source_index", "variant")


def seed_role(mode: str, ood_strategy: str) -> str:
    """The part of an image's seed that comes from its role: "normal", or "ood:<strategy>"."""
    return "normal" if mode == "normal" else f"ood:{ood_strategy}"


def image_seed(seed: int, mode: str, ood_strategy: str, source_index: int, variant: int) -> int:
    """The seed of one synthetic image: a hash of (seed, mode, OOD strategy, source row, variant), 63 bits.

    The mode and OOD strategy enter the hash, so stores of different roles made with the same ``--seed`` draw
    other noise, strengths and partner classes for the same source image (they can never be copies). The OOD
    strategy is ignored in normal mode.
    """
    role = int.from_bytes(hashlib.blake2b(seed_role(mode, ood_strategy).encode(), digest_size=8).digest(), "big")
    state = np.random.SeedSequence([seed, role, source_index, variant]).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & ((1 << 63) - 1))


def select_sources(labels: np.ndarray, split: np.ndarray, settings: AugmentSettings,
                   class_ids: list[int]) -> np.ndarray:
    """Rows of ``settings.split`` of the chosen classes; a seeded few-shot subset per class when asked.

    The few-shot draw is the one `dsc invert` makes (same seed scheme), so with the same seed and
    ``--examples-per-class`` the variants come from the images the tokens were learned on.
    """
    rows_all = []
    for label in class_ids:
        rows = np.flatnonzero((labels == label) & (split == settings.split))
        k = settings.examples_per_class
        if k is not None and rows.size > k:
            rng = np.random.default_rng([settings.seed, label, 0x5E1EC7])
            rows = np.sort(rng.choice(rows, size=k, replace=False))
        rows_all.append(rows)
    return np.sort(np.concatenate(rows_all)) if rows_all else np.empty(0, dtype=np.int64)


def plan_images(rows: np.ndarray, labels: np.ndarray, settings: AugmentSettings,
                class_ids: list[int]) -> list[Planned]:
    """Every synthetic image, in output order (source by source, variant by variant)."""
    strengths = np.asarray(settings.strength, dtype=np.float64)
    probs = settings.strength_probs
    needs_other = settings.mode == "ood" and settings.ood_strategy in ("other-class", "blend")
    out: list[Planned] = []
    for row in rows.tolist():
        label = int(labels[row])
        others = [c for c in class_ids if c != label]
        for v in range(settings.per_image):
            seed = image_seed(settings.seed, settings.mode, settings.ood_strategy, row, v)
            rng = np.random.default_rng(seed)  # strength and partner class: drawn from the image's own seed
            strength = float(strengths[rng.choice(len(strengths), p=probs)]) if len(strengths) > 1 else \
                float(strengths[0])
            other = int(others[rng.integers(len(others))]) if needs_other else -1
            out.append(Planned(row, v, label, seed, strength, other))
    return out


# ---------------------------------------------------------------------------------------------- images
def _resize(images: np.ndarray, size: int, *, mask: bool = False) -> np.ndarray:
    from PIL import Image

    if images.shape[1] == size and images.shape[2] == size:
        return images
    resample = Image.NEAREST if mask else Image.BICUBIC
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), resample)) for im in images])


def edit_masks(masks: np.ndarray, mode: str, dilation: int) -> np.ndarray:
    """Where pixels may change: the object mask grown by ``dilation`` px (a square max filter, as DA-Fusion's
    16-px max filter) for ``object``, its complement for ``background``."""
    import torch

    obj = torch.from_numpy(masks >= 128 if masks.max(initial=0) > 1 else masks > 0).float()[:, None]
    if dilation > 0:
        obj = torch.nn.functional.max_pool2d(obj, kernel_size=2 * dilation + 1, stride=1, padding=dilation)
    grown = obj[:, 0].numpy() > 0.5
    return grown if mode == "object" else ~grown


# ----------------------------------------------------------------------------------------------- the job
class _Conditioning:
    """Prompt embeddings, computed once per distinct prompt for the whole job."""

    def __init__(self, plugin: Any, components: Any, class_names: list[str], settings: AugmentSettings) -> None:
        self.plugin, self.components, self.names, self.s = plugin, components, class_names, settings
        self._cache: dict[str, Any] = {}

    def embed(self, prompt: str) -> Any:
        if prompt not in self._cache:
            self._cache[prompt] = self.plugin.encode(self.components, [prompt])[0].to(
                device=self.components.device, dtype=self.components.unet.dtype)
        return self._cache[prompt]

    def class_prompt(self, label: int) -> str:
        return self.plugin.prompt(self.s.prompt_template, self.names[label])

    def for_image(self, p: Planned) -> tuple[Any, Any, str]:
        """(cond, uncond, recorded prompt) of one planned image."""
        s = self.s
        own = self.class_prompt(p.source_label)
        if s.mode == "normal" or s.ood_strategy == "strength":
            return self.embed(own), self.embed(""), own
        if s.ood_strategy == "other-class":
            other = self.class_prompt(p.other_label)
            return self.embed(other), self.embed(""), other
        if s.ood_strategy == "blend":
            other = self.class_prompt(p.other_label)
            w = s.blend_weight
            key = f"blend:{w}:{own}|{other}"
            if key not in self._cache:
                self._cache[key] = (1 - w) * self.embed(own) + w * self.embed(other)
            return self._cache[key], self.embed(""), f"blend({w:g}): {own} | {other}"
        # inpaint-object: a neutral prompt, guided away from the source class (its prompt is the negative)
        return self.embed(s.ood_prompt), self.embed(own), f"{s.ood_prompt} [negative: {own}]"


def _check_inputs(store: Any, s: AugmentSettings) -> list[int]:
    """Class ids to generate for; errors for unknown classes, missing masks, empty selections."""
    names = store.classes
    if s.classes:
        unknown = [c for c in s.classes if c not in names]
        if unknown:
            raise InputError(f"unknown {plural(len(unknown), 'class', 'classes')} {', '.join(unknown)} in "
                             f"{store.path}",
                             hint=f"classes are: {', '.join(names)}")
        class_ids = [names.index(c) for c in s.classes]
    else:
        class_ids = list(range(len(names)))
    if s.mode == "ood" and s.ood_strategy == "inpaint-object" and not store.has_masks:
        raise InputError(f"--ood-strategy inpaint-object replaces the object inside its mask, but {store.path} "
                         "has no object masks", hint="make DATA.h5 with masks (`dsc subset --masks ...`), or use "
                         "--ood-strategy strength, other-class or blend")
    if s.mask != "none" and not store.has_masks:
        raise InputError(f"--mask {s.mask} needs object masks, but {store.path} has none",
                         hint="make DATA.h5 with masks (`dsc subset --masks ...`), or use --mask none")
    if s.mode == "ood" and s.ood_strategy in ("other-class", "blend") and len(class_ids) < 2:
        raise InputError(f"--ood-strategy {s.ood_strategy} needs at least two classes",
                         hint="use --ood-strategy strength or inpaint-object")
    return class_ids


def _oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


class AugmentJob:
    """Everything ``run_augment`` and ``preview`` share: inputs checked, plan made, model loaded lazily."""

    def __init__(self, data: Path, settings: AugmentSettings, sources: dict[str, str] | None = None) -> None:
        from dsc.store import open_store

        self.data_path = Path(data)
        self.s = effective_settings(settings, sources)
        self.sources = sources or {}
        self.store = open_store(self.data_path, kind="data")
        self.class_names = self.store.classes
        self.class_ids = _check_inputs(self.store, self.s)
        labels, split = self.store.labels, self.store.split
        self.rows = select_sources(labels, split, self.s, self.class_ids)
        if self.rows.size == 0:
            raise InputError(f"{self.data_path} has no {self.s.split} images of the chosen classes",
                             hint="check --split and --classes")
        self.plan = plan_images(self.rows, labels, self.s, self.class_ids)
        self._check_early()
        self.filter = self._load_filter()
        self.components: Any = None
        self.plugin_info: dict[str, Any] = {}
        self.timings = Timings()

    def _check_early(self) -> None:
        """Fail before the (slow) model load: unknown strategy or scheduler, options the strategy refuses
        (DA-Fusion: missing tokens or token files)."""
        from dsc import registry
        from dsc.diffusion.schedulers import scheduler_names

        if self.s.scheduler not in scheduler_names():
            raise ConfigError(f"unknown scheduler {self.s.scheduler!r}",
                              hint=f"use one of {', '.join(scheduler_names())}")
        fields = registry.get_plugin("augmenter", self.s.strategy).Options.model_fields
        options = {"tokens": self.s.tokens} if "tokens" in fields else {}  # --tokens: the DA-Fusion family's
        self.plugin = registry.create("augmenter", self.s.strategy, options)
        self.plugin.check([self.class_names[c] for c in self.class_ids])

    def _load_filter(self) -> Any:
        """The ``--filter`` run's classifier, loaded once per job (None without ``--filter``)."""
        if self.s.filter is None:
            return None
        from dsc import console
        from dsc.evaluate.filter import ConfidenceFilter

        with console.status(f"loading the --filter classifier of {self.s.filter}…"):
            filt = ConfidenceFilter(self.s.filter)
        if filt.classes != self.class_names:
            raise MismatchError(f"filter run {self.s.filter} has classes {', '.join(filt.classes)}, but "
                                f"{self.data_path} has {', '.join(self.class_names)}",
                                hint="filter with a run trained on this DATA.h5")
        return filt

    @property
    def filter_rule(self) -> str:
        """Which images the filter keeps: confident ones (normal), unconfident ones (OOD)."""
        return f"keep score >= {self.threshold:g}" if self.s.mode == "normal" else f"keep score <= {self.threshold:g}"

    @property
    def threshold(self) -> float:
        """``--min-confidence`` (normal) or ``--max-source-confidence`` (OOD)."""
        x = self.s.min_confidence if self.s.mode == "normal" else self.s.max_source_confidence
        return float(x)  # type: ignore[arg-type]  # set by effective_settings whenever --filter is

    def keep(self, scores: np.ndarray) -> np.ndarray:
        """Normal images must still look like their source class (score >= X); OOD images must not (score
        <= X of --max-source-confidence: an "OOD" image the real-data classifier still puts in its source class
        with a probability above X is rejected as label noise)."""
        x = self.threshold
        return scores >= x if self.s.mode == "normal" else scores <= x

    # ------------------------------------------------------------------------------------- model
    def load(self) -> None:
        """Load the model and let the strategy install what it needs (tokens)."""
        from dsc import registry
        from dsc.diffusion.models import load_components
        from dsc.diffusion.schedulers import make_scheduler

        plugin_cls = type(self.plugin)
        info = registry.info("augmenter", self.s.strategy)
        with self.timings.stage("load_model"):
            self.components = load_components(self.s.model, revision=self.s.revision,
                                              local_files_only=self.s.local_files_only, device=self.s.device,
                                              dtype=self.s.dtype)
        self.scheduler = make_scheduler(self.s.scheduler, self.components.scheduler)
        with self.timings.stage("prepare"):
            names = [self.class_names[c] for c in self.class_ids]
            self.plugin_info = self.plugin.prepare(self.components, names) or {}
        manifest = self.plugin_info.get("tokens_manifest", {})
        if manifest.get("data_fingerprint") and manifest["data_fingerprint"] != self.store.fingerprint:
            log.warning("tokens in %s were learned from another DATA.h5 (fingerprint %s, this one is %s)",
                        self.s.tokens, manifest["data_fingerprint"], self.store.fingerprint)
        self.plugin_meta = {"name": self.s.strategy, "class": f"{plugin_cls.__module__}.{plugin_cls.__qualname__}",
                            "distribution": info.distribution, "version": info.version}
        self.cond = _Conditioning(self.plugin, self.components, self.class_names, self.s)
        self.inpaint = self.s.mask != "none"
        self.scheduler_label = f"{self.s.scheduler}:{type(self.scheduler).__name__}"

    # -------------------------------------------------------------------------------- generation
    def _sources(self, rows: list[int], cache: dict[int, Any]) -> dict[int, Any]:
        """Encoded sources for ``rows``: reused from the previous batch, else read, resized and encoded."""
        from dsc.diffusion.generate import encode_source

        out = {r: cache[r] for r in rows if r in cache}
        todo = [r for r in dict.fromkeys(rows) if r not in out]
        if todo:
            res = self.s.resolution
            images = _resize(self.store.images(todo), res)
            masks = None
            if self.inpaint:
                masks = edit_masks(_resize(self.store.read("masks", todo), res, mask=True), self.s.mask,
                                   self.s.mask_dilation)
            nine = int(self.components.unet.config.in_channels) == 9
            for k, r in enumerate(todo):
                out[r] = encode_source(self.components.vae, images[k], None if masks is None else masks[k],
                                       masked_latents=nine)
        return out

    def generate(self, batch: list[Planned], cache: dict[int, Any]) -> tuple[np.ndarray, list[str], dict]:
        """uint8 images for a batch of planned images, their recorded prompts, and the source cache."""
        import torch

        from dsc.diffusion.generate import Request, generate

        try:
            sources = self._sources([p.source_index for p in batch], cache)
            requests, prompts = [], []
            for p in batch:
                cond, uncond, text = self.cond.for_image(p)
                requests.append(Request(sources[p.source_index], cond, uncond, p.strength,
                                        torch.Generator().manual_seed(p.seed)))
                prompts.append(text)
            images = generate(self.components.vae, self.components.unet, self.scheduler, requests,
                              steps=self.s.steps, guidance=self.s.guidance, inpaint=self.inpaint)
        except (RuntimeError, MemoryError) as exc:
            if isinstance(exc, MemoryError) or _oom(exc):
                raise ResourceError(f"out of memory generating a batch of {count(len(batch), 'image')} on "
                                    f"{self.components.device}",
                                    hint=f"rerun with a smaller --batch-size (e.g. {max(1, len(batch) // 2)}) "
                                         "and --resume") from None
            raise
        return images, prompts, sources

    # -------------------------------------------------------------------------------- provenance
    def plan_hash(self) -> str:
        s = self.s.model_dump(mode="json")
        s.pop("batch_size", None)
        return json_hash({"data": self.store.fingerprint, "settings": s,
                          "plan": [(p.source_index, p.variant, p.seed, p.strength, p.other_label)
                                   for p in self.plan]})

    def root_attrs(self) -> dict[str, Any]:
        prov = provenance(self.s.model_dump(mode="json"))
        inputs = {"data_path": str(self.data_path.resolve()), "data_fingerprint": self.store.fingerprint,
                  "tokens_manifest": self.plugin_info.get("tokens_manifest"),
                  "model": self.components.describe()}
        ood = self.s.mode == "ood"
        return {"settings": prov["settings"], "sources": self.sources, "versions": prov["versions"],
                "command": prov["command"], "inputs": inputs, "plugin": self.plugin_meta,
                "model_id": self.components.model_id, "model_revision": self.components.revision or "",
                "mode": self.s.mode, "ood_strategy": self.s.ood_strategy if ood else "",
                "strategy": self.s.strategy, "source_split": self.s.split,
                "evaluation_only": self.s.split != "train", "plan_hash": self.plan_hash(),
                "seed_derivation": {"function": "dsc.augment.image_seed", "inputs": list(SEED_INPUTS),
                                    "base_seed": self.s.seed, "role": seed_role(self.s.mode, self.s.ood_strategy)},
                "extra": {"tokens": self.plugin_info.get("tokens"), "host": prov["host"],
                          "scheduler": self.scheduler_label, "n_planned": len(self.plan)}}

    def filter_attrs(self) -> dict[str, Any]:
        """The root ``filter`` attribute (counts are added when the store is assembled)."""
        f = self.filter
        return {"run": str(Path(self.s.filter).resolve()), "classifier": f.source, "fingerprint": f.fingerprint,
                "min_confidence" if self.s.mode == "normal" else "max_source_confidence": self.threshold,
                "rule": self.filter_rule,
                "score": "probability the run's classifier gives the source class"}


def shard_dir(output: Path) -> Path:
    """Where finished batches wait until the store is assembled: ``AUG.h5.shards/``."""
    return output.with_name(output.name + ".shards")


def _save_shard(folder: Path, start: int, columns: dict[str, np.ndarray], seconds: float,
                end: int | None = None) -> None:
    """One finished batch (plan rows ``start:end``), written under a temporary name and renamed: complete or
    absent, even on kill -9. With ``--filter`` it holds the accepted rows and the ``rej_*`` records."""
    import os

    end = start + len(columns["images"]) if end is None else end
    tmp = folder / f".rows-{start:08d}-{end:08d}.tmp.npz"
    with tmp.open("wb") as fh:
        np.savez(fh, seconds=np.float64(seconds), **columns)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / f"rows-{start:08d}-{end:08d}.npz")


def _shards(folder: Path) -> list[tuple[int, int, Path]]:
    out = []
    for path in folder.glob("rows-*.npz"):
        _, a, b = path.stem.split("-")
        out.append((int(a), int(b), path))
    return sorted(out)


def _columns(job: AugmentJob, batch: list[Planned], images: np.ndarray, prompts: list[str]) -> dict[str, Any]:
    s, n, ood = job.s, len(batch), job.s.mode == "ood"
    return dict(
        images=images, labels=np.array([-1 if ood else p.source_label for p in batch], dtype=np.int64),
        is_ood=np.full(n, ood), source_label=np.array([p.source_label for p in batch], dtype=np.int64),
        source_index=np.array([p.source_index for p in batch], dtype=np.int64),
        variant=np.array([p.variant for p in batch], dtype=np.int32),
        other_label=np.array([p.other_label for p in batch], dtype=np.int64),
        split=np.array([s.split] * n), strategy=np.array([s.strategy] * n), prompt=np.array(prompts),
        strength=np.array([p.strength for p in batch], dtype=np.float32),
        guidance=np.full(n, s.guidance, dtype=np.float32), steps=np.full(n, s.steps, dtype=np.int32),
        scheduler=np.array([job.scheduler_label] * n), seed=np.array([p.seed for p in batch], dtype=np.int64),
        base_seed=np.full(n, s.seed, dtype=np.int64), ood_strategy=np.array([s.ood_strategy if ood else ""] * n))


def _apply_filter(job: AugmentJob, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Score a generated batch; keep the accepted rows (with ``filter_score``), add ``rej_*`` records."""
    scores = job.filter(columns["images"], columns["source_label"])
    keep = job.keep(scores)
    out = {k: v[keep] for k, v in columns.items()}
    out["filter_score"] = scores[keep].astype(np.float32)
    rejected = {**columns, "score": scores.astype(np.float32)}
    for name in REJECTION_COLUMNS:
        out[f"rej_{name}"] = rejected[name][~keep]
    return out


def _summary(columns: dict[str, np.ndarray], class_names: list[str],
             rejected: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    src, ood, strength, sidx = (columns[k] for k in ("source_label", "is_ood", "strength", "source_index"))
    out: dict[str, dict[str, Any]] = {}
    labels = set(src.tolist()) | (set(rejected.tolist()) if rejected is not None else set())
    for label in sorted(labels):
        sel = src == label
        row = {"sources": int(np.unique(sidx[sel]).size), "images": int(sel.sum()), "ood": int(ood[sel].sum()),
               "mean_strength": round(float(strength[sel].mean()), 4) if sel.any() else 0.0}
        if rejected is not None:  # --filter: images = accepted
            n_rej = int((rejected == label).sum())
            row.update(generated=row["images"] + n_rej, rejected=n_rej,
                       acceptance=round(row["images"] / (row["images"] + n_rej), 4))
        out[class_names[label]] = row
    return out


def _assemble(job: AugmentJob, folder: Path, output: Path, force: bool, timings: dict[str, float]) -> dict:
    """Merge the shards, in row order, into the store (``.partial`` then renamed); return the summary."""
    from dsc.store import StoreWriter

    shards = _shards(folder)
    expected = 0
    for a, b, path in shards:
        if a != expected:
            raise MismatchError(f"{folder} has overlapping or missing batches near row {expected} ({path.name})",
                                hint="pass --force to start over")
        expected = b
    if expected != len(job.plan):
        raise MismatchError(f"{folder} covers {expected} of {len(job.plan)} images", hint="rerun with --resume")
    res = job.s.resolution
    keep: dict[str, list[np.ndarray]] = {k: [] for k in ("source_label", "is_ood", "strength", "source_index")}
    rejections: dict[str, list[np.ndarray]] = {k: [] for k in REJECTION_COLUMNS}
    filtered = job.filter is not None
    seconds = 0.0
    with StoreWriter(output, kind="synthetic", attrs=job.root_attrs(), force=force or output.exists()) as writer:
        writer.set_classes(job.class_names)
        writer.create_column("images", (res, res, 3), np.uint8, chunk_rows=1)
        writer.create_row_columns()  # the synthetic store's columns (dsc/store/schema.py)
        if filtered:
            writer.create_column("filter_score")
        for _, _, path in shards:
            with np.load(path) as z:
                cols = {k: z[k] for k in z.files if k != "seconds"}
                seconds += float(z["seconds"])
            for name in REJECTION_COLUMNS:
                if f"rej_{name}" in cols:
                    rejections[name].append(cols.pop(f"rej_{name}"))
            for name in ("split", "strategy", "prompt", "scheduler", "ood_strategy"):
                cols[name] = [str(x) for x in cols[name]]
            if len(cols["images"]):
                writer.append(**cols)
            for k in keep:
                keep[k].append(np.asarray(cols[k]))
        rejected = {k: np.concatenate(v) for k, v in rejections.items()} if filtered else None
        summary = _summary({k: np.concatenate(v) for k, v in keep.items()}, job.class_names,
                           rejected["source_label"] if rejected is not None else None)
        if rejected is not None:
            writer.add_group(REJECTIONS, rejected, count=len(rejected["score"]))
            if len(rejected["score"]) == len(job.plan):
                log.warning("the filter rejected %s (%s); the store has no samples",
                            "the only image" if len(job.plan) == 1 else f"all {len(job.plan)} images", job.filter_rule)
            per_class = {name: {"accepted": row["images"], "rejected": row["rejected"]}
                         for name, row in summary.items()}
            writer.set_attrs(filter={**job.filter_attrs(), "accepted": int(sum(len(v) for v in keep["is_ood"])),
                                     "rejected": len(rejected["score"]), "per_class": per_class})
        timings = {**timings, "generate_all_sessions": round(seconds, 4),
                   "images_per_second_all_sessions": round(len(job.plan) / seconds, 4) if seconds else 0.0}
        writer.set_attrs(timings=timings, summary=summary)
        writer.finalize()
    return summary


def run_augment(data: Path, output: Path, settings: AugmentSettings, sources: dict[str, str] | None = None, *,
                force: bool = False, resume: bool = False, show_progress: bool = True,
                on_batch: Callable[[int, int], None] | None = None) -> AugmentResult:
    """Generate every planned image into ``output`` (a synthetic store); resumable.

    Each finished batch is saved atomically in ``AUG.h5.shards/`` (complete or absent, whatever kills the
    process); ``resume=True`` generates only the rows no shard holds; at the end the shards are merged in row
    order into the store (written as ``.partial``, then renamed) and removed. ``on_batch(done, total)`` is
    called after each batch is on disk (tests use it to simulate a crash).
    """
    from dsc import parallel

    with parallel.session():
        return _run_augment(data, output, settings, sources, force=force, resume=resume,
                            show_progress=show_progress, on_batch=on_batch)


def _run_augment(data: Path, output: Path, settings: AugmentSettings, sources: dict[str, str] | None, *,
                 force: bool, resume: bool, show_progress: bool,
                 on_batch: Callable[[int, int], None] | None) -> AugmentResult:
    """``run_augment`` inside a (possibly multi-process) session: under ``accelerate launch``/``torchrun`` each
    process generates the batch slots ``k`` with ``k % world == rank`` into the shared shards folder; the main
    process holds the lock, writes the plan and merges the shards after a barrier (the same store as one
    process makes, since every image has its own seeded generator)."""
    import json

    from dsc import parallel
    from dsc.locks import OutputLock
    from dsc.outputs import atomic_write_json, claim, remove

    output = Path(output)
    folder = shard_dir(output)
    with parallel.together("checking the inputs"):
        check_output(output, force=force, resume=resume)
        if folder.exists() and not (resume or force):
            raise OutputExistsError(f"an interrupted run left {folder}",
                                    hint="pass --resume to continue it or --force to start over")
        if resume and output.exists() and not folder.exists():
            raise OutputExistsError(f"{output} is already complete",
                                    hint="nothing to resume; pass --force to recreate it")
        job = AugmentJob(data, settings, sources)
        claim(folder)  # a failure before the first batch leaves no AUG.h5.shards/ holding only plan.json
    s = job.s
    start_time = time.perf_counter()
    lock = OutputLock(folder)  # one writer per output: a second command on the same AUG.h5 is refused
    plan_file = folder / "plan.json"
    resumed = False
    try:
        with parallel.together("preparing the output"):
            if parallel.is_main():
                lock.acquire()
                if force and not resume:
                    remove(folder)
                resumed = plan_file.exists()
                if resumed:
                    _check_same_plan(json.loads(plan_file.read_text()), job, folder)
        resumed = bool(parallel.broadcast_object(resumed))
        with parallel.together("loading the model"):
            job.load()
            if parallel.is_main():
                folder.mkdir(parents=True, exist_ok=True)
                if not resumed:
                    atomic_write_json(plan_file, {"plan_hash": job.plan_hash(), "output": str(output),
                                                  "images": len(job.plan), "settings": _plan_settings(job),
                                                  "data_fingerprint": job.store.fingerprint})
        total = len(job.plan)
        covered = np.zeros(total, dtype=bool)
        try:
            n_generated, rate = _generate(job, folder, covered, show_progress, on_batch)
        except KeyboardInterrupt:
            for a, b, _ in _shards(folder):  # a shard saved just before the Ctrl-C counts too
                covered[a:min(b, total)] = True
            kept = int(covered.sum())
            if kept == 0 and not resumed:  # the empty shards folder is removed on the way out
                raise Interrupted(f"no image was finished (0 of {total})",
                                  hint="rerun the same command to start again") from None
            raise Interrupted(f"{kept} of {total} {plural(total, 'image')} kept in {folder}/",
                              hint="rerun the same command with --resume to generate the other "
                                   f"{total - kept}") from None
        summary: dict[str, Any] = {}
        with parallel.together("assembling the store"):
            if parallel.is_main():
                with job.timings.stage("assemble"):
                    summary = _assemble(job, folder, output, force, dict(job.timings))
                remove(folder)
        summary = parallel.broadcast_object(summary)
    finally:
        lock.release()
    job.store.close()
    seconds = time.perf_counter() - start_time
    return AugmentResult(output, total, n_generated, resumed, seconds, rate, summary, s.model_dump(mode="json"))


def _plan_settings(job: AugmentJob) -> dict[str, Any]:
    """The settings a resume must share (batch size may change: every image has its own generator)."""
    settings = job.s.model_dump(mode="json")
    settings.pop("batch_size", None)
    return settings


def _check_same_plan(recorded: dict[str, Any], job: AugmentJob, folder: Path) -> None:
    """Refuse to resume shards made by other settings or from another DATA.h5, naming what changed."""
    if recorded.get("plan_hash") == job.plan_hash():
        return
    old, new = recorded.get("settings"), _plan_settings(job)
    changes = [f"{k}: {_show(old.get(k))} -> {_show(new.get(k))}" for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k)] if isinstance(old, dict) else []
    if recorded.get("data_fingerprint") not in (None, job.store.fingerprint):
        changes.append(f"DATA.h5: fingerprint {recorded['data_fingerprint']} -> {job.store.fingerprint}")
    what = "; ".join(changes) if changes else "other settings or another DATA.h5"
    raise MismatchError(f"cannot resume {folder}: it was started with {what}",
                        hint="resume with the original settings, or pass --force to start over")


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def _generate(job: AugmentJob, folder: Path, covered: np.ndarray, show_progress: bool,
              on_batch: Callable[[int, int], None] | None) -> tuple[int, float]:
    """Generate every row no shard holds (``covered`` is updated as shards land); returns how many rows
    were missing and the images/s of all processes together."""
    from dsc import parallel
    from dsc.console import progress

    s, total = job.s, len(job.plan)
    for a, b, _ in _shards(folder):
        covered[a:min(b, total)] = True
    done = int(covered.sum())
    if done:
        log.info("resuming: %d of %s already generated in %s", done, count(total, "image"), folder)
    world, rank = parallel.world_size(), parallel.rank()
    slots = [slot for k, slot in enumerate(range(0, total, s.batch_size)) if k % world == rank]
    mine = sum(min(slot + s.batch_size, total) - slot for slot in slots)
    cache: dict[int, Any] = {}
    generated_here = 0
    with parallel.together("generating"), progress(unit="img", transient=not show_progress) as bar:
        task = bar.add_task("augment", total=mine, completed=0, status="", visible=show_progress and parallel.is_main())
        for slot in slots:  # absolute batch slots: the same batches on every run and in every process
            stop_slot = min(slot + s.batch_size, total)
            rows = [r for r in range(slot, stop_slot) if not covered[r]]
            bar.advance(task, stop_slot - slot - len(rows))
            if not rows:
                continue
            for start, stop in _runs(rows):
                interrupts.check()  # a swallowed Ctrl-C stops here: the shards kept so far are resumable
                batch = job.plan[start:stop]
                t0 = time.perf_counter()
                with job.timings.stage("generate"):
                    images, prompts, cache = job.generate(batch, cache)
                with job.timings.stage("write"):
                    cols = _columns(job, batch, images, prompts)
                if job.filter is not None:
                    with job.timings.stage("filter"):
                        cols = _apply_filter(job, cols)
                with job.timings.stage("write"):
                    _save_shard(folder, start, cols, time.perf_counter() - t0, end=stop)
                del images
                covered[start:stop] = True
                generated_here += stop - start
                bar.advance(task, stop - start)
                if on_batch is not None:
                    on_batch(int(covered.sum()), total)
    interrupts.check()  # never assemble a store after a Ctrl-C
    gen = job.timings.get("generate", 0.0)
    rate = generated_here / gen if gen else 0.0
    rate = sum(parallel.gather_objects(rate))  # images/s of all processes together
    job.timings["images_per_second"] = round(rate, 4)
    return total - done, rate


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of row numbers as (start, stop) pairs."""
    out: list[tuple[int, int]] = []
    for r in rows:
        if out and out[-1][1] == r:
            out[-1] = (out[-1][0], r + 1)
        else:
            out.append((r, r + 1))
    return out


# ------------------------------------------------------------------------------------------------ preview
def run_preview(data: Path, output: Path, settings: AugmentSettings, sources: dict[str, str] | None = None,
                *, n: int = 4, force: bool = False) -> Path:
    """A grid (PNG, PDF or SVG by the suffix): ``n`` real images (spread over classes), each followed by its
    variants, every tile labelled with its class, strength and seed. No store written."""
    from dsc.report.figures.style import figure_format
    from dsc.report.figures.tiles import Tile, tile_label, write_tile_grid

    output = Path(output)
    figure_format(output)
    check_output(output, force=force)
    if n < 1:
        raise ConfigError("--preview needs a number of images >= 1")
    job = AugmentJob(data, settings, sources)
    labels = job.store.labels
    by_class: dict[int, list[int]] = {}
    for r in job.rows.tolist():
        by_class.setdefault(int(labels[r]), []).append(r)
    chosen: list[int] = []
    while len(chosen) < min(n, job.rows.size):  # round-robin over classes
        for rows in by_class.values():
            if rows and len(chosen) < n:
                chosen.append(rows.pop(0))
    keep = set(chosen)
    plan = [p for p in job.plan if p.source_index in keep]
    job.load()
    res = job.s.resolution
    names = job.store.classes
    tiles: dict[int, list[Tile]] = {r: [] for r in chosen}
    cache: dict[int, Any] = {}
    for start in range(0, len(plan), job.s.batch_size):
        batch = plan[start:start + job.s.batch_size]
        images, _, cache = job.generate(batch, cache)
        for p, im in zip(batch, images, strict=True):
            name = names[p.source_label] + (f" + {names[p.other_label]}" if p.other_label >= 0 else "")
            what = ("OOD, " if job.s.mode == "ood" else "") + f"strength {p.strength:.2f}"
            tiles[p.source_index].append(Tile(im, tile_label(name, what, p.seed)))
    real = _resize(job.store.images(chosen), res)
    rows = [[Tile(real[i], tile_label(names[int(labels[r])], f"real image, row {r}")), *tiles[r]]
            for i, r in enumerate(chosen)]
    write_tile_grid(output, rows)
    job.store.close()
    return output
