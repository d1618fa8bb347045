"""Plugin discovery through Python entry points: ``dsc.datasets``, ``dsc.backbones``, ``dsc.augmenters``.

Built-in plugins are registered exactly like third-party ones (in the root ``pyproject.toml``). Discovery
reads entry-point metadata only; a plugin's module is imported the first time it is used. Every loaded
plugin, third-party ones included, is checked against its contract (class, ``name``, ``summary``,
``Options``); a plugin that fails to import or to pass is reported in one line naming its package and what
is wrong, and skipped; the others keep working. :func:`create` builds a plugin from validated options,
:func:`info` says where it comes from.

Environment switches:
- ``DSC_LOAD_PLUGINS=name1,name2`` loads only the named plugins (an allow-list, any kind).
- ``DSC_NO_THIRD_PARTY_PLUGINS=1`` loads only plugins shipped in the ``dsc`` distribution.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from dsc.errors import ConfigError, PluginError

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
    """Check a plugin class against its kind's contract; a one-line ``PluginError`` naming what is wrong."""
    problem = _problem(info, obj)
    if problem:
        raise PluginError(f"{info.kind} plugin {info.name!r} from {info.distribution} is broken: {problem}",
                          hint=f"upgrade or uninstall {info.distribution} (docs/plugins.md has the contract)")


def _problem(info: PluginInfo, obj: Any) -> str:
    """What is wrong with ``obj`` as a plugin of ``info.kind`` ('' when nothing is)."""
    from dsc import contracts

    base, options = {"dataset": (contracts.DatasetPlugin, contracts.DatasetOptions),
                     "backbone": (contracts.BackbonePlugin, contracts.BackboneOptions),
                     "augmenter": (contracts.AugmenterPlugin, contracts.PluginOptions)}[info.kind]
    if not (isinstance(obj, type) and issubclass(obj, base)):
        return f"{getattr(obj, '__name__', type(obj).__name__)} is not a {base.__name__} subclass"
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        return f"{obj.__name__} sets no name (a class attribute)"
    if info.entry_point is not None and name != info.name:
        return f"{obj.__name__}.name is {name!r}, but its entry point is {info.name!r}"
    opts = getattr(obj, "Options", None)
    if not (isinstance(opts, type) and issubclass(opts, options)):
        return f"{obj.__name__}.Options is not a {options.__name__} subclass"
    summary = obj.summary or (obj.__doc__ or "").strip()
    line = summary.splitlines()[0] if summary else ""
    if not line:
        return f"{obj.__name__} has no summary (a one-line class attribute) and no docstring"
    if obj.summary and ("\n" in obj.summary or len(obj.summary) > contracts.SUMMARY_MAX):
        return f"{obj.__name__}.summary must be one line of at most {contracts.SUMMARY_MAX} characters"
    return ""


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
    entry = PluginInfo(kind, name, f"{obj.__module__}:{obj.__qualname__}", distribution, "-")
    _validate(entry, obj)
    entry._obj = obj
    _discover(kind)[name] = entry


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


def info(kind: str, name: str) -> PluginInfo:
    """Where the plugin registered under ``name`` comes from; a clear error listing what is installed otherwise."""
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    plugins = _discover(kind)
    if name not in plugins:
        names = sorted(plugins)
        close = difflib.get_close_matches(name, names, n=1)
        did_you_mean = f"; did you mean {close[0]!r}?" if close else ""
        raise PluginError(
            f"unknown {kind} plugin {name!r}{did_you_mean}",
            hint=f"installed: {', '.join(names) or 'none'}; `dsc plugins` lists them",
        )
    return plugins[name]


def get_plugin(kind: str, name: str) -> Any:
    """The plugin class registered under ``name`` (loaded and checked against its contract)."""
    return info(kind, name).load()


def create(kind: str, name: str, options: Mapping[str, Any] | BaseModel | None = None) -> Any:
    """The plugin ``name`` built as every plugin is: ``Plugin(Plugin.Options(**options))``.

    ``options`` is a mapping (validated by the plugin's ``Options``), an ``Options`` instance or None (the
    defaults). Invalid options raise one ``ConfigError`` naming each bad field and listing the valid ones.
    """
    cls = get_plugin(kind, name)
    if isinstance(options, cls.Options):
        return cls(options)
    raw = options.model_dump() if isinstance(options, BaseModel) else dict(options or {})
    try:
        validated = cls.Options.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())
        fields = ", ".join(cls.Options.model_fields) or "none"
        raise ConfigError(f"invalid options for {kind} {name!r}: {problems}",
                          hint=f"its options are: {fields}") from None
    return cls(validated)


def load_all(kind: str) -> dict[str, Any]:
    """Load every plugin of a kind; broken ones give a warning and are skipped."""
    loaded = {}
    for plugin in list_plugins(kind):
        try:
            loaded[plugin.name] = plugin.load()
        except PluginError as exc:
            log.warning("%s", exc.message)
    return loaded
