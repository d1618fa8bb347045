"""Settings read the environment without touching ``os.environ`` (no process-wide clear and restore)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dsc.settings import resolve_settings


class _WatchedEnviron(dict):
    """A stand-in for ``os.environ`` that records every change made to it."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.changes: list[str] = []

    def clear(self) -> None:
        self.changes.append("clear")
        super().clear()

    def update(self, *args: object, **kwargs: object) -> None:
        self.changes.append("update")
        super().update(*args, **kwargs)

    def __setitem__(self, key: str, value: str) -> None:
        if not key.startswith("PYTEST_"):  # pytest's own bookkeeping
            self.changes.append(f"set {key}")
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        if not key.startswith("PYTEST_"):
            self.changes.append(f"del {key}")
        super().__delitem__(key)


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[_WatchedEnviron]:
    env = _WatchedEnviron({**os.environ, "DSC_SUBSET__SEED": "5"})
    monkeypatch.setattr(os, "environ", env)
    yield env


def test_resolving_settings_never_changes_os_environ(watched: _WatchedEnviron) -> None:
    resolved = resolve_settings({"subset": {}}, env={"DSC_SUBSET__SEED": "7", "DSC_SUBSET__SPLIT": "[0.6,0.2,0.2]"})
    assert resolved.settings.subset.seed == 7 and resolved.sources["subset.seed"] == "environment"
    assert tuple(resolved.settings.subset.split) == (0.6, 0.2, 0.2)
    resolved = resolve_settings({"subset": {}})  # reads os.environ itself
    assert resolved.settings.subset.seed == 5
    assert watched.changes == []


def test_an_explicit_env_hides_the_process_environment(watched: _WatchedEnviron) -> None:
    resolved = resolve_settings({"subset": {}}, env={})
    assert resolved.settings.subset.seed != 5 and resolved.sources["subset.seed"] == "default"


def test_a_bad_variable_is_named_and_the_others_still_count(watched: _WatchedEnviron) -> None:
    resolved = resolve_settings(env={"DSC_SUBSET__SPLIT": "0.6,0.2,0.2", "dsc_augment__seed": "3"}, strict=False)
    assert "DSC_SUBSET__SPLIT='0.6,0.2,0.2' is not valid JSON" in resolved.errors["subset"]
    assert resolved.settings.augment.seed == 3  # names are case-insensitive, as in pydantic-settings
    assert watched.changes == []
