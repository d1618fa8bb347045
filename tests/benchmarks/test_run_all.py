"""benchmarks/run_all.py: every bench script's JSON shape becomes rows {benchmark, figure, dsc, baseline, unit,
ratio, better}; skipped/missing results give no rows; unknown shapes fall back; the runner runs scripts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.benchmarks import load_script

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"  # JSON written by each bench script (--quick, this repo's CPU machine)



run_all = load_script("run_all")


def _rows(name: str) -> list[dict]:
    return run_all.normalise(name, json.loads((DATA / f"{name}.json").read_text()))


def test_every_bench_script_has_an_adapter_and_a_sample() -> None:
    scripts = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert scripts <= set(run_all.ADAPTERS), f"scripts without an adapter: {scripts - set(run_all.ADAPTERS)}"
    assert set(run_all.ADAPTERS) <= {p.stem for p in DATA.glob("*.json")}


@pytest.mark.parametrize("name", sorted(run_all.ADAPTERS))
def test_each_shape_gives_complete_rows(name: str) -> None:
    rows = _rows(name)
    assert rows, name
    for r in rows:
        assert set(r) == {"benchmark", "figure", "dsc", "baseline", "unit", "ratio", "better", "gain"}
        assert r["benchmark"] == name
        assert r["better"] in ("higher", "lower", "flat")
        assert r["dsc"] > 0 and r["baseline"] > 0 and r["unit"]
        assert math.isclose(r["ratio"], r["dsc"] / r["baseline"])


def test_values_are_read_from_the_right_fields() -> None:
    aug = {r["figure"]: r for r in _rows("augment")}
    gen = next(r for f, r in aug.items() if f.startswith("generation"))
    raw = json.loads((DATA / "augment.json").read_text())
    assert gen["dsc"] == raw["dsc_images_per_second"]
    assert gen["ratio"] == pytest.approx(raw["speedup"], rel=1e-6)  # same ratio as the script's own
    loss = next(r for r in _rows("loss") if "time" in r["figure"] and "reference" in r["figure"])
    raw = json.loads((DATA / "loss.json").read_text())
    assert loss["unit"] == "ms" and loss["better"] == "lower"
    assert 1 / loss["ratio"] == pytest.approx(raw["speedup_vs_reference"], rel=1e-6)
    assert loss["gain"] == f"{raw['speedup_vs_reference']:.2f}x"
    startup = next(r for r in _rows("startup") if "--help" in r["figure"])
    assert startup["ratio"] == pytest.approx(json.loads((DATA / "startup.json").read_text())["help_to_torch_ratio"],
                                             abs=1e-3)
    mem = _rows("memory")
    assert {r["better"] for r in mem} == {"flat"} and len(mem) == 3
    assert mem[0]["gain"].endswith("%")


def test_skipped_missing_and_unknown_shapes() -> None:
    assert run_all.normalise("subset", {"benchmark": "subset", "skipped": "no data"}) == []
    assert run_all.normalise("pretrain", None) == []
    # a script that changed its shape: the generic ratio scan keeps its ratios
    rows = run_all.normalise("augment", {"speedup": 3.0, "nested": {"ratio_x": 2.0}})
    assert [r["ratio"] for r in rows] == [3.0, 2.0]
    rows = run_all.normalise("brand_new", {"results": [{"ratio": 1.5}]})
    assert rows[0]["figure"] == "results[0].ratio" and rows[0]["ratio"] == 1.5


def test_from_json_renders_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = {"schema": "dsc-bench/1", "full": False, "rows": [], "benchmarks": {
        name: {"returncode": 0, "wall_s": 1.0, "status": "ok", "result": json.loads((DATA / f"{name}.json").read_text())}
        for name in run_all.ADAPTERS}}
    saved["benchmarks"]["subset"]["result"] = {"skipped": "data not found"}
    saved["benchmarks"]["subset"]["status"] = "skipped: data not found"
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(saved))
    assert run_all.main(["--from-json", str(path), "--markdown"]) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("|")]
    assert lines[0].startswith("| benchmark | figure | dsc | baseline")
    assert any(x.startswith("| subset | skipped: data not found |") for x in lines)
    assert any(x.startswith("| pretrain |") and "x |" in x for x in lines)


def test_runner_runs_scripts_and_collects_rows(tmp_path: Path) -> None:
    (tmp_path / "bench_augment.py").write_text(
        "import json, sys\n"
        "assert '--quick' in sys.argv\n"
        "path = sys.argv[sys.argv.index('--json') + 1]\n"
        "json.dump({'dsc_images_per_second': 6.0, 'dafusion_pattern_images_per_second': 2.0, 'images': 4},"
        " open(path, 'w'))\n")
    (tmp_path / "bench_broken.py").write_text("raise SystemExit(3)\n")
    res = run_all.run_scripts(["augment", "broken"], full=False, timeout=60, folder=tmp_path)
    assert res["benchmarks"]["augment"]["status"] == "ok"
    assert res["benchmarks"]["broken"]["status"] == "failed (3)"
    assert [(r["benchmark"], r["ratio"]) for r in res["rows"]] == [("augment", 3.0)]
