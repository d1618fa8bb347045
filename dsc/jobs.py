"""The shared resumable-job runner: one shell for every command that writes an output (docs/architecture.md).

A :class:`Job` owns, for one output:

- the multi-process session (``dsc.parallel.session``): under ``accelerate launch``/``torchrun`` every process
  enters the job, the main one does the bookkeeping;
- the output check (``--force``, ``--resume``, a live writer refused before any work) and the output lock
  (``<lock_on>.lock``, main process);
- the work folder where unfinished work lives: ``<output>.partial/`` (tokens), ``<output>.shards/`` (augment) or
  the output folder itself (a training run), prepared fresh or kept for ``--resume``;
- ONE rule for what makes a resume compatible (:func:`check_resume`): the settings that change results (each
  settings class declares the others in ``resume_free``, next to its fields) and the input fingerprints must
  be those recorded by the interrupted run; the message names every difference;
- the atomic commit (``work`` renamed to ``output`` after a last Ctrl-C check) and the Ctrl-C message
  (:meth:`Job.interrupted`: what was kept, and that ``--resume`` continues it).

Commands keep what is theirs: what their output records, how work is split between processes, and what
"done" means.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsc.errors import InputError, Interrupted, MismatchError, OutputExistsError

log = logging.getLogger(__name__)

#: The hint of every refused resume.
RESUME_HINT = "resume with the original settings and inputs, or pass --force to start over"


# ------------------------------------------------------------------------------------------ the resume rule
def comparable(settings_cls: Any, dumped: Mapping[str, Any]) -> dict[str, Any]:
    """The part of recorded settings ``dumped`` (``model_dump(mode="json")``) that a resume must match:
    ``settings_cls.resume_view`` of them (without the results-neutral ``resume_free`` keys, with derived
    keys such as invert's effective batch). Settings that no longer validate are compared key by key."""
    from pydantic import ValidationError

    try:
        return settings_cls.model_validate(dict(dumped)).resume_view()
    except ValidationError:
        return {k: v for k, v in dumped.items() if k not in getattr(settings_cls, "resume_free", ())}


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_show(v) for v in value)
    return "none" if value is None else str(value)


def differences(old: Mapping[str, Any], new: Mapping[str, Any], *, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every key whose value differs (keys of either side)."""
    keys = sorted(set(old) | set(new))
    return [f"{prefix}{k}: {_show(old.get(k))} -> {_show(new.get(k))}" for k in keys if old.get(k) != new.get(k)]


@dataclass
class Record:
    """How an output was made, as far as a resume must match it: the comparable settings
    (:func:`comparable`), the inputs' fingerprints by name (``data``, ``synthetic``...) and anything else the
    command pins (``model``: the text encoder's fingerprint, ``plan``: augment's plan hash)."""

    settings: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    pinned: dict[str, Any] = field(default_factory=dict)

    def differences(self, new: Record) -> list[str]:
        """Every difference from ``new``: settings first, then inputs (``inputs.NAME``), then pinned values.
        A pinned value is compared only when the settings and inputs agree (it derives from them)."""
        diff = differences(self.settings, new.settings)
        diff += differences(self.inputs, new.inputs, prefix="inputs.")
        if not diff:
            diff += differences(self.pinned, new.pinned)
        return diff


def check_resume(work: Path, recorded: Record, current: Record) -> None:
    """Refuse to continue ``work`` when it was made with other settings or inputs, naming each difference."""
    diff = recorded.differences(current)
    if diff:
        raise MismatchError(f"cannot resume {work}: it was made with other settings or inputs: " + "; ".join(diff),
                            hint=RESUME_HINT)


def fingerprints(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Fingerprints of recorded inputs (``{"data": {"fingerprint": ..}, "synthetic": [{..}, ..]}``)."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, Mapping):
            out[name] = value.get("fingerprint")
        elif isinstance(value, list | tuple):
            out[name] = [v.get("fingerprint") if isinstance(v, Mapping) else v for v in value]
        else:
            out[name] = value
    return out


# ------------------------------------------------------------------------------------------------ the job
@dataclass
class Job:
    """One resumable output being written (see the module docstring). Use as a context manager::

        with Job("invert", output, force=force, resume=resume, work=partial_path(output)) as job:
            resuming = job.begin(marker="tokens.json")
            ...  # the work, into job.work
            job.commit()
    """

    command: str
    output: Path
    force: bool = False
    resume: bool = False
    #: Where unfinished work lives; ``None``: ``<output>.partial``. Equal to ``output`` for in-place outputs.
    work: Path | None = None
    #: The path the lock is named after (``<lock_on>.lock``); ``None``: the output.
    lock_on: Path | None = None
    #: False for a job without ``--resume`` (probe): work left by a killed run is discarded, not refused.
    resumable: bool = True
    resuming: bool = False
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)
    _lock: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from dsc.outputs import partial_path

        self.output = Path(self.output)
        self.work = Path(self.work) if self.work is not None else partial_path(self.output)
        self.lock_on = Path(self.lock_on) if self.lock_on is not None else self.output

    # ------------------------------------------------------------------------------ entering and leaving
    def __enter__(self) -> Job:
        from dsc import parallel
        from dsc.locks import OutputLock

        self._stack.enter_context(parallel.session())
        self._lock = OutputLock(self.lock_on)
        self._stack.callback(self._lock.release)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    @property
    def in_place(self) -> bool:
        """Whether the work is done in the output itself (a run folder)."""
        return self.work == self.output

    def check(self) -> None:
        """Check the output before any work (all processes): its folder exists, no live writer holds it,
        an existing one is not replaced without ``--force`` or continued without ``--resume``."""
        from dsc import parallel
        from dsc.outputs import check_output

        with parallel.together("checking the output"):  # every process has checked before main takes the lock
            check_output(self.output, force=self.force, resume=self.resume)

    def lock(self) -> Any:
        """Take ``<lock_on>.lock`` (main process; idempotent) and return it: ``begin`` does, and a job whose
        output is one file written by ``dsc.store.StoreWriter`` (subset) hands it to the writer."""
        if not self._lock.held:
            self._lock.acquire()
        return self._lock

    def begin(self, *, marker: str, on_fresh: Callable[[], None] | None = None) -> bool:
        """Take the lock and prepare the work folder (main process); True, on every process, when an
        interrupted job is continued: ``--resume`` and ``work/marker`` exists (or a finished output folder
        with ``marker`` is reopened to add to it).

        Without ``--resume`` an existing work folder is refused (``--force`` starts over); with it and nothing
        to continue the job starts fresh. ``on_fresh`` runs (main process) after a fresh work folder is made."""
        from dsc import parallel

        resuming = False
        with parallel.together("preparing the output"):
            if parallel.is_main():
                self.lock()
                resuming = self._prepare(marker, on_fresh)
        self.resuming = bool(parallel.broadcast_object(resuming))
        return self.resuming

    def _prepare(self, marker: str, on_fresh: Callable[[], None] | None) -> bool:
        from dsc.outputs import remove

        assert self.work is not None
        if self.resume and (self.work / marker).is_file():
            return True
        if self.resume and not self.in_place and self.output.is_dir() and (self.output / marker).is_file():
            remove(self.work)
            shutil.copytree(self.output, self.work)  # a finished folder grows (invert adds classes to TOKENS/)
            return True
        if self.work.exists() and not self.in_place and not (self.force or self.resume) and self.resumable:
            raise OutputExistsError(f"an interrupted run left {self.work}",
                                    hint="pass --resume to continue it or --force to start over")
        if self.in_place and self.work.exists():
            if not self.work.is_dir():
                raise InputError(f"{self.work} exists and is not a directory", hint="choose another --output")
            if self.resume and any(self.work.iterdir()):
                raise InputError(f"{self.work} has no {marker}, there is nothing to resume",
                                 hint="pass --force to start over")
        if self.resume:
            log.info("nothing to resume in %s; starting fresh", self.output)
        remove(self.work)
        self.work.mkdir(parents=True)
        if on_fresh is not None:
            on_fresh()
        return False

    def commit(self, finish: Callable[[], None] | None = None) -> None:
        """Make the work final: after a last Ctrl-C check, ``finish`` (main process: mark the record complete)
        and rename ``work`` to ``output`` (unless in place). Every process waits for it."""
        from dsc import interrupts, parallel
        from dsc.outputs import commit

        interrupts.check()  # never a final output after a Ctrl-C
        with parallel.together("committing the output"):
            if parallel.is_main():
                if finish is not None:
                    finish()
                if not self.in_place:
                    assert self.work is not None
                    commit(self.work, self.output)

    @contextmanager
    def interrupted(self, kept: Callable[[], tuple[int, int, str]]) -> Iterator[None]:
        """Turn a Ctrl-C inside the block into dsc's one message: ``kept()`` gives (done, total, unit) of what
        is safe in the work folder; with nothing kept the rerun starts again, else ``--resume`` continues."""
        from dsc.console import plural

        try:
            yield
        except Interrupted:
            raise
        except KeyboardInterrupt:
            done, total, unit = kept()
            if done == 0 and not self.resuming:
                raise Interrupted(f"no {unit} was finished (0 of {total})",
                                  hint="rerun the same command to start again") from None
            where = self.output if self.in_place else self.work
            raise Interrupted(f"{done} of {total} {plural(total, unit)} kept in {where}/",
                              hint=f"rerun the same command with --resume to do the other {total - done}") from None
