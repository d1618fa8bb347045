"""``dsc``: the root command. Turns domain errors into one line on stderr and a non-zero exit."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dsc import __version__
from dsc.cli.common import State
from dsc.console import err, setup_logging, spinners

log = logging.getLogger("dsc")
#: The click that typer runs on (its own copy since typer 0.26, the click package before).
click_errors = importlib.import_module(typer.BadParameter.__module__)

app = typer.Typer(
    name="dsc",
    help="Does synthetic data help? Stable Diffusion augmentation + supervised contrastive learning "
    "for small labelled image datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: (module, function, name, help panel). Modules are imported when the CLI is built; they keep heavy
#: imports inside their functions.
COMMANDS = [
    ("dsc.cli.subset", "subset", "subset", "Data"),
    ("dsc.cli.info", "info", "info", "Data"),
    ("dsc.cli.invert", "invert", "invert", "Synthetic data"),
    ("dsc.cli.augment", "augment", "augment", "Synthetic data"),
    ("dsc.cli.pretrain", "pretrain", "pretrain", "Training"),
    ("dsc.cli.probe", "probe", "probe", "Training"),
    ("dsc.cli.baseline", "baseline", "baseline", "Training"),
    ("dsc.cli.report", "report", "report", "Results"),
    ("dsc.cli.study", "study", "study", "Results"),
    ("dsc.cli.plugins", "plugins", "plugins", "Setup"),
]
SUBAPPS = [("dsc.cli.config", "app", "config", "Setup")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dsc {__version__}")
        raise typer.Exit()


#: Commands that compute with torch or worker processes: their threads are set before they start (dsc/threads.py).
COMPUTING = {"subset", "invert", "augment", "pretrain", "probe", "baseline", "report", "study"}


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file "
                                                "(default: ./dsc.toml if present).", show_default=False)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", metavar="N", help="CPU threads per process (also DSC_THREADS; default: the idle cores, see "
        "docs/performance.md#threads).", show_default=False)] = None,
) -> None:
    """Does synthetic data help? dsc answers it end to end for your dataset."""
    State.config = config
    State.debug = debug or os.environ.get("DSC_DEBUG", "") in {"1", "true", "yes"}
    setup_logging("WARNING" if quiet else "INFO", debug=State.debug)
    spinners(not quiet)  # a command's --json turns them off too
    if ctx.invoked_subcommand in COMPUTING:
        from dsc.threads import configure

        configure(threads)


def _register() -> None:
    for module, func, name, panel in COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:  # command not built yet in this checkout
                continue
            raise
        app.command(name, rich_help_panel=panel)(getattr(mod, func))
    for module, attr, name, panel in SUBAPPS:
        app.add_typer(getattr(importlib.import_module(module), attr), name=name, rich_help_panel=panel)


_register()


def _oom_message(exc: BaseException) -> str | None:
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return "out of memory; rerun with a smaller --batch-size"
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. A command that fails or is interrupted removes the output folders it
    created and left without work (``dsc.outputs.discard_unused``); Ctrl-C always ends with exit 130."""
    from dsc import interrupts, outputs
    from dsc.provenance import record_argv

    record_argv(sys.argv[1:] if argv is None else argv)
    outputs.forget_claims()
    ok = False
    try:
        with interrupts.sigint_remembered():
            _run(argv)
            if interrupts.interrupted():  # a Ctrl-C whose exception something swallowed
                _interrupted()
            ok = True
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except SystemExit as exc:
        ok = exc.code in (0, None)
        raise
    finally:
        if not ok:
            outputs.discard_unused()
        record_argv(None)


def _interrupted(exc: BaseException | None = None) -> None:
    from dsc.errors import Interrupted

    while exc is not None and not isinstance(exc, Interrupted):  # click wraps it in Abort or Exit
        exc = exc.__cause__ or exc.__context__
    exc, Interrupted.latest = exc or Interrupted.latest, None
    if exc is not None:  # the command said what it kept and how to continue
        err.print(f"[red]Interrupted:[/] {escape(str(exc))}", highlight=False)
    else:
        err.print("[red]Interrupted.[/] Outputs were left untouched; rerun with --resume where supported.")
    sys.exit(130)


#: Global options (``dsc OPTION command``) that are also accepted after the command: with a value / flags.
_GLOBAL_VALUED = ("--config", "-c", "--threads")
_GLOBAL_FLAGS = ("--debug", "--quiet", "-q")


def _hoist_config(argv: list[str]) -> list[str]:
    """``dsc subset --config x.toml --threads 2 ...`` -> ``dsc --config x.toml --threads 2 subset ...``.

    The global options (``--config``, ``--threads``, ``--debug``, ``--quiet``) belong to the root command;
    users type them after the command too, so they are moved in front of it (no command defines them).
    """
    names = {name for _, _, name, _ in COMMANDS} | {name for _, _, name, _ in SUBAPPS}
    start = next((i for i, a in enumerate(argv) if a in names), None)
    if start is None:
        return argv
    head, tail, moved = argv[:start], [], []
    rest = iter(argv[start:])
    for arg in rest:
        if arg == "--":
            tail += [arg, *rest]
        elif arg in _GLOBAL_VALUED:
            moved += [arg, next(rest, "")]
        elif arg in _GLOBAL_FLAGS or any(arg.startswith(f"{o}=") for o in _GLOBAL_VALUED if o.startswith("--")):
            moved.append(arg)
        else:
            tail.append(arg)
    return head + moved + tail


def _usage_message(exc: Exception) -> str:
    """A click usage error as one line that says what the command expects."""
    import re

    ctx = getattr(exc, "ctx", None)
    where = f"dsc {ctx.command_path.split(' ', 1)[1]}" if ctx and " " in ctx.command_path else "dsc"
    help_hint = f"see `{where} --help`"
    if isinstance(exc, click_errors.NoSuchOption):
        import difflib

        best = difflib.get_close_matches(exc.option_name, list(exc.possibilities or []), n=1, cutoff=0.5)
        guess = f"; did you mean {best[0]}?" if best else ""
        return f"no option {exc.option_name}{guess} ({help_hint})"
    message = exc.format_message()  # type: ignore[attr-defined]
    unknown = re.match(r"No such command '(.*?)'\.", message)
    if unknown:
        return _unknown_command(unknown.group(1))
    return f"{message.rstrip('.')} ({help_hint})"


def _unknown_command(word: str) -> str:
    import difflib

    names = [name for _, _, name, _ in COMMANDS] + [name for _, _, name, _ in SUBAPPS]
    if word.endswith((".h5", ".hdf5")):
        hint = f"dsc takes a command first; to see what the store holds: dsc info {word}"
    elif word.endswith(".toml"):
        hint = f"dsc takes a command first; to run a study file: dsc study {word}"
    else:
        close = difflib.get_close_matches(word, names, n=1)
        hint = f"did you mean dsc {close[0]}?" if close else "dsc takes a command first"
    return f"{word!r} is not a dsc command ({hint}; commands: {', '.join(names)})"


def _run(argv: list[str] | None) -> None:
    from dsc.cli.common import polish_help
    from dsc.errors import DscError, Interrupted

    Interrupted.latest = None
    command = typer.main.get_command(app)
    polish_help(command)
    args = _hoist_config(list(sys.argv[1:] if argv is None else argv))
    try:
        rv = command.main(args=args, prog_name="dsc", standalone_mode=False)
        if isinstance(rv, int) and rv:  # click returns 130 for an interrupt it caught
            if rv == 130:
                _interrupted()
            sys.exit(rv)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `dsc` or `dsc config`: the help
            exc.show(file=sys.stderr)
            sys.exit(exc.exit_code)
        err.print(f"[bold red]Error:[/] {escape(_usage_message(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        exc.show(file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt) as exc:
        _interrupted(exc)
    except DscError as exc:
        if State.debug:
            err.print_exception(show_locals=False)
        err.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if State.debug:
            raise
        from dsc.outputs import is_disk_full

        if is_disk_full(exc):
            err.print("[bold red]Error:[/] disk full; free space and rerun with --resume", highlight=False)
            sys.exit(1)
        msg = _oom_message(exc) or f"unexpected {type(exc).__name__}: {exc}"
        err.print(f"[bold red]Error:[/] {escape(msg)} (rerun with --debug for the traceback)", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
