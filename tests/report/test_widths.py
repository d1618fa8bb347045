"""The terminal report at 80, 100, 120 and 160 columns: no figure is ever cut, the answer (primary metric,
Δ and its interval) stays in the first part of the comparison, and user text is never read as markup.

The study is made without training: nine configurations of a demo-like study (CE and SupCon+probe, each
arm, two seeds, and the CE baseline on a second backbone, so two names carry a ``[backbone]`` part), six
classes (one of them named like a configuration with brackets, one with 4 test images), corruption and OOD
metrics, training curves, budgets, an incomplete run.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from dsc.report import make_report
from dsc.report.layout import tokens
from dsc.report.table import Cell, Section, render
from dsc.settings import ReportSettings

from .conftest import write_run

WIDTHS = (80, 100, 120, 160)
MARKUP = "ce/none[timm:test_resnet]"
CLASSES = ["hex nut", "wing nut", "spur gear", "washer", MARKUP, "[bold]bolt[/bold]"]
ARMS = ("none", "normal", "ood", "normal+ood")


def _extra(top1: float, seed: int, arm_index: int) -> dict:
    k = len(CLASSES)
    confusion = [[12 if i == j else (2 if j == (i + 1) % k else 0) for j in range(k)] for i in range(k)]
    confusion[3] = [0, 0, 1, 3, 0, 0]                       # washer: 4 test images (tiny evaluation)
    return {
        "classes": CLASSES, "val": {"top1": top1 - 0.013, "n": 48},
        "test": {"top1": top1, "top5": 0.97, "macro_f1": top1 - 0.021, "ece": 0.081 + 0.013 * seed, "n": 74,
                 "per_class": {c: round(top1 + 0.017 * (i - 2) + 0.003 * arm_index, 3)
                               for i, c in enumerate(CLASSES)},
                 "confusion": confusion},
        "robustness": {"clean_top1": top1, "mean_corruption_top1": top1 - 0.153 + 0.007 * seed,
                       "per_corruption": {"gaussian_noise": {"1": top1 - 0.1, "2": top1 - 0.2 + 0.01 * arm_index}}},
        "ood": {"holdout": {"msp": {"auroc": 0.612 + 0.011 * seed + 0.004 * arm_index, "fpr95": 0.834 - 0.01 * seed}},
                "synthetic": {"msp": {"auroc": 0.703 + 0.023 * seed, "fpr95": 0.741 + 0.005 * arm_index}}},
        "timings": {"evaluate": 6.1 + seed},
    }


def write_study(root: Path) -> Path:
    """The runs under ``root`` (see the module docstring)."""
    i = 0
    for method in ("ce", "supcon+probe"):
        for a, arm in enumerate(ARMS):
            for seed in (0, 1):
                top1 = round(0.208 + 0.011 * i + (0.012 + 0.007 * i) * seed, 4)
                run = write_run(root, f"{method.split('+')[0]}-{arm.replace('+', '-')}-s{seed}", method=method,
                                seed=seed, top1=top1, label=arm, extra=_extra(top1, seed, a), history=15)
                info = json.loads((run / "run.json").read_text())
                info.update(optimizer_steps=180 if arm != "normal" else 540, images_seen=5760 + 32 * a,
                            passes=1.5 + a)
                (run / "run.json").write_text(json.dumps(info))
            i += 1
    for seed in (0, 1):   # the baseline again on another backbone: both ce/none names get a [backbone] part
        extra = _extra(0.196 + 0.01 * seed, seed, 0) | {"backbone": "timm:test_resnet"}
        write_run(root, f"ce-none-small-s{seed}", seed=seed, top1=0.196 + 0.01 * seed, extra=extra, history=15)
    (root / "half-done" / "checkpoints").mkdir(parents=True)     # listed as incomplete
    return root


@pytest.fixture(scope="module")
def study_report(tmp_path_factory):
    root = write_study(tmp_path_factory.mktemp("study") / "runs")
    settings = ReportSettings(baseline=MARKUP, per_class=True)
    return make_report([root], settings)


def _text(result, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    render(result.sections, console, result.warnings)
    return console.export_text()


def _whole(figure: str, text: str) -> bool:
    """``figure`` appears with no digit, sign or point glued to either side (not a piece of another)."""
    return re.search(rf"(?<![\d.+\-]){re.escape(figure)}(?![\d])", text) is not None


def _figures(report: dict) -> list[str]:
    """Every number of the JSON report that the tables show, formatted as the tables format it."""
    out = []
    for c in report["configurations"]:
        for summary in [*c["metrics"].values(), *(c.get("val") or {}).values()]:
            out.append(f"{100 * summary['mean']:.1f}")
            if summary.get("std") is not None:
                out.append(f"± {100 * summary['std']:.1f}")
        d = c["deltas"].get(report["primary_metric"])
        if d and c["name"] != report["baseline"]:
            out.append(f"{100 * d['delta']:+.1f}")
            if d.get("ci"):
                out.append(f"[{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]")
        if c.get("relative_corruption_error") is not None and c["name"] != report["baseline"]:
            out.append(f"{c['relative_corruption_error']:.2f}")
    for per in report["per_class"]["accuracy"].values():
        out += [f"{100 * v:.1f}" for v in per.values()]
    for pairs in report["per_class"]["confused"].values():
        out += [f"{100 * p['share']:.1f}" for p in pairs]
    for conf in report["budget"]["configurations"].values():
        out += [str(b["optimizer_steps"]) for b in conf["runs"].values() if b["optimizer_steps"] is not None]
    return out


def test_the_fixture_has_what_the_report_can_show(study_report):
    report = study_report.report
    names = [c["name"] for c in report["configurations"]]
    assert len(names) == 9 and MARKUP in names and report["baseline"] == MARKUP
    assert report["per_class"] and report["curves"] and report["budget"]["unequal"] and report["incomplete"]
    assert any(w.startswith("tiny evaluation set") for w in report["warnings"])
    assert "corruption_top1" in report["configurations"][0]["metrics"]


@pytest.mark.parametrize("width", WIDTHS)
def test_every_figure_of_the_json_report_appears_whole(study_report, width):
    text = _text(study_report, width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    missing = [f for f in _figures(study_report.report) if not _whole(f, text)]
    assert not missing, f"at {width} columns these figures are cut or missing: {missing[:10]}"


@pytest.mark.parametrize("width", WIDTHS)
def test_every_cell_token_appears_whole(study_report, width):
    """Generic: each unbreakable piece of each cell and header of every table is in the text unbroken
    (or, for a configuration-name header, its number C1.. with the name in the legend)."""
    text = _text(study_report, width)
    flat = " ".join(text.split())
    for section in study_report.sections:
        for row in [[Cell(h) for h in section.columns], *section.rows]:
            for cell in row:
                parts = cell.parts if cell.parts else ()
                for tok in tokens(cell.text, parts):
                    assert tok.strip() in text or tok.strip() in flat, (width, section.title, tok)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_answer_stays_in_the_first_part(study_report, width):
    """The first part of the comparison holds every configuration's primary metric, its Δ and interval."""
    text = _text(study_report, width)
    first = text.split("Comparison", 1)[1]
    first = re.split(r"\nComparison \(2 of|\nFindings", first)[0]
    assert "top-1" in first and "Δ top-1" in " ".join(first.split())
    for c in study_report.report["configurations"]:
        d = c["deltas"].get("top1")
        if c["name"] == study_report.report["baseline"] or not d:
            continue
        assert f"[{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]" in first, (width, c["name"])
        assert _whole(f"{100 * c['metrics']['top1']['mean']:.1f}", first)


def test_wide_terminal_keeps_one_line_per_row(study_report):
    """At 300 columns nothing needs to wrap: each configuration's row is one line with mean ± std."""
    text = _text(study_report, 300)
    row = next(line for line in text.splitlines() if line.strip().startswith("supcon+probe/normal+ood "))
    normal = next(c for c in study_report.report["configurations"] if c["name"] == "supcon+probe/normal+ood")
    top1 = normal["metrics"]["top1"]
    assert f"{100 * top1['mean']:.1f} ± {100 * top1['std']:.1f}" in row and "exploratory (n=2)" in row


@pytest.mark.parametrize("width", WIDTHS)
def test_user_text_is_never_markup(study_report, width):
    """A baseline and a class named ``ce/none[timm:test_resnet]`` and a class ``[bold]bolt[/bold]`` show as
    written in tables, footnotes and warnings (rich markup would swallow the brackets)."""
    text = _text(study_report, width)
    flat = " ".join(text.split())
    assert "[timm:test_resnet]" in text and "[bold]bolt[/bold]" in flat
    assert f"against {MARKUP}" in flat                         # the Δ footnote names the baseline
    if width >= 120:
        assert MARKUP in text


def test_a_table_too_wide_is_split_and_keeps_its_key():
    section = Section("Wide", ["name", *[f"metric {i}" for i in range(12)]], right=set(range(1, 13)), keep={8})   # column 8: metric 7
    section.rows = [[Cell(f"config-{r}"), *[Cell.of(f"{10 * r + i}.5", f"± {i}.25") for i in range(12)]]
                    for r in range(3)]
    console = Console(width=80, record=True, file=io.StringIO())
    render([section], console)
    text = console.export_text()
    assert "Wide (1 of" in text and "Wide (2 of" in text
    first = text.split("Wide (2 of")[0]
    assert "metric 7" in " ".join(first.split()) and "27.5" in first   # the kept column is in the first part
    assert text.count("config-2") >= 2                                  # the key is repeated in every part
    for r in range(3):
        for i in range(12):
            assert _whole(f"{10 * r + i}.5", text) and f"± {i}.25" in text


def test_per_class_headers_are_numbered_with_a_legend_when_that_saves_a_part():
    names = [f"supcon+probe/normal+ood[policy-{i}]" for i in range(6)]
    section = Section("Per-class", ["class", *names], right=set(range(1, 7)), alias_headers=set(range(1, 7)))
    section.rows = [[Cell("gear"), *[Cell(f"{50 + i}.0") for i in range(6)]]]
    console = Console(width=80, record=True, file=io.StringIO())
    render([section], console)
    text = console.export_text()
    assert "(1 of" not in text and "C1" in text and "C6" in text
    assert "Configurations: C1: supcon+probe/normal+ood[policy-0]" in " ".join(text.split())
    assert all(_whole(f"{50 + i}.0", text) for i in range(6))


def test_footnotes_wrap_at_word_boundaries():
    words = [f"word{i}" for i in range(60)]
    section = Section("Notes", ["a"], rows=[[Cell("1")]], notes=[" ".join(words)])
    console = Console(width=80, record=True, file=io.StringIO())
    render([section], console)
    lines = console.export_text().splitlines()
    found = [w for line in lines for w in line.split()]
    assert all(w in found for w in words)                               # no word broken across lines
    assert max(len(line.rstrip()) for line in lines) <= 80


def test_cli_prints_bracketed_names_and_paths_as_written(run_dsc, tmp_path):
    root = tmp_path / "runs"
    for s in (0, 1):
        write_run(root, f"a{s}", seed=s, top1=0.5 + 0.01 * s, extra={"classes": ["gear", "bolt", "[red]nut[/red]"]},
                  per_class={"gear": 0.5, "bolt": 0.6, "[red]nut[/red]": 0.7})
    md = tmp_path / "[draft] report.md"
    res = run_dsc("report", root, "--per-class", "--no-curves", "--markdown", md)
    assert res.code == 0, res
    assert "[red]nut[/red]" in res.out and f"wrote {md}" in res.out
