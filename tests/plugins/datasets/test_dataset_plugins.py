"""Every built-in dataset plugin honours the contract, through the same registry a third party uses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dsc.contracts import DatasetOptions, DatasetPlugin
from dsc.registry import get_plugin, list_plugins

BUILTIN = ["folder", "mvip", "toyparts"]


@pytest.mark.parametrize("name", BUILTIN)
def test_contract(name: str):
    cls = get_plugin("dataset", name)
    assert issubclass(cls, DatasetPlugin) and cls.name == name
    assert issubclass(cls.Options, DatasetOptions) and cls.Options is not DatasetOptions
    assert cls.summary and "\n" not in cls.summary and len(cls.summary) <= 90
    with pytest.raises(ValueError):
        cls.Options(no_such_option=1)  # unknown keys are refused
    info = {p.name: p for p in list_plugins("dataset")}[name]
    assert info.distribution == "dsc" and info.builtin


def test_plugin_modules_do_not_import_heavy_libraries(tmp_path):
    code = (
        "import sys, json\n"
        "from dsc_datasets.mvip import write_fake_mvip, MvipDataset\n"
        "from dsc_datasets.folder import FolderDataset\n"
        "from dsc_datasets.toyparts import ToyPartsDataset\n"
        f"root = write_fake_mvip({str(tmp_path)!r}, 1, sets=(1, 0, 0), orientations=1, cameras=1, size=32)\n"
        "list(MvipDataset(MvipDataset.Options(root=root)).records(['gear']))\n"
        "list(FolderDataset(FolderDataset.Options(root=root)).records(['gear']))\n"
        "next(ToyPartsDataset(ToyPartsDataset.Options()).records(['gear']))\n"
        "print(json.dumps([m for m in ('torch', 'h5py', 'diffusers', 'transformers') if m in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
