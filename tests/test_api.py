"""The public Python API (dsc/__init__.py, dsc/api.py, docs/api.md): the verbs, their docs, their example."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dsc

ROOT = Path(__file__).resolve().parents[1]
API_DOC = ROOT / "docs" / "api.md"


def _example() -> str:
    """The Python block that follows ``<!-- api-example -->`` in docs/api.md."""
    text = API_DOC.read_text()
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/api.md has no <!-- api-example --> python block"
    return match.group(1)


def _python(code: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSC_")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_one_verb_per_stage_in_all() -> None:
    verbs = ["subset", "invert", "augment", "pretrain", "baseline", "probe", "report", "study"]
    assert list(dsc.VERBS) == verbs
    assert set(verbs) <= set(dsc.__all__)
    for name in dsc.__all__:
        assert getattr(dsc, name) is not None, name
    assert not {"build_subset", "run_augment"} & set(dsc.__all__)  # one verb style: no second name per stage


def test_import_dsc_and_the_verbs_do_not_import_torch(tmp_path: Path) -> None:
    code = ("import inspect, sys, dsc\n"
            "for v in dsc.VERBS: inspect.signature(getattr(dsc, v)); getattr(dsc, v).__doc__\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'diffusers', 'h5py', 'timm'})\n"
            "print(heavy)\n")
    res = _python(code, tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout


def test_every_public_name_is_documented() -> None:
    text = API_DOC.read_text()
    for verb in dsc.VERBS:
        assert re.search(rf"^### dsc\.{verb}\(", text, re.M), f"docs/api.md has no section for dsc.{verb}"
    for name in dsc.__all__:
        assert f"`{name}`" in text or f"dsc.{name}(" in text, f"docs/api.md does not name {name}"


def test_each_verb_section_lists_its_signature() -> None:
    """The heading of each verb in docs/api.md names every argument the verb has, in order."""
    text = API_DOC.read_text()
    for verb in dsc.VERBS:
        heading = re.search(rf"^### dsc\.{verb}\((.*)\)$", text, re.M)
        assert heading, verb
        documented = [a.strip().split("=")[0].lstrip("*") for a in heading.group(1).split(",")]
        actual = [p.name for p in inspect.signature(getattr(dsc, verb)).parameters.values()]
        assert [a for a in documented if a] == actual, verb


def test_verbs_take_every_option_of_their_command() -> None:
    """A command's options are the verb's arguments or keys of the command's settings section."""
    from dsc.cli.main import COMMANDS
    from dsc.settings import DscSettings

    cli = {name: getattr(__import__(module, fromlist=[func]), func) for module, func, name, _ in COMMANDS}
    renamed = {"option": "options", "no_corruptions": "corruptions"}  # --option k=v; --no-corruptions
    for verb in dsc.VERBS:
        params = set(inspect.signature(getattr(dsc, verb)).parameters) - {"settings"}
        field = DscSettings.model_fields.get(verb)
        keys = set(field.annotation.model_fields) if field is not None else set()  # type: ignore[union-attr]
        for option in inspect.signature(cli[verb]).parameters:
            name = renamed.get(option.rstrip("_"), option.rstrip("_"))
            if name == "json":
                continue  # the result is the data
            assert name in params or name in keys, f"dsc.{verb} has no argument for `dsc {verb}`'s {option}"


def test_a_verb_stays_the_verb_after_its_module_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python binds an imported submodule on its package; dsc.subset must stay callable and reach the module."""
    import dsc.probe
    import dsc.subset
    from dsc.subset import build_subset

    module = sys.modules["dsc.subset"]
    assert callable(dsc.subset) and repr(dsc.subset) == "<dsc verb subset>"
    assert dsc.subset.build_subset is build_subset and vars(dsc.subset) is vars(module)  # the module's
    real, sentinel = module.build_subset, object()
    with monkeypatch.context() as patch:
        patch.setattr(dsc.subset, "build_subset", sentinel)
        patch.setattr(dsc.subset, "_new_name", sentinel, raising=False)
        patch.setattr("dsc.probe.probe", sentinel)          # the dotted form pytest and mock use
        assert module.build_subset is sentinel and module._new_name is sentinel
        assert sys.modules["dsc.probe"].probe is sentinel
    assert module.build_subset is real and not hasattr(module, "_new_name")  # undone on the module
    assert callable(dsc.probe) and sys.modules["dsc.probe"].probe is not sentinel
    with pytest.raises(AttributeError):
        _ = dsc.pretrain.anything                           # no module dsc.pretrain behind this verb


def test_settings_are_keyword_arguments_checked_like_options(tmp_path: Path) -> None:
    from dsc.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean classes"):
        dsc.subset(tmp_path / "data.h5", classs=2)
    assert not (tmp_path / "data.h5").exists()


def test_a_failed_verb_leaves_no_empty_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a failed command: the output folders the call created and left without work are removed."""
    import dsc.train.pretrain
    from dsc.errors import InputError
    from dsc.outputs import check_output

    with pytest.raises(InputError, match="does not exist"):
        dsc.pretrain(tmp_path / "missing.h5", tmp_path / "run", backbone="timm:test_resnet")
    assert not (tmp_path / "run").exists()

    def fails_after_creating(data: Path, output: Path, *args: object, **kwargs: object) -> None:
        check_output(output, force=True)
        (output / "checkpoints").mkdir(parents=True)
        raise InputError("broken on purpose")

    monkeypatch.setattr(dsc.train.pretrain, "pretrain", fails_after_creating)
    mine = tmp_path / "mine"
    mine.mkdir()
    for output in (tmp_path / "new", mine):
        with pytest.raises(InputError, match="on purpose"):
            dsc.pretrain(tmp_path / "data.h5", output, backbone="timm:test_resnet", force=True)
    assert not (tmp_path / "new").exists() and mine.is_dir()  # a folder the user had stays


def test_the_documented_example_runs(tmp_path: Path) -> None:
    res = _python(_example(), tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r"^\d+ images of 2 classes in data\.h5$", res.stdout, re.M)
    assert "SupCon + probe: complete" in res.stdout and "CE baseline: complete" in res.stdout
    assert re.search(r"^ce/none ", res.stdout, re.M) and re.search(r"^supcon\+probe/none ", res.stdout, re.M)
    assert (tmp_path / "report.md").is_file() and "wrote report.md" in res.stdout
    assert (tmp_path / "runs" / "supcon-none-s0" / "probe" / "metrics.json").is_file()
    assert (tmp_path / "runs" / "ce-none-s0" / "metrics.json").is_file()


def test_report_checks_its_outputs_before_any_work(tmp_path: Path) -> None:
    from dsc.errors import InputError, OutputExistsError

    (tmp_path / "report.md").write_text("mine")
    with pytest.raises(OutputExistsError, match="already exists"):     # the runs are not read first
        dsc.report(tmp_path / "runs", markdown=tmp_path / "report.md")
    with pytest.raises(InputError, match="suffix|png"):
        dsc.report(tmp_path / "runs", results_figure=tmp_path / "results.gif")
    with pytest.raises(InputError, match="data=DATA.h5"):
        dsc.report(synthetic=[tmp_path / "aug.h5"])
    assert (tmp_path / "report.md").read_text() == "mine"


def test_study_dry_run_returns_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    from dsc.testing import pattern_store

    data = pattern_store(tmp_path / "data.h5")
    study = tmp_path / "study.toml"
    study.write_text(f'[study]\ndata = "{data}"\nmethods = ["ce"]\nvariants = ["none"]\nseeds = [0, 1]\n'
                     f'output = "{tmp_path / "out"}"\n[train]\nbackbone = "timm:test_resnet"\nepochs = 1\n'
                     'batch_size = 8\n')
    result = dsc.study(study, seeds=[3], dry_run=True)
    assert [(Path(r["run"]).name, r["action"]) for r in result.plan] == [("ce-none-s3", "run")]
    assert result.report is None and result.failed == [] and result.budget
    assert not (tmp_path / "out" / "ce-none-s3").exists()
