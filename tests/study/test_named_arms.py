"""Named arms ([study.arms]): a study compares strategies (dafusion, diff-mix, ...) instead of the fixed
none/normal/ood/normal+ood variants, each arm with the same training budget, labelled by its name in the runs'
metrics and compared with the none arm in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsc.errors import ConfigError
from dsc.study import load_study, plan
from dsc.testing import augmented_like, report_stores

from ..test_study import _fake_training

ARMS = """
[study.arms]
none = []
dafusion = ["{a}"]
diff-mix = ["{b}"]
"dafusion+ood" = ["{a}", "{ood}"]
"""


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Path]:
    data, _ = report_stores(tmp_path)
    return {"data": data, "a": augmented_like(data, tmp_path / "a.h5"),
            "b": augmented_like(data, tmp_path / "b.h5", seed=1, per_image=2),
            "ood": augmented_like(data, tmp_path / "ood.h5", mode="ood")}


def _study(tmp_path: Path, s: dict[str, Path], arms: str = ARMS, extra: str = "") -> Path:
    path = tmp_path / "study.toml"
    path.write_text(f"""
[study]
data = "{s['data']}"
synthetic = ["{s['a']}", "{s['b']}"]
ood = ["{s['ood']}"]
output = "{tmp_path / 'out'}"
seeds = [0, 1]
{extra}
{arms.format(**{k: str(v) for k, v in s.items()})}
[train]
backbone = "timm:test_resnet"
image_size = 32
epochs = 2
batch_size = 16
""")
    return path


def test_named_arms_plan_one_run_per_arm_with_its_stores_and_one_budget(tmp_path, stores):
    study = plan(load_study(_study(tmp_path, stores)))
    by = {r.name: r for r in study.runs}
    assert sorted(by) == sorted(f"{m}-{a}-s{s}" for m in ("ce", "supcon") for s in (0, 1)
                                for a in ("none", "dafusion", "diff-mix", "dafusion-ood"))
    assert by["ce-diff-mix-s1"].synthetic == [stores["b"]] and by["ce-diff-mix-s1"].negatives == []
    assert by["ce-dafusion-ood-s0"].synthetic == [stores["a"]]
    assert by["ce-dafusion-ood-s0"].negatives == [stores["ood"]]
    assert by["ce-dafusion-ood-s0"].settings.ood_loss == "outlier-exposure"   # negatives: the CE's OOD loss
    assert by["ce-diff-mix-s0"].settings.ood_loss == "none"
    assert by["supcon-none-s0"].synthetic == [] and by["supcon-none-s0"].negatives == []
    assert {r.variant for r in study.runs} == {"none", "dafusion", "diff-mix", "dafusion+ood"}
    assert all(r.settings.arm == r.variant for r in study.runs)   # recorded as the run's label
    for method in ("ce", "supcon"):   # every arm of a method trains the none arm's optimizer steps
        steps = {r.settings.steps for r in study.runs if r.method == method}
        assert len(steps) == 1 and None not in steps


def test_variant_studies_keep_their_settings(tmp_path, stores):
    """Runs of a study without named arms record no arm, so runs finished before arms existed still match."""
    study = load_study(_study(tmp_path, stores, arms=""))
    assert {r.variant for r in study.runs} == {"none", "normal", "ood", "normal+ood"}
    assert all(r.settings.arm is None for r in study.runs)


@pytest.mark.parametrize("arms, extra, match", [
    ("[study.arms]\nnone = []\nx = [\"missing.h5\"]\n", "", "listed in neither synthetic nor ood"),
    (ARMS, 'variants = ["none", "normal"]', "either variants or"),
    ("[study.arms]\n", "", "arms is empty"),
    ("[study.arms]\n\"-bad\" = []\n", "", "arm name '-bad'"),
    ("[study.arms]\n\"a+b\" = []\n\"a-b\" = []\n", "", "differ only in"),
    ("[study.arms]\nx = [\"{a}\", \"{a}\"]\n", "", "lists a store twice"),
])
def test_named_arm_mistakes(tmp_path, stores, arms, extra, match):
    with pytest.raises(ConfigError, match=match):
        load_study(_study(tmp_path, stores, arms=arms, extra=extra))


def test_report_names_and_compares_each_arm_with_none(run_dsc, tmp_path, stores, monkeypatch):
    calls: list = []
    _fake_training(monkeypatch, calls)
    res = run_dsc("study", _study(tmp_path, stores), "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    names = {c["name"] for c in report["configurations"]}
    assert {"ce/none", "ce/dafusion", "ce/diff-mix", "ce/dafusion+ood", "supcon+probe/diff-mix"} <= names
    named = {(a["treated"], a["reference"]) for a in report["arm_comparisons"] if a["kind"] == "named"}
    assert named == {(f"{m}/{a}", f"{m}/none") for m in ("ce", "supcon+probe")
                     for a in ("dafusion", "diff-mix", "dafusion+ood")}
    assert not report["warnings"] or not any("records the arm" in w for w in report["warnings"])
    res = run_dsc("report", str(tmp_path / "out"))
    assert res.code == 0 and "the diff-mix arm's synthetic data helps CE?" in res.out.replace("\n", " ")


def test_runs_record_the_arm_name(tmp_path):
    """metrics.json of a CE run and of a probe carry the named arm as the label (the report's arm)."""
    from dsc.settings import BaselineSettings
    from dsc.train.baseline import metrics_document

    info = {"inputs": {"data": {"path": "d.h5", "fingerprint": "f"}, "synthetic": [{"fingerprint": "s"}],
                       "negatives": []}, "run_dir": str(tmp_path / "r")}
    doc = metrics_document(info, BaselineSettings(arm="diff-mix"), val={}, selected_epoch=0, timings={},
                           evaluation={})
    assert doc["synthetic"]["label"] == "diff-mix"
    doc = metrics_document(info, BaselineSettings(), val={}, selected_epoch=0, timings={}, evaluation={})
    assert doc["synthetic"]["label"] == "normal"


def test_a_recipe_may_learn_its_own_token_set_for_its_arm(tmp_path):
    """[augment.NAME] invert = {...}: that recipe's stores use a token set learned with [invert] changed by
    those keys (a LoRA arm beside a textual-inversion one); the other recipes share [invert]'s."""
    from .test_stages import write

    recipes = ('\n[augment.normal]\nper_image = 1\nsteps = 2\n\n[augment.own]\nper_image = 1\nsteps = 2\n'
               'invert = { method = "ti+lora", steps = 3 }\n')
    path = write(tmp_path, 'synthetic = ["normal", "own"]\nood = []', recipes=recipes, shots="[]")
    text = path.read_text().replace('variants = ["none", "normal", "normal+ood"]\n', "")
    path.write_text(text.replace("[subset]", '[study.arms]\nnone = []\nshared = ["normal"]\nown = ["own"]\n\n'
                                 "[subset]", 1))
    study = load_study(path)
    tokens = {key: stage for key, stage in study.stages.tokens.items()}
    assert sorted(recipe for _, recipe in tokens) == ["", "", "own", "own"]   # two seeds each
    own = [s for (_, r), s in tokens.items() if r == "own"]
    shared = [s for (_, r), s in tokens.items() if r == ""]
    assert {s.settings.steps for s in own} == {3} and {s.settings.steps for s in shared} == {2}
    assert {s.settings.method for s in own} == {"ti+lora"} and {s.settings.method for s in shared} == {
        "textual-inversion"}
    from dsc.study.stage_actions import plan_stages

    plan_stages(study.stages)   # the dry run's work: a LoRA's steps are all classes' together
    assert {s.work for s in own} == {"1 ti+lora x 3 steps"} and {s.amount for s in own} == {3}
    for s in own:   # a recipe's token set may ask for prior preservation: the dry run names its class images
        s.settings = s.settings.model_copy(update={"prior_preservation": True, "prior_images": 5})
    plan_stages(study.stages)
    assert {s.work for s in own} == {"1 ti+lora x 3 steps, 5 prior images per class"}
    assert all(s.path.name.startswith("tokens-own-") for s in own)
    stores = {(name, stage.tokens.path) for (name, _), stage in study.stages.stores.items()}
    assert all((name == "own") == ("tokens-own" in str(t)) for name, t in stores)
    bad = path.read_text().replace("steps = 3 }", 'steps = 3 }\ntokens = "x"')
    path.write_text(bad)
    with pytest.raises(ConfigError, match="invert must be a table"):
        load_study(path)


def test_the_strategies_example_plans_every_strategy(tmp_path, monkeypatch):
    """examples/study-strategies.toml (`just demo-strategies`) is valid and self-contained: one arm per
    strategy dsc has, each store built per seed, LoRA tokens for its own arm."""
    import tomllib

    from dsc import registry
    from dsc.study import run_study

    example = Path(__file__).resolve().parents[2] / "examples" / "study-strategies.toml"
    doc = tomllib.loads(example.read_text())
    strategies = {r.get("strategy", "dafusion") for r in doc["augment"].values()}
    builtin = {p.name for p in registry.list_plugins("augmenter") if p.distribution == "dsc"}
    assert strategies == builtin   # every strategy dsc ships
    monkeypatch.chdir(tmp_path)
    result = run_study(example, dry_run=True)
    kinds = [s["kind"] for s in result.stages]
    assert kinds.count("data") == 1 and kinds.count("tokens") == 4 and kinds.count("store") == 10
    assert result.pending_runs == 2 * 6 * 2
    study = load_study(example)
    upstream = {name: stage.tokens for (name, _), stage in study.stages.stores.items()}
    assert upstream["real-guidance"] is None   # the class name: no token set to wait for or depend on
    assert upstream["diff-mix"] is not None and "tokens-dafusion-lora" in str(upstream["dafusion-lora"].path)
