"""The docs run as written: every `dsc ...` command in docs/configuration.md parses (checked with --help
appended, so nothing runs) and no page points at notes outside the repository (issue 12)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _commands(page: Path) -> list[str]:
    """`dsc ...` lines of the page's code blocks and inline code, continuation lines joined."""
    text = page.read_text()
    found = []
    for lang, block in re.findall(r"```([a-z]*)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if lang == "console" and not line.startswith("$ "):
                continue  # output, not a command
            line = re.sub(r"^\$ ", "", line.strip())
            line = re.sub(r"^(\w+=\S+ )+", "", line)  # DSC_X=1 dsc ...
            if line.startswith("dsc "):
                found.append(line.split("#")[0].strip())
    found += [c for c in re.findall(r"`(dsc [^`]+)`", text) if "SECTION" not in c and "[" not in c]
    return found


def test_configuration_examples_are_found():
    assert len(_commands(DOCS / "configuration.md")) >= 3


@pytest.mark.parametrize("command", _commands(DOCS / "configuration.md"))
def test_configuration_examples_parse(run_dsc, tmp_path, command):
    """Options and commands as the page writes them exist (--help stops before anything runs)."""
    (tmp_path / "study.toml").write_text("[subset]\nclasses = 6\n")
    args = shlex.split(command)[1:]
    res = run_dsc(*args, "--help")
    assert res.code == 0, (command, res)
    words = set(re.findall(r"--[\w-]+", res.out))
    for option in re.findall(r"(?<![\w-])--[a-z][\w-]*", command):
        assert option in words | {"--config", "--help"}, (command, option)


def test_no_page_points_at_notes_outside_the_repository():
    bad = [(p.name, m) for p in DOCS.rglob("*.md") for m in re.findall(r"\.\./shared[^\s)]*(?:ANCHORS|DESIGN|"
                                                                        r"STYLE)[^\s)]*|shared ANCHORS",
                                                                        p.read_text())]
    assert not bad, bad


def test_thesis_preset_is_explained_with_its_source():
    text = (DOCS / "commands" / "augment.md").read_text()
    assert "`thesis` is the setting of the study dsc grew out" in text and "bachelor thesis" in text


def test_configuration_config_show_example_runs(run_dsc, tmp_path, monkeypatch):
    """The page's `DSC_SUBSET__SEED=3 dsc --config study.toml config show subset`, with its output."""
    (tmp_path / "study.toml").write_text('[subset]\ndataset = "toyparts"\nclasses = 6\n')
    monkeypatch.setenv("DSC_SUBSET__SEED", "3")
    res = run_dsc("--config", "study.toml", "config", "show", "subset")
    assert res.code == 0, res
    for row in (r"subset\.classes\s+6\s+config file study\.toml", r"subset\.seed\s+3\s+environment",
                r"subset\.resolution\s+224\s+default"):
        assert re.search(row, re.sub(r"[│┃]", " ", res.out)), (row, res.out)
