"""What each stage of a study does (build, resume or skip) and how much work it is, from what its output
already holds: dsc's one resume rule (dsc/jobs.py) compares the recorded settings and input fingerprints."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from dsc.console import count
from dsc.errors import MismatchError
from dsc.study.stages import Stage, Stages


def plan_stages(stages: Stages, *, force: bool = False, built: set[Path] | frozenset[Path] = frozenset()
                ) -> Stages:
    """Decide every stage's action, upstream first; an existing output made otherwise is an error naming the
    differences (``force`` rebuilds every stage but those in ``built``, made by this study a moment ago)."""
    data = stages.data
    fingerprints: dict[Path, str] = {}   # DATA.h5 opened once per plan, not once per stage
    for stage in stages.all():
        if stage.path in built:
            stage.action, stage.reason = "skip", "built now"
            continue
        ups = [u for u in ([data] if data is not None and stage is not data else []) + stage.upstream
               if u.action != "skip"]
        _decide(stage, ups, force, fingerprints)
    _estimate(stages)
    return stages


def _decide(stage: Stage, ups: list[Stage], force: bool, fingerprints: dict[Path, str]) -> None:
    done, partial = state(stage)
    if force:
        stage.action, stage.reason = "build", "forced" if done or partial else "new"
        return
    if done:
        if ups:
            raise MismatchError(f"{stage.path} exists, but {ups[0].path}, which it is made from, is to be built "
                                f"({ups[0].reason})", hint="pass --force to rebuild both, or restore "
                                f"{ups[0].path}")
        diff = _differences(stage, fingerprints)
        if diff:
            raise MismatchError(f"{stage.path} was made with other settings or inputs ({'; '.join(diff[:6])})",
                                hint="restore the study's settings, choose another output, or pass --force to "
                                "rebuild it")
        stage.action, stage.reason = "skip", "complete"
    elif partial and not ups:
        stage.action, stage.reason = "resume", "interrupted"
    else:
        stage.action, stage.reason = "build", "its inputs are rebuilt" if partial else "new"


def state(stage: Stage) -> tuple[bool, bool]:
    """(complete output exists, unfinished work exists)."""
    from dsc.augment import shards
    from dsc.outputs import partial_path

    if stage.kind == "data":
        return stage.path.is_file(), False   # subset is not resumable: a leftover is started over
    if stage.kind == "tokens":
        return (stage.path / "tokens.json").is_file(), partial_path(stage.path).exists()
    return stage.path.is_file(), shards.shard_dir(stage.path).exists()


def _differences(stage: Stage, fingerprints: dict[Path, str]) -> list[str]:
    """How the existing output differs from what the study would build (settings, then inputs)."""
    from dsc.jobs import Record, comparable

    settings = stage.settings
    if stage.kind == "store":  # the preset and mode defaults filled in, as augment records them
        from dsc.augment.presets import effective_settings

        settings = effective_settings(settings, stage.sources)
    wanted = settings.model_dump(mode="json")
    cls = type(settings)
    if stage.kind == "data":
        attrs = _attrs(stage.path)
        return Record(comparable(cls, _dict(attrs.get("settings")))).differences(Record(comparable(cls, wanted)))
    if stage.data not in fingerprints:
        fingerprints[stage.data] = _fingerprint(stage.data)
    data = fingerprints[stage.data]
    if stage.kind == "tokens":
        from dsc.diffusion.tokens import load_manifest

        manifest = load_manifest(stage.path)
        return Record(comparable(cls, manifest.settings), {"data": manifest.data_fingerprint}).differences(
            Record(comparable(cls, wanted), {"data": data}))
    attrs = _attrs(stage.path)
    inputs = _dict(attrs.get("inputs"))
    old_inputs = {"data": inputs.get("data_fingerprint")}
    new_inputs = {"data": data}
    if stage.tokens is not None:
        old_inputs["tokens"] = _dict(inputs.get("tokens_manifest")).get("sha256")
        new_inputs["tokens"] = hashlib.sha256((stage.tokens.path / "tokens.json").read_bytes()).hexdigest()
    return Record(comparable(cls, _dict(attrs.get("settings"))), old_inputs).differences(
        Record(comparable(cls, wanted), new_inputs))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _attrs(path: Path) -> dict[str, Any]:
    from dsc.store import open_store

    with open_store(path) as store:
        return dict(store.attrs)


def _fingerprint(path: Path) -> str:
    from dsc.store import open_store

    with open_store(path, kind="data") as store:
        return store.fingerprint


def _existing_data(stages: Stages) -> Path | None:
    """The study's DATA.h5 when it exists and is not rebuilt (what the other stages can be counted on)."""
    path = next(iter(s.data for s in stages.all()), None)
    if path is None or not path.is_file() or (stages.data is not None and stages.data.action != "skip"):
        return None
    return path


def _estimate(stages: Stages) -> None:
    """Each stage's work in words: images and classes when the data exists, else what the settings say."""
    from dsc.few_shot import draw
    from dsc.store import open_store

    path = _existing_data(stages)
    known = None
    if path is not None:
        with open_store(path, kind="data") as store:
            labels, split, known = store.labels, store.split, list(range(len(store.classes)))
    if stages.data is not None:
        s = stages.data.settings
        n = s.classes or (len(s.class_names) if s.class_names else "all")
        stages.data.work = f"{s.dataset}, {n} classes, {s.resolution} px"
    for stage in stages.tokens.values():
        steps = stage.settings.steps
        stage.unit = "inversion steps"
        if stage.settings.method != "textual-inversion":   # one LoRA over every class: steps in all
            stage.work, stage.amount = f"1 {stage.settings.method} x {count(steps, 'step')}", steps
            if stage.settings.prior_preservation:   # and the frozen model's class images first
                stage.work += f", {stage.settings.prior_images} prior images per class"
            continue
        classes = count(len(known), "class", "classes") if known is not None else "every class"
        stage.work = f"{classes} x {count(steps, 'step')}"
        stage.amount = len(known) * steps if known is not None else None
    for stage in [*stages.stores.values(), *stages.evaluation.values()]:
        s = stage.settings
        if s.per_class is not None:   # text-to-image: M per class, no source images
            n = len(s.classes) if s.classes else len(known) if known is not None else None
            stage.work = f"{count(n * s.per_class, 'image')} ({n} x {s.per_class})" if n else \
                f"{s.per_class} per class"
            stage.unit, stage.amount = "images", n * s.per_class if n else None
            continue
        if known is None:
            stage.work = f"{s.per_image} per drawn image"
            continue
        sources = len(draw(labels, split, known, s.examples_per_class, s.few_shot_draw_seed, s.split))
        stage.work = f"{count(sources * s.per_image, 'image')} ({sources} x {s.per_image})"
        stage.unit, stage.amount = "images", sources * s.per_image


def stage_rows(stages: Stages) -> list[dict[str, Any]]:
    """The stages as JSON-able rows (for --dry-run)."""
    return [{"stage": str(s.path), "kind": s.kind, "recipe": s.recipe or None,
             "examples_per_class": s.cell.shots if s.cell else None, "draw": s.cell.draw if s.cell else None,
             "seed": s.cell.generator if s.cell else None, "action": s.action, "reason": s.reason, "work": s.work,
             "amount": s.amount, "unit": s.unit,
             "needs": [str(u.path) for u in s.upstream]} for s in stages.all()]
