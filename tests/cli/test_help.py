"""Every command's --help at 80 columns: each option's default, no type placeholder on flags, no option name
cut (issue 12, "Help, progress and words")."""

from __future__ import annotations

import re

import pytest
import typer

from dsc.cli.main import COMMANDS, app

NAMES = [name for _, _, name, _ in COMMANDS] + ["config show"]


def _help(run_dsc, monkeypatch, name: str) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    res = run_dsc(*name.split(), "--help")
    assert res.code == 0, res
    return res.out


def _options(name: str) -> list[object]:
    command = typer.main.get_command(app)
    for part in name.split():
        command = command.commands[part]
    return [p for p in command.params if p.param_type_name == "option"]


@pytest.mark.parametrize("name", ["", *NAMES])
def test_no_type_placeholder_on_flags_and_no_name_cut(run_dsc, monkeypatch, name):
    text = _help(run_dsc, monkeypatch, name)
    assert "<bool>" not in text
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80
    words = set(re.findall(r"-[-\w]+", text))
    for option in _options(name) if name else []:
        for opt in [*option.opts, *option.secondary_opts]:
            assert opt in words, f"{opt} cut or missing in `dsc {name} --help`"


@pytest.mark.parametrize("name", ["augment", "pretrain", "baseline", "invert", "probe", "report", "subset"])
def test_help_shows_the_setting_defaults(run_dsc, monkeypatch, name):
    text = re.sub(r"[│\s]+", " ", _help(run_dsc, monkeypatch, name))
    expected = {"augment": ["10", "7.5", "normal"], "pretrain": ["timm:resnet18", "0.05", "--no-pretrained"],
                "baseline": ["timm:resnet18", "none"], "invert": ["2000"], "probe": ["100"], "report": ["msp"],
                "subset": ["toyparts", "224"]}[name]
    for value in expected:
        assert re.search(r"default:? " + re.escape(value) + r"\b", text), (name, value)


def test_backbone_help_keeps_its_brackets(run_dsc, monkeypatch):
    assert "[plugin:]model" in _help(run_dsc, monkeypatch, "pretrain")
