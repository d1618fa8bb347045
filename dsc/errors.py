"""Domain errors. They know nothing of the CLI, which renders them as one line and exits non-zero."""

from __future__ import annotations


class DscError(Exception):
    """Base error for everything a user can fix. ``hint`` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(DscError):
    """A file, folder or value given by the user is missing or unusable."""


class ConfigError(DscError):
    """Settings failed validation."""


class OutputExistsError(DscError):
    """The output exists and neither --force nor --resume was given."""


class StoreError(DscError):
    """An HDF5 file is not a dsc store, is corrupt, or has an unsupported schema."""


class PluginError(DscError):
    """A plugin is unknown, broken or violates its contract."""


class ModelError(DscError):
    """A model or its weights cannot be found or loaded."""


class MismatchError(DscError):
    """Inputs that must belong together do not (fingerprints, models, settings)."""


class ResourceError(DscError):
    """Out of memory (GPU or host) or disk."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a long job; the message says what was kept and the hint how to continue. A
    ``KeyboardInterrupt``, so that no ``except Exception`` takes it for an error and carries on."""

    exit_code = 130
    #: The latest one raised: typer turns a KeyboardInterrupt into exit code 130 and drops the exception.
    latest: Interrupted | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        Interrupted.latest = self

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
