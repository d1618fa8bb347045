"""A study file that describes the whole pipeline: the data from [subset], tokens from [invert] and stores
from [augment.NAME] recipes, built per few-shot cell and seed before the runs (docs/commands/study.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dsc.errors import ConfigError, InputError, MismatchError
from dsc.study import load_study, run_study
from dsc.study.stage_actions import plan_stages

SUBSET = """
[subset]
dataset = "toyparts"
classes = 3
resolution = 32
options = {objects_per_class = 8}
"""
INVERT = """
[invert]
model = "tiny"
steps = 2
resolution = 32
batch_size = 2
num_vectors = 1
"""
RECIPES = """
[augment.normal]
mode = "normal"
per_image = 2
steps = 2
strength = [0.5]

[augment.ood]
mode = "ood"
per_image = 1
steps = 2
"""
TRAIN = """
[train]
backbone = "timm:test_resnet"
image_size = 32
epochs = 1
batch_size = 8

[baseline]
corruptions = false

[probe]
epochs = 2
corruptions = false
"""


def write(tmp_path: Path, study: str = "", *, subset: str = SUBSET, invert: str = INVERT, recipes: str = RECIPES,
          shots: str = "[1, 2]") -> Path:
    path = tmp_path / "study.toml"
    table = {"data": f'"{tmp_path / "data.h5"}"', "synthetic": '["normal"]', "ood": '["ood"]',
             "output": f'"{tmp_path / "out"}"', "seeds": "[0, 1]", "methods": '["ce"]',
             "variants": '["none", "normal", "normal+ood"]', "examples_per_class": shots}
    table.update(line.split(" = ", 1) for line in study.splitlines() if line.strip())  # the test's own keys
    head = "\n".join(f"{k} = {v}" for k, v in table.items())
    path.write_text(f"[study]\n{head}\n{subset}{invert}{recipes}{TRAIN}")
    return path


def test_dry_run_before_the_data_exists_lists_every_stage_and_writes_nothing(tmp_path):
    result = run_study(write(tmp_path), dry_run=True)
    kinds = [(Path(s["stage"]).name, s["kind"], s["action"]) for s in result.stages]
    assert kinds[0] == ("data.h5", "data", "build")
    # vary defaults to everything a seed changes: each cell (k = 1, 2) and seed has its own draw and generator
    tokens = sorted(n for n, k, _ in kinds if k == "tokens")
    assert tokens == ["tokens-k1-draw0-seed0", "tokens-k1-draw1-seed1", "tokens-k2-draw0-seed0",
                      "tokens-k2-draw1-seed1"]
    stores = sorted(n for n, k, _ in kinds if k == "store")
    assert len(stores) == 8 and "ood-k2-draw1-seed1.h5" in stores
    assert result.plan == [] and result.pending_runs == 2 * 1 * 3 * 2
    assert not (tmp_path / "data.h5").exists() and not (tmp_path / "out").exists()


def test_vary_decides_which_stages_a_seed_gets(tmp_path):
    study = load_study(write(tmp_path, 'vary = ["train"]'))
    assert [s.name for s in study.stages.tokens.values()] == ["tokens-k1-draw0-seed0", "tokens-k2-draw0-seed0"]
    study = load_study(write(tmp_path, 'vary = ["train", "few-shot draw"]'))
    assert sorted(s.name for s in study.stages.tokens.values()) == [
        "tokens-k1-draw0-seed0", "tokens-k1-draw1-seed0", "tokens-k2-draw0-seed0", "tokens-k2-draw1-seed0"]
    # no sweep: the whole train split, one store per recipe and seed; only the recipes an arm trains with
    whole = load_study(write(tmp_path, 'variants = ["none", "normal"]', shots="[]"))
    assert sorted(s.name for s in whole.stages.all()) == ["data.h5", "normal-seed0.h5", "normal-seed1.h5",
                                                          "tokens-seed0", "tokens-seed1"]


@pytest.mark.parametrize("study, recipes, invert, match", [
    ('synthetic = ["ood"]\nood = ["normal"]', RECIPES, INVERT, "makes ood images but is listed in synthetic"),
    ("", RECIPES + '\n[augment.spare]\nmode = "normal"\n', INVERT, "recipe spare is not used"),
    ("", RECIPES.replace('per_image = 2', 'per_image = 2\nsplit = "test"'), INVERT, "evaluated"),
    ("", RECIPES.replace('per_image = 2', 'per_image = 2\nseed = 3'), INVERT, "sets seed"),
    ("", RECIPES, INVERT + "examples_per_class = 4\n", "sets examples_per_class"),
    ("", RECIPES, INVERT + "classes = ['a']\n", "sets classes"),
    ("", RECIPES + "\n[augment]\nsteps = 3\n", INVERT, "named"),
    ("", RECIPES.replace('per_image = 2', 'per_image = 0'), INVERT, "per_image"),
    ("", RECIPES.replace('steps = 2\nstrength', 'tokens = "t"\nsteps = 2\nstrength').replace(
        'mode = "ood"\n', 'mode = "ood"\ntokens = "t"\n'), INVERT, "no \\[augment.NAME\\] recipe uses"),
])
def test_mistakes_in_the_stages_are_named_before_anything_runs(tmp_path, study, recipes, invert, match):
    with pytest.raises(ConfigError, match=match):
        load_study(write(tmp_path, study, recipes=recipes, invert=invert))
    assert not (tmp_path / "data.h5").exists()


def test_vary_synthetic_needs_recipes(tmp_path):
    path = write(tmp_path, 'vary = ["train", "synthetic"]\nsynthetic = []\nood = []\nvariants = ["none"]',
                 invert="", recipes="")
    with pytest.raises(ConfigError, match="synthetic stores are given"):
        load_study(path)
    missing = write(tmp_path, "", subset="", invert="", recipes="")
    with pytest.raises(InputError, match="describe it in a \\[subset\\] table"):
        load_study(missing)


@pytest.mark.slow
def test_the_study_builds_every_stage_per_cell_then_skips_them(tmp_path, tiny_sd_path, monkeypatch):
    monkeypatch.setenv("DSC_CACHE_DIR", str(tiny_sd_path.parents[1]))
    path = write(tmp_path)
    first = run_study(path, report=False)
    assert not first.failed and (tmp_path / "data.h5").is_file()
    study = load_study(path)
    from dsc.few_shot import draw
    from dsc.store import open_store

    data = open_store(tmp_path / "data.h5", kind="data")
    known = list(range(len(data.classes)))
    for r in study.runs:
        if r.variant == "none":
            continue
        # the same images for inversion, augmentation and training: the run's draw is its stores' sources
        s = r.settings
        rows = draw(data.labels, data.split, known, s.examples_per_class, s.few_shot_draw_seed)
        tokens = json.loads((r.path.parent / "stages" / f"tokens-k{r.examples_per_class}-draw{r.seed}-seed{r.seed}"
                             / "tokens.json").read_text())
        assert tokens["settings"]["examples_per_class"] == r.examples_per_class
        assert tokens["settings"]["few_shot_seed"] == s.few_shot_draw_seed == r.seed
        for store_path in [*r.synthetic, *r.negatives]:
            assert store_path.parent == tmp_path / "out" / "stages"
            with open_store(store_path) as store:
                sources = np.unique(store.column("source_index"))
            assert sorted(sources.tolist()) == rows.tolist(), store_path
        info = json.loads((r.path / "run.json").read_text())
        assert all(x.get("recipe") for x in info["inputs"]["synthetic"])
    # again: every stage and run is complete, nothing is rebuilt
    again = run_study(path, report=False)
    assert {s["action"] for s in again.stages} == {"skip"} and {r["action"] for r in again.plan} == {"skip"}
    # a changed recipe is refused, naming the setting; --force rebuilds
    changed = write(tmp_path, recipes=RECIPES.replace("strength = [0.5]", "strength = [0.75]"))
    with pytest.raises(MismatchError, match="strength: 0.5 -> 0.75"):
        run_study(changed, dry_run=True)
    assert {s["action"] for s in run_study(changed, dry_run=True, force=True).stages} == {"build"}
    # the report groups the seeds of one recipe (each seed has its own stores) into one configuration
    configurations = run_study(write(tmp_path)).report.report["configurations"]
    names = sorted(c["name"] for c in configurations)
    assert names == sorted(f"ce/{arm}/k{k}" for arm in ("none", "normal", "normal+ood") for k in (1, 2))
    assert all(len(c["seeds"]) == 2 for c in configurations), [(c["name"], c["seeds"]) for c in configurations]


def test_an_interrupted_stage_is_resumed(tmp_path):
    from dsc.study.stage_build import build_stage

    path = write(tmp_path, 'vary = ["train"]', shots="[1]")
    study = load_study(path)
    assert study.stages.data.action == "build"
    build_stage(study.stages.data)
    study = load_study(path)
    store = next(iter(study.stages.stores.values()))
    from dsc.augment import shards

    shards.shard_dir(store.path).mkdir(parents=True)
    plan_stages(study.stages)
    assert study.stages.data.action == "skip"
    assert store.action == "build" and store.reason == "its inputs are rebuilt"   # its tokens are built first
    tokens = next(iter(study.stages.tokens.values()))
    (tokens.path.parent / (tokens.path.name + ".partial")).mkdir()
    study = load_study(path)
    plan_stages(study.stages)
    tokens = next(iter(study.stages.tokens.values()))
    assert tokens.action == "resume" and tokens.reason == "interrupted"


def test_cli_dry_run_shows_stages_and_the_work_to_do(run_dsc, tmp_path):
    res = run_dsc("study", str(write(tmp_path)), "--dry-run")
    assert res.code == 0, res
    assert "Study stages" in res.out and "tokens-k1-draw0-seed0" in res.out and "normal-k2-draw1-seed1.h5" in res.out
    assert "12 runs planned once the data is built" in res.out
    assert "in all: 1 data store (1 build); 4 token sets (4 build); 8 synthetic stores (8 build); 12 runs" in res.out
    assert "to do: 12 runs to train" in res.out
    assert not (tmp_path / "data.h5").exists()


@pytest.mark.slow
def test_stages_built_on_every_executor_are_the_same(tmp_path, tiny_sd_path, monkeypatch, one_thread):
    """Tokens and stores built by worker processes and by a (local) Slurm job array are image for image
    those built in this process, at one thread each (the thread count changes float sums, hence tokens)."""
    pytest.importorskip("submitit")
    from dsc.store import open_store
    from dsc.study import executors
    from dsc.study.run import build_stages
    from dsc.study.stage_build import build_stage
    from dsc.threads import affinity

    monkeypatch.setenv("DSC_CACHE_DIR", str(tiny_sd_path.parents[1]))
    monkeypatch.setattr(executors, "_cpus", lambda: sorted(affinity())[:2])   # --jobs 2: one core per worker
    path = write(tmp_path, 'vary = ["train"]\nvariants = ["none", "normal"]', shots="[1]")
    path.write_text(path.read_text() + '\n[slurm]\ncluster = "local"\ntimeout_min = 10\ncpus_per_task = 1\n')  # one thread, as here
    study = load_study(path)
    build_stage(study.stages.data)
    images: dict = {}
    for executor in ("local", "processes", "slurm"):
        study = load_study(path, output=tmp_path / executor)
        plan_stages(study.stages)
        build_stages(study, executor=executor, jobs=2)
        for key, stage in study.stages.stores.items():
            with open_store(stage.path) as store:
                images.setdefault(key, []).append(store.column("digest"))   # each image's pixels
    assert len(images) == 1 and all(len(v) == 3 for v in images.values())
    for versions in images.values():
        assert [np.array_equal(versions[0], v) for v in versions[1:]] == [True, True]   # processes, slurm


def test_the_few_shot_example_plans_the_whole_pipeline(tmp_path, monkeypatch):
    """examples/study-fewshot.toml (`just demo-few-shot`) is valid and self-contained: on a fresh machine it
    plans its data, a token set and a store per cell and seed, and 24 runs."""
    example = Path(__file__).resolve().parents[2] / "examples" / "study-fewshot.toml"
    monkeypatch.chdir(tmp_path)
    result = run_study(example, dry_run=True)
    kinds = [s["kind"] for s in result.stages]
    assert kinds.count("data") == 1 and kinds.count("tokens") == 6 and kinds.count("store") == 6
    assert result.pending_runs == 24 and {s["action"] for s in result.stages} == {"build"}


def test_training_settings_are_checked_before_the_data_is_built(tmp_path):
    path = write(tmp_path)
    path.write_text(path.read_text().replace("epochs = 1", "epochs = 0"))
    with pytest.raises(ConfigError, match="epochs"):
        run_study(path, report=False)
    assert not (tmp_path / "data.h5").exists()


def test_a_recipe_of_any_strategy_without_tokens_needs_no_inversion(tmp_path):
    recipes = '\n[augment.normal]\nstrategy = "real-guidance"\nmodel = "tiny"\nper_image = 2\nsteps = 2\n'
    study = load_study(write(tmp_path, 'ood = []\nvariants = ["none", "normal"]', invert="", recipes=recipes))
    assert not study.stages.tokens and len(study.stages.stores) == 4
    store = next(iter(study.stages.stores.values()))
    assert store.settings.strategy == "real-guidance" and store.settings.tokens is None and store.tokens is None


EVAL = '\n[augment.ood-test]\nmode = "ood"\nsplit = "test"\nper_image = 1\nsteps = 2\n'


def test_an_eval_ood_recipe_is_one_store_from_test_images(tmp_path):
    study = load_study(write(tmp_path, 'methods = ["supcon"]\neval_ood = ["ood-test"]', recipes=RECIPES + EVAL))
    (stage,) = study.stages.evaluation.values()
    assert stage.name == "ood-test-seed0.h5" and stage.settings.split == "test"
    assert stage.settings.examples_per_class is None and stage.tokens.name == "tokens-k2-draw0-seed0"
    assert study.spec.eval_ood == [stage.path]
    result = run_study(write(tmp_path, 'methods = ["supcon"]\neval_ood = ["ood-test"]', recipes=RECIPES + EVAL),
                       dry_run=True)
    assert any(s["stage"].endswith("ood-test-seed0.h5") and s["action"] == "build" for s in result.stages)


@pytest.mark.parametrize("study, match", [
    ('eval_ood = ["ood-test"]\nood = ["ood-test"]', "listed for training and in eval_ood"),
    ('eval_ood = ["ood"]\nood = []\nvariants = ["none", "normal"]', "must make OOD images from held-out images"),
])
def test_eval_ood_recipe_mistakes(tmp_path, study, match):
    with pytest.raises(ConfigError, match=match):
        load_study(write(tmp_path, study, recipes=RECIPES + EVAL))
