"""Mistakes a new user makes, typed as a user types them: each answer names the problem and the fix
(issue 12, "Errors that must say how to fix it")."""

from __future__ import annotations

import json


def _one_error_line(res) -> str:
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), res
    assert "unexpected" not in res.err and "Traceback" not in res.err, res
    return lines[-1]


def test_misspelt_option_suggests_the_right_one(run_dsc):
    res = run_dsc("subset", "--dataset", "toyparts", "--resolutoin", "64", "-o", "x.h5")
    assert res.code == 2
    assert "no option --resolutoin; did you mean --resolution?" in _one_error_line(res)


def test_a_store_instead_of_a_command_says_what_dsc_expects(run_dsc):
    res = run_dsc("cp50.h5")
    line = _one_error_line(res)
    assert res.code == 2 and "is not a dsc command" in line and "dsc info cp50.h5" in line


def test_misspelt_command_suggests_the_right_one(run_dsc):
    line = _one_error_line(run_dsc("stduy", "x.toml"))
    assert "did you mean dsc study?" in line


def test_missing_argument_is_one_line_with_help_pointer(run_dsc):
    res = run_dsc("info")
    line = _one_error_line(res)
    assert res.code == 2 and "Missing argument" in line and "dsc info --help" in line


def test_a_store_given_to_study_says_it_wants_a_study_file(run_dsc, tmp_path):
    store = tmp_path / "data.h5"
    store.write_bytes(b"\x89HDF\r\n\x1a\n\x00\xff\xfe" + bytes(range(256)))
    res = run_dsc("study", store)
    line = _one_error_line(res)
    assert res.code == 1 and "HDF5 store, not a study file" in line and "study-demo.toml" in line


def test_config_after_the_command_is_accepted(run_dsc, tmp_path):
    (tmp_path / "x.toml").write_text("[subset]\nresolution = 96\n")
    res = run_dsc("config", "show", "subset", "--json", "--config", "x.toml")
    assert res.code == 0, res
    assert json.loads(res.out)["settings"]["subset.resolution"]["value"] == 96
    res = run_dsc("subset", "--config=missing.toml", "-o", "x.h5")
    assert "config file missing.toml does not exist" in _one_error_line(res)


def test_global_options_after_the_command_are_accepted(run_dsc):
    """``--threads`` (and --debug/--quiet) typed after the command work like --config (they were 'no option')."""
    from dsc.cli.main import _hoist_config

    assert _hoist_config(["pretrain", "d.h5", "--threads", "2", "--debug", "-o", "r"]) == [
        "--threads", "2", "--debug", "pretrain", "d.h5", "-o", "r"]
    assert _hoist_config(["pretrain", "--threads=2", "--", "--threads"]) == [
        "--threads=2", "pretrain", "--", "--threads"]
    res = run_dsc("config", "show", "subset", "--threads", "1", "--json")
    assert res.code == 0, res


def test_environment_list_without_json_names_the_variable_and_format(run_dsc, monkeypatch):
    monkeypatch.setenv("DSC_SUBSET__SPLIT", "0.6,0.2,0.2")
    line = _one_error_line(run_dsc("subset", "-o", "x.h5"))
    assert "DSC_SUBSET__SPLIT='0.6,0.2,0.2' is not valid JSON" in line
    assert "DSC_SUBSET__SPLIT='[0.6, 0.2, 0.2]'" in line
    assert "EnvSettingsSource" not in line


def test_misspelt_key_in_dsc_toml_breaks_only_its_section(run_dsc, tmp_path):
    (tmp_path / "dsc.toml").write_text("[subset]\nresolutoin = 64\n\n[probe]\nepochs = 7\n")
    line = _one_error_line(run_dsc("subset", "-o", "x.h5"))
    assert "unknown key subset.resolutoin" in line and "did you mean resolution?" in line
    res = run_dsc("config", "show", "--json")
    assert res.code == 1
    doc = json.loads(res.out)
    assert doc["settings"]["probe.epochs"] == {"value": 7, "source": "config file dsc.toml"}
    assert not any(k.startswith("subset.") for k in doc["settings"])
    assert "did you mean resolution?" in doc["errors"]["subset"]
    assert "section [subset] not shown" in res.err
    res = run_dsc("config", "show", "probe", "--json")
    assert res.code == 0 and json.loads(res.out)["settings"]["probe.epochs"]["value"] == 7


def test_misspelt_section_suggests_the_right_one(run_dsc, tmp_path):
    (tmp_path / "dsc.toml").write_text("[pretrian]\nepochs = 1\n")
    line = _one_error_line(run_dsc("config", "show"))
    assert "unknown section [pretrian]" in line and "did you mean [pretrain]?" in line


def test_toml_list_as_a_string_shows_the_list_syntax(run_dsc, tmp_path):
    (tmp_path / "dsc.toml").write_text('[subset]\nclass_names = "gear,bolt"\n')
    line = _one_error_line(run_dsc("subset", "-o", "x.h5"))
    assert 'class_names = ["gear", "bolt"]' in line


def test_misspelt_train_key_in_a_study_suggests_the_right_one(run_dsc, tmp_path):
    from dsc.testing import report_stores

    data, _ = report_stores(tmp_path)
    study = tmp_path / "study.toml"
    study.write_text(f'[study]\ndata = "{data}"\nvariants = ["none"]\n\n[train]\nepoch = 1\n')
    line = _one_error_line(run_dsc("study", study, "--dry-run"))
    assert "unknown [train] key epoch; did you mean epochs?" in line
    assert "move them" not in line
    study.write_text(f'[study]\ndata = "{data}"\nvariants = ["none"]\n\n[train]\ntemperature = 0.2\n')
    assert "move temperature to [pretrain]" in _one_error_line(run_dsc("study", study, "--dry-run"))


def test_a_synthetic_store_as_data_names_the_data_store_it_came_from(run_dsc, tmp_path):
    import h5py

    from dsc.testing import augmented_like, report_stores

    data, _ = report_stores(tmp_path)
    aug = augmented_like(data, tmp_path / "aug.h5")
    with h5py.File(aug, "r+") as h5:  # what `dsc augment` records
        h5.attrs["inputs"] = json.dumps({"data_path": str(data), "data_fingerprint": "x"})
    line = _one_error_line(run_dsc("pretrain", aug, "-o", tmp_path / "run", "--backbone", "timm:test_resnet"))
    assert "is a synthetic store, expected a data store" in line
    assert f"it was made from {data}" in line and "--synthetic" in line


def test_unknown_backbone_hint_is_a_command_that_lists_backbones(run_dsc, tmp_path):
    import re

    from dsc.testing import report_stores

    data, _ = report_stores(tmp_path)
    line = _one_error_line(run_dsc("pretrain", data, "-o", tmp_path / "run", "--backbone", "timm:resnt18"))
    assert "list_backbones" not in line
    command = re.search(r"`dsc (plugins --models '[^']+')`", line)
    assert command, line
    res = run_dsc("plugins", "--models", command.group(1).split("'")[1])
    assert res.code == 0 and "timm:resnet18" in res.out.split(), res
    assert not (tmp_path / "run").exists()


def test_ood_policy_without_negatives_warns(run_dsc, tmp_path, monkeypatch):
    import dsc.train.pretrain
    from dsc.testing import report_stores

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):  # the warning is given before training: no need to train
        raise Stop

    monkeypatch.setattr(dsc.train.pretrain, "pretrain", stop)
    data, _ = report_stores(tmp_path)
    args = ("pretrain", data, "-o", tmp_path / "run", "--backbone", "timm:test_resnet")
    res = run_dsc(*args, "--ood-policy", "hard")
    assert "--ood-policy hard (from the command line) has no effect without --negatives" in res.err, res
    res = run_dsc(*args)
    assert "no effect" not in res.err, res


def test_study_no_report_says_every_run_finished(run_dsc, tmp_path, monkeypatch):
    import dsc.study
    from dsc.testing import report_stores

    data, _ = report_stores(tmp_path)
    study = tmp_path / "study.toml"
    study.write_text(f'[study]\ndata = "{data}"\nvariants = ["none"]\nseeds = [0]\noutput = "{tmp_path / "out"}"\n'
                     '\n[train]\nbackbone = "timm:test_resnet"\nimage_size = 32\nepochs = 1\n')
    monkeypatch.setattr(dsc.study, "execute", lambda spec, keep_going, **where: [])  # the runs themselves: test_study
    res = run_dsc("study", study, "--no-report")
    assert res.code == 0, res
    lines = [line for line in res.out.splitlines() if line.strip()]
    assert len(lines) == 1 and "2 runs finished in" in lines[0] and "dsc report" in lines[0], res
