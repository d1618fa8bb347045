"""Plugin discovery through Python entry points: ``dsc.datasets``, ``dsc.backbones``, ``dsc.augmenters``.

Built-in plugins are registered exactly like third-party ones (in the root ``pyproject.toml``). Discovery
reads entry-point metadata only; a plugin's module is imported the first time it is used. A plugin that
fails to import is reported with a warning and skipped; the others keep working.

Environment switches:
- ``DSC_LOAD_PLUGINS=name1,name2`` loads only the named plugins (an allow-list, any kind).
- ``DSC_NO_THIRD_PARTY_PLUGINS=1`` loads only plugins shipped in the ``dsc`` distribution.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from dsc.errors import PluginError

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "dataset": "dsc.datasets",
    "backbone": "dsc.backbones",
    "augmenter": "dsc.augmenters",
}
BUILTIN_DISTRIBUTION = "dsc"


@dataclass
class PluginInfo:
    """One registered plugin: where it comes from, loaded on demand."""

    kind: str
    name: str
    value: str
    distribution: str
    version: str
    entry_point: EntryPoint | None = field(default=None, repr=False)
    _obj: Any = field(default=None, repr=False)

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    def load(self) -> Any:
        """Import and return the plugin class (cached)."""
        if self._obj is None:
            if self.entry_point is None:
                raise PluginError(f"{self.kind} plugin {self.name!r} has no entry point")
            try:
                obj = self.entry_point.load()
            except Exception as exc:  # a broken plugin must never crash the host
                raise PluginError(
                    f"{self.kind} plugin {self.name!r} from {self.distribution} failed to import: "
                    f"{type(exc).__name__}: {exc}",
                    hint=f"reinstall or upgrade {self.distribution}",
                ) from exc
            _validate(self, obj)
            self._obj = obj
        return self._obj

    @property
    def summary(self) -> str:
        """First line of the plugin's ``summary`` attribute or docstring; ``[broken] ...`` if it fails."""
        try:
            obj = self.load()
        except PluginError as exc:
            return f"[broken] {exc.message}"
        text = (getattr(obj, "summary", "") or obj.__doc__ or "").strip()
        return text.splitlines()[0] if text else ""


def _validate(info: PluginInfo, obj: Any) -> None:
    from dsc import contracts

    base = {"dataset": contracts.DatasetPlugin, "backbone": contracts.BackbonePlugin,
            "augmenter": contracts.AugmenterPlugin}[info.kind]
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginError(
            f"{info.kind} plugin {info.name!r} from {info.distribution} is not a {base.__name__} subclass",
            hint="its entry point must name a class implementing the documented contract",
        )


def _allowed(name: str, dist: str) -> bool:
    allow = os.environ.get("DSC_LOAD_PLUGINS")
    if allow is not None and name not in {n.strip() for n in allow.split(",") if n.strip()}:
        return False
    no_third = os.environ.get("DSC_NO_THIRD_PARTY_PLUGINS", "").lower() in {"1", "true", "yes"}
    return not (no_third and dist != BUILTIN_DISTRIBUTION)


@cache
def _discover(kind: str) -> dict[str, PluginInfo]:
    group = KINDS[kind]
    found: dict[str, PluginInfo] = {}
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "unknown"
        version = dist.version if dist is not None else "unknown"
        if not _allowed(ep.name, dist_name):
            continue
        if ep.name in found:
            log.warning(
                "%s plugin %r is registered twice (%s and %s); using the first",
                kind, ep.name, found[ep.name].distribution, dist_name,
            )
            continue
        found[ep.name] = PluginInfo(kind, ep.name, ep.value, dist_name, version, ep)
    return found


def refresh() -> None:
    """Forget discovered plugins (after installing one, or in tests)."""
    _discover.cache_clear()


def register(kind: str, name: str, obj: type, distribution: str = "runtime") -> None:
    """Register a plugin class at run time (tests, notebooks). Overrides a discovered one."""
    info = PluginInfo(kind, name, f"{obj.__module__}:{obj.__qualname__}", distribution, "-")
    _validate(info, obj)
    info._obj = obj
    _discover(kind)[name] = info


def unregister(kind: str, name: str) -> None:
    _discover(kind).pop(name, None)


def list_plugins(kind: str | None = None) -> list[PluginInfo]:
    """All plugins of one kind (or all kinds), sorted by kind and name."""
    kinds = [kind] if kind else list(KINDS)
    out: list[PluginInfo] = []
    for k in kinds:
        if k not in KINDS:
            raise PluginError(f"unknown plugin kind {k!r}", hint=f"use one of {', '.join(KINDS)}")
        out.extend(sorted(_discover(k).values(), key=lambda p: p.name))
    return out


def get_plugin(kind: str, name: str) -> Any:
    """The plugin class registered under ``name``; a clear error listing what is installed otherwise."""
    plugins = _discover(kind)
    if name not in plugins:
        names = sorted(plugins)
        close = difflib.get_close_matches(name, names, n=1)
        did_you_mean = f"; did you mean {close[0]!r}?" if close else ""
        raise PluginError(
            f"unknown {kind} plugin {name!r}{did_you_mean}",
            hint=f"installed: {', '.join(names) or 'none'}; `dsc plugins` lists them",
        )
    return plugins[name].load()


def load_all(kind: str) -> dict[str, Any]:
    """Load every plugin of a kind; broken ones give a warning and are skipped."""
    loaded = {}
    for info in list_plugins(kind):
        try:
            loaded[info.name] = info.load()
        except PluginError as exc:
            log.warning("%s", exc.message)
    return loaded
