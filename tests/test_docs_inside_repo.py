"""The documentation depends on nothing outside the repository (issue 12): no `../shared/...` paths."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_name_no_folder_outside_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    outside = []
    for page in pages:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\.\./shared\b|(?<![\w.])/shared/data\b", line):
                outside.append(f"{page.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not outside, "\n".join(outside)
