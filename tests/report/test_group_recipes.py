"""Runs on stores of one recipe made with other seeds are one configuration (the generator's seed is a seed);
stores without a recorded recipe are told apart by their fingerprints, as before."""

from __future__ import annotations

from pathlib import Path

from dsc.report.group import config_key
from dsc.report.runs import Run


def run(seed: int, fingerprint: str, recipe: str | None) -> Run:
    store = {"path": f"/s/normal-seed{seed}.h5", "fingerprint": fingerprint, "kind": "synthetic", "n": 4}
    if recipe is not None:
        store["recipe"] = recipe
    info = {"settings": {"seed": seed, "lr": 0.1}, "inputs": {"synthetic": [store], "negatives": []}}
    metrics = {"method": "ce", "seed": seed, "backbone": "timm:test_resnet",
               "synthetic": {"normal": [fingerprint], "ood": [], "policy": "extra", "label": "normal"}}
    return Run(Path(f"/runs/ce-normal-s{seed}"), info, metrics)


def test_one_recipe_over_seeds_is_one_configuration():
    assert config_key(run(0, "aaaa", "r1")) == config_key(run(1, "bbbb", "r1"))
    assert config_key(run(0, "aaaa", "r1")) != config_key(run(1, "bbbb", "r2"))


def test_stores_without_a_recipe_are_told_apart_by_fingerprint():
    assert config_key(run(0, "aaaa", None)) != config_key(run(1, "bbbb", None))
    assert config_key(run(0, "aaaa", None)) == config_key(run(1, "aaaa", None))
