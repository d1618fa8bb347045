"""While `dsc augment` loads its model a terminal shows what it loads; --json and --quiet show nothing
(issue 12)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dsc.testing import FAST_AUGMENT


@pytest.mark.parametrize("flag", [None, "--json", "--quiet"])
def test_the_spinner_names_the_model_on_a_terminal_only(run_dsc, data_h5, tmp_path, monkeypatch, flag) -> None:
    import dsc.console

    screen = Console(width=80, record=True, force_terminal=True, file=io.StringIO(), color_system=None)
    monkeypatch.setattr(dsc.console, "err", screen)
    args = ["augment", data_h5, *FAST_AUGMENT, "--strategy", "real-guidance", "-o", tmp_path / "a.h5"]
    res = run_dsc(*(["--quiet", *args] if flag == "--quiet" else [*args, flag] if flag else args))
    assert res.code == 0, res
    shown = "loading Stable Diffusion (tiny)…" in screen.export_text()
    assert shown == (flag is None), screen.export_text()[-500:]
