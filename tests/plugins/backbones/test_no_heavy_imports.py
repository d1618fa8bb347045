"""Backbone plugin modules and the resolver import without torch (``dsc plugins`` reads their summaries)."""

from __future__ import annotations

import subprocess
import sys


def test_modules_do_not_import_torch() -> None:
    code = ("import sys, dsc.backbones, dsc_backbones.timm_backbone, dsc_backbones.torchvision_backbone;"
            "bad = [m for m in ('torch', 'timm', 'torchvision') if m in sys.modules]; print(bad); "
            "sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
