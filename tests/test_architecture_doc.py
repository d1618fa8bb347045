"""docs/architecture.md draws the house as it is: every path it names exists, and the size rule it states
holds (no module over 400 lines, no function over 60)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"
#: Paths the page writes without ``dsc/`` in front (``train/common.py``).
PACKAGES = "augment|cli|data|diffusion|evaluate|report|store|study|subset|train"


def _not_done() -> str:
    text = PAGE.read_text()
    return text[text.index("## Not done yet"):]


def _functions(path: Path) -> dict[str, int]:
    """Length in lines of every function of a module, by name."""
    tree = ast.parse(path.read_text())
    return {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree)  # type: ignore[operator]
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_path_the_page_names_exists() -> None:
    named = set()
    prose = re.sub(r"```.*?```", "", PAGE.read_text(), flags=re.S)  # the data-flow drawing
    for span in re.findall(r"`([^`]+)`", prose):
        match = re.match(rf"(dsc/|tests/|plugins/|(?=(?:{PACKAGES})/))((?:[\w.]+/)*[\w.]*\w/?)(?=$|[: ])", span)
        if match:
            named.add((match.group(1) or "dsc/") + match.group(2))
    missing = sorted(p for p in named if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
    assert {"dsc/subset/build.py", "dsc/train/common.py", "dsc/report/figures/", "dsc/cli/", "dsc/jobs.py"} <= named


def _length(node: ast.FunctionDef | ast.AsyncFunctionDef, module: Path) -> int:
    """A function's length in lines; a Typer command (``dsc/cli/``) is counted from its body, not its
    signature of options."""
    first = node.body[0].lineno if module.parent.name == "cli" else node.lineno
    return node.end_lineno - first + 1  # type: ignore[operator]


def test_no_module_or_function_is_too_long() -> None:
    """The size rule the page states: no module over 400 lines, no function over 60."""
    assert "no module over 400 lines and no function over 60 lines" in PAGE.read_text()
    too_long = []
    for module in sorted((ROOT / "dsc").rglob("*.py")):
        source = module.read_text()
        if len(source.splitlines()) > 400:
            too_long.append(f"{module.relative_to(ROOT)}: {len(source.splitlines())} lines")
        functions = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        too_long += [f"{module.relative_to(ROOT)}:{n.name}: {_length(n, module)} lines" for n in functions
                     if _length(n, module) > 60]
    assert not too_long, f"over the size limits that docs/architecture.md says hold: {too_long}"
