from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dsc.arms import arm_label
from dsc.errors import ConfigError, InputError, MismatchError
from dsc.study import execute, load_study, plan
from dsc.testing import augmented_like as fake_synthetic
from dsc.testing import report_stores as write_stores


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    data, _ = write_stores(tmp_path)
    normal = fake_synthetic(data, tmp_path / "aug-normal.h5")
    ood = fake_synthetic(data, tmp_path / "aug-ood.h5", mode="ood")
    return {"data": data, "normal": normal, "ood": ood}


def write_study(tmp_path: Path, inputs: dict[str, Path], extra: str = "", study_extra: str = "") -> Path:
    path = tmp_path / "study.toml"
    path.write_text(f"""
[study]
data = "{inputs['data']}"
synthetic = ["{inputs['normal']}"]
ood = ["{inputs['ood']}"]
output = "{tmp_path / 'out'}"
seeds = [0, 1]
{study_extra}

[train]
backbone = "timm:test_resnet"
image_size = 32
epochs = 1
batch_size = 16
{extra}
""")
    return path


def test_plan_covers_methods_variants_seeds(tmp_path, inputs):
    study = plan(load_study(write_study(tmp_path, inputs, "[baseline]\ncorruptions = false\n")))
    names = [r.name for r in study.runs]
    assert len(names) == 16 and names[0] == "ce-none-s0" and "supcon-normal-ood-s1" in names
    assert all(r.action == "run" for r in study.runs)
    by = {r.name: r for r in study.runs}
    assert by["ce-normal-ood-s0"].settings.ood_loss == "outlier-exposure"
    assert by["ce-normal-ood-s0"].negatives == [inputs["ood"]]
    assert by["ce-normal-s1"].settings.ood_loss == "none" and by["ce-normal-s1"].negatives == []
    # the "ood" arm: OOD negatives alone, no normal synthetic data
    for method in ("ce", "supcon"):
        ood = by[f"{method}-ood-s0"]
        assert ood.variant == "ood" and ood.synthetic == [] and ood.negatives == [inputs["ood"]]
    assert by["ce-ood-s1"].settings.ood_loss == "outlier-exposure"
    assert by["supcon-none-s1"].settings.seed == 1 and by["supcon-none-s1"].synthetic == []
    assert by["ce-none-s0"].settings.corruptions is False and by["ce-none-s0"].settings.image_size == 32
    src = by["ce-none-s0"].sources
    assert src["image_size"].startswith("study file") and src["seed"].startswith("study file")
    assert src["momentum"] == "default"
    only = load_study(write_study(tmp_path, inputs), seeds=[5])
    assert {r.seed for r in only.runs} == {5}


@pytest.mark.parametrize("extra, study_extra, error, match", [
    ("temperature = 0.2", "", ConfigError, "not shared training settings"),
    ("seed = 3", "", ConfigError, "seeds = "),
    ("epochs = 0", "", ConfigError, "epochs"),
    ("[wrong]\nx = 1", "", ConfigError, "unknown table"),
    ("", "methods = ['rnn']", ConfigError, "study.methods"),
    ("", "eval_ood = ['missing.h5']", InputError, "missing.h5"),
])
def test_bad_study_files(tmp_path, inputs, extra, study_extra, error, match):
    with pytest.raises(error, match=match):
        load_study(write_study(tmp_path, inputs, extra, study_extra))


def test_variant_needs_its_stores(tmp_path, inputs):
    path = tmp_path / "s.toml"
    path.write_text(f'[study]\ndata = "{inputs["data"]}"\nvariants = ["none", "normal"]\n')
    with pytest.raises(ConfigError, match="variant 'normal' needs synthetic"):
        load_study(path)
    with pytest.raises(InputError, match="does not exist"):
        load_study(tmp_path / "nope.toml")
    path.write_text(f'[study]\ndata = "{inputs["data"]}"\nvariants = ["none", "ood"]\n')
    with pytest.raises(ConfigError, match="variant 'ood' needs ood"):
        load_study(path)


def _budgets(study) -> dict[str, set]:
    return {m: {(r.settings.budget, r.settings.steps, r.settings.images) for r in study.runs if r.method == m}
            for m in ("ce", "supcon")}


def test_every_arm_of_a_method_trains_the_none_arms_steps(tmp_path, inputs):
    """36 train images in batches of 16 make 3 steps per epoch (the last batch has 4 images): with
    [baseline] epochs = 4 every CE arm trains 12 steps, with [train] epochs = 1 every SupCon arm 3."""
    study = load_study(write_study(tmp_path, inputs, "[baseline]\nepochs = 4\n"))
    assert _budgets(study) == {"ce": {("steps", 12, None)}, "supcon": {("steps", 3, None)}}
    assert all(r.settings.epochs == (4 if r.method == "ce" else 1) for r in study.runs)   # evaluation rounds
    assert {r.variant for r in study.runs} == {"none", "normal", "ood", "normal+ood"}
    assert any("ce: every arm trains 12 optimizer steps of batch 16" in n and "4 epochs x 3 steps" in n
               for n in study.budget_notes)
    assert "equal budget" in study.runs[0].sources["steps"]
    images = load_study(write_study(tmp_path, inputs, study_extra='budget = "images"'))
    assert _budgets(images)["ce"] == {("images", None, 36)}
    epochs = load_study(write_study(tmp_path, inputs, study_extra='budget = "epochs"'))
    assert _budgets(epochs)["ce"] == {("epochs", None, None)} and "more optimizer steps" in epochs.budget_notes[0]
    given = load_study(write_study(tmp_path, inputs, "steps = 5"))
    assert _budgets(given) == {"ce": {("steps", 5, None)}, "supcon": {("steps", 5, None)}}
    assert "as the study file sets" in given.budget_notes[0]


def test_dry_run_shows_the_budget(run_dsc, tmp_path, inputs):
    path = write_study(tmp_path, inputs)
    res = run_dsc("study", path, "--dry-run", "--json")
    assert res.code == 0, res
    doc = json.loads(res.out)
    assert {r["budget"] for r in doc["runs"]} == {"3 steps"} and len(doc["budget"]) == 2
    res = run_dsc("study", path, "--dry-run")
    assert res.code == 0 and "every arm trains 3 optimizer steps" in res.out and "3 steps" in res.out


def _fake_training(monkeypatch, calls: list):
    """Replace pretrain/baseline/probe by writers of hand-made run files (the report reads them)."""
    from .report.conftest import write_run

    def train(kind):
        def fn(data, output, settings, *, synthetic, negatives, sources, force, resume):
            calls.append((kind, output.name, resume))
            label = arm_label(synthetic, negatives, settings.arm)
            if kind == "baseline":
                write_run(output.parent, output.name + ".tmp", method="ce", seed=settings.seed, label=label,
                          top1=0.5 + 0.1 * bool(synthetic) + 0.01 * settings.seed)
            else:
                write_run(output.parent, output.name + ".tmp", method="supcon+probe", seed=settings.seed,
                          label=label, top1=0.6 + 0.01 * settings.seed)
                (output.parent / (output.name + ".tmp") / "probe" / "metrics.json").rename(
                    output.parent / (output.name + ".tmp") / "pending.json")
            if output.exists():
                shutil.rmtree(output)
            (output.parent / (output.name + ".tmp")).rename(output)
            info = json.loads((output / "run.json").read_text())
            from dsc.store import open_store
            from dsc.train.run_dir import settings_hash

            rec = lambda p: {"path": str(p), "fingerprint": open_store(p).fingerprint}  # noqa: E731
            info.update(command_name=kind, settings_hash=settings_hash(settings.model_dump(mode="json")),
                        settings=settings.model_dump(mode="json"),
                        inputs={"data": rec(data), "synthetic": [rec(p) for p in synthetic],
                                "negatives": [rec(p) for p in negatives]})
            (output / "run.json").write_text(json.dumps(info))
        return fn

    def probe(run, settings, *, ood, sources, force):
        calls.append(("probe", Path(run).name, force))
        assert Path(run).name.endswith(f"-s{settings.seed}")      # the probe follows the run's seed
        (Path(run) / "probe").mkdir(exist_ok=True)
        metrics = json.loads((Path(run) / "pending.json").read_text())
        from dsc.store import open_store

        metrics["provenance"] = {"settings": settings.model_dump(mode="json"),
                                 "inputs": {"ood": [{"path": str(p), "fingerprint": open_store(p).fingerprint}
                                                    for p in ood]}}
        (Path(run) / "probe" / "metrics.json").write_text(json.dumps(metrics))

    monkeypatch.setattr("dsc.train.baseline.baseline", train("baseline"))
    monkeypatch.setattr("dsc.train.pretrain.pretrain", train("pretrain"))
    monkeypatch.setattr("dsc.probe.probe", probe)


def test_study_runs_skips_and_reports(run_dsc, tmp_path, inputs, monkeypatch):
    calls: list = []
    _fake_training(monkeypatch, calls)
    path = write_study(tmp_path, inputs)
    res = run_dsc("study", path, "--json")
    assert res.code == 0, res
    assert len([c for c in calls if c[0] != "probe"]) == 16 and len([c for c in calls if c[0] == "probe"]) == 8
    report = json.loads(res.out)
    names = [c["name"] for c in report["configurations"]]
    assert names == [f"{m}/{v}" for m in ("ce", "supcon+probe") for v in ("none", "normal", "ood", "normal+ood")]
    assert all(c["n"] == 2 for c in report["configurations"])
    normal = next(c for c in report["configurations"] if c["name"] == "ce/normal")
    assert normal["deltas"]["top1"]["delta"] == pytest.approx(0.1)
    # second time: everything is complete and skipped
    calls.clear()
    res = run_dsc("study", path, "--dry-run", "--json")
    assert {r["action"] for r in json.loads(res.out)["runs"]} == {"skip"}
    res = run_dsc("study", path, "--dry-run")  # the plan as a table: one row per run, by name
    assert res.code == 0 and "supcon-normal-ood-s1" in res.out and "aug-normal.h5" in res.out
    res = run_dsc("study", path)
    assert res.code == 0 and calls == [] and "supcon+probe/normal+ood" in res.out


def test_study_resumes_probes_and_refuses_changed_settings(tmp_path, inputs, monkeypatch):
    calls: list = []
    _fake_training(monkeypatch, calls)
    path = write_study(tmp_path, inputs)
    execute(plan(load_study(path)))
    out = tmp_path / "out"
    (out / "supcon-none-s0" / "probe" / "metrics.json").unlink()            # trained, not probed
    info = json.loads((out / "ce-none-s1" / "run.json").read_text())
    info["status"] = "interrupted"                                          # interrupted with a checkpoint
    (out / "ce-none-s1" / "run.json").write_text(json.dumps(info))
    (out / "ce-none-s1" / "checkpoints").mkdir()
    (out / "ce-none-s1" / "checkpoints" / "last.json").write_text("{}")
    study = plan(load_study(path))
    actions = {r.name: r.action for r in study.runs}
    assert actions["supcon-none-s0"] == "probe" and actions["ce-none-s1"] == "resume"
    assert sum(a == "skip" for a in actions.values()) == 14
    calls.clear()
    execute(study)
    assert ("baseline", "ce-none-s1", True) in calls and ("probe", "supcon-none-s0", True) in calls
    assert not any(c[0] == "pretrain" for c in calls)
    changed = write_study(tmp_path, inputs, "lr = 0.5")
    with pytest.raises(MismatchError, match="other settings"):
        plan(load_study(changed))
    assert all(r.action == "run" for r in plan(load_study(changed), force=True).runs)
    fake_synthetic(inputs["data"], inputs["normal"], seed=1)          # the normal store was regenerated
    path = write_study(tmp_path, inputs)                                   # the original settings again
    with pytest.raises(MismatchError, match="other inputs") as exc:
        plan(load_study(path))
    assert "synthetic" in str(exc.value)


def test_study_reprobes_when_probe_settings_or_ood_stores_change(tmp_path, inputs, monkeypatch):
    calls: list = []
    _fake_training(monkeypatch, calls)
    execute(plan(load_study(write_study(tmp_path, inputs))))
    actions = lambda study: {r.name: (r.action, r.reason) for r in study.runs}  # noqa: E731
    # where the probe runs does not change its results: still skipped
    study = plan(load_study(write_study(tmp_path, inputs, '[probe]\ndevice = "cpu"\neval_batch_size = 7')))
    assert {a for a, _ in actions(study).values()} == {"skip"}
    # another probe setting: every SupCon run is probed again (not retrained), CE runs are skipped
    study = plan(load_study(write_study(tmp_path, inputs, "[probe]\nepochs = 7")))
    got = actions(study)
    assert {got[n][0] for n in got if n.startswith("supcon")} == {"probe"}
    assert {got[n][0] for n in got if n.startswith("ce")} == {"skip"}
    assert "epochs: 100 -> 7" in got["supcon-none-s1"][1]
    calls.clear()
    execute(study)
    assert sorted(c[0] for c in calls) == ["probe"] * 8
    assert {a for a, _ in actions(plan(load_study(write_study(tmp_path, inputs, "[probe]\nepochs = 7")))).values()} \
        == {"skip"}
    # a new evaluation-only OOD store
    study_extra = f'eval_ood = ["{inputs["ood"]}"]'
    got = actions(plan(load_study(write_study(tmp_path, inputs, "[probe]\nepochs = 7", study_extra))))
    assert got["supcon-normal-s0"][0] == "probe" and "ood stores: none ->" in got["supcon-normal-s0"][1]
    # an unreadable probe result is redone (the run counts as not probed)
    (tmp_path / "out" / "supcon-none-s0" / "probe" / "metrics.json").write_text("{broken")
    got = actions(plan(load_study(write_study(tmp_path, inputs, "[probe]\nepochs = 7"))))
    assert got["supcon-none-s0"] == ("probe", "trained, not probed")


@pytest.mark.slow
def test_study_end_to_end_tiny(run_dsc, tmp_path):
    """Real subset -> (fake synthetic stores) -> study with real pretrain/probe/baseline -> report."""
    data = tmp_path / "data.h5"
    res = run_dsc("subset", "--dataset", "toyparts", "--classes", "3", "--holdout-classes", "1",
                  "--resolution", "32", "--output", data)
    assert res.code == 0, res
    normal = fake_synthetic(data, tmp_path / "n.h5")
    ood = fake_synthetic(data, tmp_path / "o.h5", mode="ood")
    study = tmp_path / "s.toml"
    study.write_text(f"""
[study]
data = "{data}"
synthetic = ["{normal}"]
ood = ["{ood}"]
output = "{tmp_path / 'out'}"
seeds = [0]
variants = ["none", "normal+ood"]

[train]
backbone = "timm:test_resnet"
image_size = 32
epochs = 1
batch_size = 32

[baseline]
corruptions = false

[probe]
epochs = 5
corruptions = false
""")
    res = run_dsc("study", study, "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    assert [c["name"] for c in report["configurations"]] == [
        "ce/none", "ce/normal+ood", "supcon+probe/none", "supcon+probe/normal+ood"]
    assert report["incomplete"] == []
    assert all(0 <= c["metrics"]["top1"]["mean"] <= 1 for c in report["configurations"])
    # equal budget: the arm with OOD negatives has more images per pass, yet trains the none arm's steps
    for method in ("ce", "supcon"):
        infos = [json.loads((tmp_path / "out" / f"{method}-{v}-s0" / "run.json").read_text())
                 for v in ("none", "normal-ood")]
        assert infos[0]["optimizer_steps"] == infos[1]["optimizer_steps"] == infos[0]["budget"]["total_steps"]
        assert infos[0]["images_seen"] == infos[1]["images_seen"]             # every batch is full
        assert infos[1]["batch"]["steps_per_epoch"] > infos[0]["batch"]["steps_per_epoch"]


def test_a_few_shot_sweep_plans_one_cell_per_value_with_its_own_budget(tmp_path, inputs):
    """12 train images per class: at 1 and 4 per class the 'none' arm has 3 and 12 images, 1 step per epoch
    in batches of 16; with [baseline] epochs = 4 every CE arm of a cell trains 4 steps."""
    study = load_study(write_study(tmp_path, inputs, "[baseline]\nepochs = 4\n",
                                   study_extra='examples_per_class = [4, 1]\nmethods = ["ce"]\n'
                                               'variants = ["none", "normal"]'))
    names = [r.name for r in study.runs]
    assert names[:2] == ["ce-none-k1-s0", "ce-none-k1-s1"] and "ce-normal-k4-s1" in names and len(names) == 8
    by = {r.name: r for r in study.runs}
    assert by["ce-normal-k4-s0"].settings.examples_per_class == 4 and by["ce-none-k1-s1"].examples_per_class == 1
    assert {r.settings.steps for r in study.runs} == {4}
    assert any("(k=1)" in n and "3 train images" in n for n in study.budget_notes)
    assert any("(k=4)" in n and "12 train images" in n for n in study.budget_notes)
    with pytest.raises(ConfigError, match="examples_per_class is set both"):
        load_study(write_study(tmp_path, inputs, "examples_per_class = 2",
                               study_extra="examples_per_class = [1, 2]"))
    with pytest.raises(ConfigError, match="distinct"):
        load_study(write_study(tmp_path, inputs, study_extra="examples_per_class = [2, 2]"))


def test_a_few_shot_sweep_runs_and_reports_each_cell(run_dsc, tmp_path, inputs, monkeypatch):
    calls: list = []
    _fake_training(monkeypatch, calls)
    path = write_study(tmp_path, inputs, study_extra='examples_per_class = [1, 2]\nmethods = ["ce"]\n'
                                                     'variants = ["none", "normal"]')
    res = run_dsc("study", path, "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    configs = {c["name"]: c for c in report["configurations"]}
    assert set(configs) == {"ce/none/k1", "ce/normal/k1", "ce/none/k2", "ce/normal/k2"}
    assert configs["ce/normal/k1"]["reference"] == "ce/none/k1"
    assert report["data_efficiency"]["cells"] == [1, 2]
    assert {r["configuration"] for r in report["data_efficiency"]["rows"]} == {"ce/none", "ce/normal"}


@pytest.mark.parametrize("vary, train_seeds, draw_seeds", [
    ('["train", "few-shot draw"]', {0: 0, 1: 1}, {0: 0, 1: 1}),
    ('["train"]', {0: 0, 1: 1}, {0: 0, 1: 0}),            # one draw for every seed: only training varies
])
def test_vary_says_what_a_seed_changes(tmp_path, inputs, vary, train_seeds, draw_seeds):
    from dsc.settings import BaselineSettings

    study = load_study(write_study(tmp_path, inputs, study_extra=f'examples_per_class = [2]\nmethods = ["ce"]\n'
                                                                 f'variants = ["none"]\nvary = {vary}'))
    by = {r.seed: r.settings for r in study.runs}
    assert {s: by[s].seed for s in by} == train_seeds
    assert {s: BaselineSettings.model_validate(by[s].model_dump()).few_shot_draw_seed for s in by} == draw_seeds


@pytest.mark.parametrize("study_extra, extra, match", [
    ('vary = ["train", "synthetic"]', "", "synthetic stores are given"),
    ('vary = ["few-shot draw"]', "", "vary must include 'train'"),
    ("", "few_shot_seed = 3", "not a few_shot_seed key"),
])
def test_vary_mistakes(tmp_path, inputs, study_extra, extra, match):
    with pytest.raises(ConfigError, match=match):
        load_study(write_study(tmp_path, inputs, extra, study_extra=study_extra))
