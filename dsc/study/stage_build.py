"""Build a study's stages: DATA.h5 with ``dsc subset``'s library call, tokens with ``dsc invert``'s, stores with
``dsc augment``'s, so a stage is exactly what those commands make with the same settings (and resumes the
same way)."""

from __future__ import annotations

from dsc.study.stages import Stage


def build_stage(stage: Stage) -> None:
    """Build (or resume) one stage; a skipped stage is left as it is."""
    if stage.action == "skip":
        return
    stage.path.parent.mkdir(parents=True, exist_ok=True)
    force, resume = stage.action == "build", stage.action == "resume"
    if stage.kind == "data":
        from dsc.subset import build_subset

        build_subset(stage.settings, stage.path, force=True, sources=stage.sources)
    elif stage.kind == "tokens":
        from dsc.diffusion.invert import run_invert

        run_invert(stage.data, stage.path, stage.settings, force=force, resume=resume,
                   settings_sources=stage.sources)
    else:
        from dsc.augment import run_augment

        run_augment(stage.data, stage.path, stage.settings, stage.sources, force=force, resume=resume)


def requeued(stage: Stage) -> Stage:
    """The stage as a requeued cluster job continues it: resumed when it left unfinished work."""
    from dataclasses import replace

    from dsc.study.stage_actions import state

    done, partial = state(stage)
    if done and not partial:
        return replace(stage, action="skip", reason="complete")
    return replace(stage, action="resume" if partial and stage.kind != "data" else "build", reason="requeued")
