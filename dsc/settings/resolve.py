"""Resolving the settings in layers: command line > environment (``DSC_...``, nested with ``__``) > TOML
file > defaults, recording where every value came from, and the one-line errors when a value is wrong."""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource
from pydantic_settings.exceptions import SettingsError

from dsc.errors import ConfigError
from dsc.settings.sections import DscSettings, Section

DEFAULT_CONFIG = Path("dsc.toml")


@dataclass
class ResolvedSettings:
    """Validated settings plus, for every dotted key, where its value came from.

    ``errors`` maps a section (or ``"settings"`` for an unknown table) to what is wrong with it; a section
    with an error holds its defaults. Only ``resolve_settings(strict=False)`` returns errors."""

    settings: DscSettings
    sources: dict[str, str]
    config_file: Path | None
    errors: dict[str, str] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        return getattr(self.settings, name)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (``{"train.lr": 0.1}``); plugin ``options`` tables stay whole."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not key.endswith("options"):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", hint="check the --config path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}",
                          hint="see docs/configuration.md for an example") from None


def did_you_mean(word: str, choices: Any) -> str:
    """``"; did you mean epochs?"`` for the closest of ``choices``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _example(key: str, value: Any, layer: str) -> str:
    """How to write a list in ``layer`` (TOML or environment), from the comma-separated string given."""
    items = [v.strip() for v in str(value).split(",") if v.strip()] or ["a", "b"]
    parsed: list[Any] = []
    for item in items:
        try:
            parsed.append(json.loads(item))
        except json.JSONDecodeError:
            parsed.append(item)
    if layer == "environment":
        section, name = key.split(".", 1)
        return f"write it as JSON: DSC_{section.upper()}__{name.upper()}='{json.dumps(parsed)}'"
    return f"write it as a TOML list: {key.split('.', 1)[-1]} = {json.dumps(parsed, separators=(', ', ': '))}"


def _format_errors(exc: ValidationError, origin: dict[str, str], prefix: str = "") -> tuple[str, str | None]:
    """One readable line for a validation error, and a hint when one fits (did-you-mean, list syntax)."""
    lines, hints = [], []
    for err in exc.errors():
        key = (prefix + ".".join(str(p) for p in err["loc"])).rstrip(".")
        src = origin.get(key) or next((v for k, v in origin.items() if key.startswith(k + ".")), None)
        where = f" [from {src}]" if src else ""
        if err["type"] == "extra_forbidden":
            section, _, name = key.rpartition(".")
            model = DscSettings.model_fields[section.split(".")[0]].annotation if section else DscSettings
            lines.append(f"unknown key {key}{where}{did_you_mean(name, model.model_fields)}")
            continue
        got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
        lines.append(f"{key}: {err['msg']}{got}{where}")
        if err["type"] in ("list_type", "tuple_type") and isinstance(err.get("input"), str):
            hints.append(_example(key, err["input"], "environment" if src == "environment" else "toml"))
    return "; ".join(lines), "; ".join(hints) or None


def _env_layer(env: dict[str, str] | None, errors: dict[str, tuple[str, str | None]]) -> dict[str, Any]:
    """``DSC_<SECTION>__<KEY>`` variables as nested values; a variable that is not valid JSON where JSON is
    needed (lists, tables) becomes an error of its section and is left out."""
    environ = dict(os.environ) if env is None else env
    bad = []
    for name, value in environ.items():
        if name.upper().startswith("DSC_") and "__" in name and _parse_env({name: value}) is None:
            section, _, key = name[4:].lower().partition("__")
            example = _example(f"{section}.{key}", value, "environment")
            errors[section] = (f"environment variable {name}={value!r} is not valid JSON, which "
                               f"{section}.{key} needs", example)
            bad.append(name)
    return _parse_env({k: v for k, v in environ.items() if k not in bad}) or {}


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source reading a given mapping instead of ``os.environ``."""

    def __init__(self, environ: dict[str, str]) -> None:
        self._environ = environ
        super().__init__(DscSettings)

    def _load_env_vars(self) -> dict[str, str | None]:
        return {k if self.case_sensitive else k.lower(): v for k, v in self._environ.items()}


def _parse_env(environ: dict[str, str]) -> dict[str, Any] | None:
    """The nested values of ``environ``'s ``DSC_`` variables (never reads or changes ``os.environ``)."""
    try:
        return _MappingEnvSource(environ)()
    except SettingsError:
        return None


def _check_sections(merged: dict[str, Any], origin: dict[str, str],
                    errors: dict[str, tuple[str, str | None]]) -> dict[str, Section]:
    """Validate each section on its own; a broken one is recorded in ``errors`` and replaced by defaults."""
    sections = DscSettings.model_fields
    good: dict[str, Section] = {}
    for name in merged:
        if name not in sections:
            close = difflib.get_close_matches(name, list(sections), n=1, cutoff=0.6)
            owner = close[0] if close else "settings"
            src = next((v for k, v in origin.items() if k == name or k.startswith(name + ".")), "")
            errors.setdefault(owner, (f"unknown section [{name}]" + (f" [from {src}]" if src else "")
                                      + (f"; did you mean [{close[0]}]?" if close else ""), None))
    for name, info in sections.items():
        if name in errors:
            good[name] = info.annotation()  # type: ignore[misc]
            continue
        try:
            good[name] = info.annotation.model_validate(merged.get(name, {}))  # type: ignore[union-attr]
        except ValidationError as exc:
            errors[name] = _format_errors(exc, origin, prefix=name + ".")
            good[name] = info.annotation()  # type: ignore[misc]
    return good


def resolve_settings(
    cli: dict[str, dict[str, Any]] | None = None,
    config_file: Path | None = None,
    env: dict[str, str] | None = None,
    *,
    strict: bool = True,
) -> ResolvedSettings:
    """Merge defaults < TOML < environment < command line; ``None`` CLI values are dropped.

    A section is validated on its own: with ``strict``, an error raises ``ConfigError`` only when it is in a
    section the caller reads (the sections of ``cli``; every section when ``cli`` is empty). Without
    ``strict``, errors are returned in ``ResolvedSettings.errors`` (``dsc config show``)."""
    path = config_file if config_file is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    toml_layer = _read_toml(path) if path else {}
    errors: dict[str, tuple[str, str | None]] = {}
    env_layer = _env_layer(env, errors)
    cli_layer = {s: {k: v for k, v in vals.items() if v is not None} for s, vals in (cli or {}).items()}
    cli_layer = {s: v for s, v in cli_layer.items() if v}

    origin: dict[str, str] = {}
    for name, layer in (("config file", toml_layer), ("environment", env_layer), ("command line", cli_layer)):
        for key in flatten(layer):
            origin[key] = f"{name} {path}" if name == "config file" else name
    sections = _check_sections(_merge(_merge(toml_layer, env_layer), cli_layer), origin, errors)
    if strict:
        wanted = set(cli or ()) or set(errors)
        relevant = [e for section, e in errors.items() if section in wanted or section == "settings"]
        if relevant:
            hints = [h for _, h in relevant if h]
            raise ConfigError(f"invalid settings: {'; '.join(m for m, _ in relevant)}",
                              hint="; ".join(hints) or "fix the values named above")
    settings = DscSettings.model_construct(**sections)  # validated section by section (no second env read)
    sources = {k: origin.get(k, "default") for k in flatten(settings.model_dump(mode="json"))
               if k.split(".", 1)[0] not in errors}
    return ResolvedSettings(settings, sources, path, {s: f"{m} ({h})" if h else m for s, (m, h) in errors.items()})
