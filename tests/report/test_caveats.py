"""Questionable inputs are named: OOD negatives that still look like their source class (label noise), and a
synthetic-OOD AUROC measured on a store from the same generator as the training negatives (optimistic)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from dsc.report import attach_findings, make_report
from dsc.report.table import render
from dsc.settings import ReportSettings
from dsc.testing import report_stores

from .conftest import write_run

GENERATOR = {"model_id": "tiny-sd", "model_revision": "", "strategy": "real-guidance"}


def ood_store(path: Path, data_path: Path, *, ood_strategy: str = "strength", evaluation_only: bool = False,
              filter_record: dict | None = None) -> Path:
    """A small OOD store with the root attributes `dsc augment` writes (generator, mode, filter record)."""
    from dsc.store import StoreWriter, open_store

    data = open_store(data_path, kind="data")
    rows = data.indices("test" if evaluation_only else "train")[:6]
    rng = np.random.default_rng(len(ood_strategy) + evaluation_only)
    attrs = {"inputs": {"data_fingerprint": data.fingerprint}, **GENERATOR, "mode": "ood",
             "ood_strategy": ood_strategy, "evaluation_only": evaluation_only,
             "source_split": "test" if evaluation_only else "train"}
    if filter_record is not None:
        attrs["filter"] = filter_record
    with StoreWriter(path, kind="synthetic", attrs=attrs) as w:
        w.set_classes(list(data.classes))
        w.create_column("images", data.image_shape, np.uint8)
        for col, dt in (("labels", np.int64), ("is_ood", bool), ("source_label", np.int64),
                        ("source_index", np.int64)):
            w.create_column(col, (), dt)
        w.append(images=rng.integers(0, 255, (len(rows), *data.image_shape), dtype=np.uint8),
                 labels=np.full(len(rows), -1), is_ood=np.ones(len(rows), bool),
                 source_label=data.labels[rows], source_index=rows)
        w.finalize()
    return path


def _fp(path: Path) -> str:
    from dsc.store import open_store

    return open_store(path).fingerprint


def ood_run(root: Path, name: str, *, seed: int, negatives: Path, evaluation: Path, holdout_auroc: float = 0.7,
            syn_auroc: float = 0.95) -> Path:
    """A probed pretrain run trained with OOD negatives and evaluated on an evaluation-only OOD store."""
    scores = lambda a: {"msp": {"auroc": a, "fpr95": 1 - a}}  # noqa: E731
    run = write_run(root, name, method="supcon+probe", seed=seed, label="ood", extra={
        "ood": {"holdout": scores(holdout_auroc), "synthetic": scores(syn_auroc)},
        "ood_stores": [{"path": str(evaluation), "fingerprint": _fp(evaluation), "n": 6}]})
    info = json.loads((run / "run.json").read_text())
    info["inputs"]["negatives"] = [{"path": str(negatives), "fingerprint": _fp(negatives)}]
    (run / "run.json").write_text(json.dumps(info))
    m = json.loads((run / "probe" / "metrics.json").read_text())
    m["synthetic"]["ood"] = [_fp(negatives)]
    (run / "probe" / "metrics.json").write_text(json.dumps(m))
    return run


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    return report_stores(tmp_path)[0]


def test_same_generator_makes_the_synthetic_ood_auroc_optimistic(tmp_path, data_path, run_dsc):
    neg = ood_store(tmp_path / "neg.h5", data_path)
    same = ood_store(tmp_path / "eval-same.h5", data_path, evaluation_only=True)
    other = ood_store(tmp_path / "eval-other.h5", data_path, ood_strategy="other-class", evaluation_only=True)
    for s in (0, 1):
        write_run(tmp_path / "runs", f"none-{s}", method="supcon+probe", seed=s)
        ood_run(tmp_path / "runs", f"same-{s}", seed=s, negatives=neg, evaluation=same)
        ood_run(tmp_path / "other", f"other-{s}", seed=s, negatives=neg, evaluation=other)

    result = make_report([tmp_path / "runs"], ReportSettings(curves=False))
    report = result.report
    by = {c["name"]: c for c in report["configurations"]}
    flagged = by["supcon+probe/ood"]
    assert flagged["caveats"] == {"synthetic_ood_auroc": "optimistic", "synthetic_ood_fpr95": "optimistic"}
    assert "caveats" not in by["supcon+probe/none"]
    note = next(n for n in flagged["notes"] if "optimistic" in n)
    assert str(same) in note and str(neg) in note and "--ood-strategy strength" in note
    assert "held-out-class OOD AUROC (70.0) is the fair measure" in note
    assert any("supcon+probe/ood" in w and "optimistic" in w for w in report["warnings"])
    row = next(r for r in report["findings"] if r["question"].startswith("syn-OOD AUROC a fair measure?"))
    assert row["answer"].startswith("no, optimistic (95.0)") and "held-out-class OOD AUROC 70.0" in row["answer"]

    res = run_dsc("report", tmp_path / "runs", "--no-curves")
    assert res.code == 0, res
    assert "(optimistic)" in res.out
    wide = Console(width=300, file=io.StringIO(), record=True)   # wide enough for each row on one line
    render(result.sections, wide)
    line = next(x for x in wide.export_text().splitlines() if x.strip().startswith("supcon+probe/ood"))
    assert "95.0 ± 0.0 (optimistic)" in line and "70.0 ± 0.0 " in line and "70.0 ± 0.0 (optimistic)" not in line

    # another OOD strategy made the evaluation store: a fair measure, nothing flagged
    clean = make_report([tmp_path / "other"], ReportSettings(curves=False)).report
    assert not any("caveats" in c for c in clean["configurations"])
    assert not any("optimistic" in w for w in clean["warnings"])


def test_negatives_label_noise_is_stated_from_the_filter_record_or_said_unmeasured(tmp_path, data_path):
    filtered = ood_store(tmp_path / "neg-f.h5", data_path, filter_record={
        "rule": "keep score <= 0.5", "max_source_confidence": 0.5, "accepted": 6, "rejected": 4})
    raw = ood_store(tmp_path / "neg-raw.h5", data_path, ood_strategy="blend")
    ev = ood_store(tmp_path / "eval.h5", data_path, ood_strategy="inpaint-object", evaluation_only=True)
    for s in (0, 1):
        ood_run(tmp_path / "runs", f"f-{s}", seed=s, negatives=filtered, evaluation=ev)
    ood_run(tmp_path / "runs", "raw-0", seed=0, negatives=raw, evaluation=ev)
    report = make_report([tmp_path / "runs"], ReportSettings(curves=False)).report
    rows = {r["question"]: r["answer"] for r in report["findings"]}
    f_row = rows[f"OOD images still in their source class? ({filtered})"]
    assert "--max-source-confidence 0.5: 4 of 10 generated (40 %) were still their source class and were dropped" \
        in f_row and "Warning" not in f_row
    raw_row = rows[f"OOD images still in their source class? ({raw})"]
    assert raw_row.startswith("not measured: assess it with `dsc report ... --synthetic")
    assert "--max-source-confidence 0.5" in raw_row and "training negatives of supcon+probe/ood" in raw_row
    assert not any("label noise" in w for w in report["warnings"])


@pytest.mark.parametrize("share, warned", [(0.45, True), (0.30, False), (0.10, False)])
def test_assessed_share_above_30_percent_is_called_label_noise(share, warned):
    report = {"warnings": [], "quality": {"min_confidence": 0.5, "stores": [{
        "path": "ood.h5", "fingerprint": "f" * 16, "n": 20, "n_ood": 20,
        "overall": {"ood_still_source": share, "ood_flagged": round(20 * share)},
        "classes": {"gear": {"ood": {"n": 20}}}}]}}
    attach_findings(report, [], [], ReportSettings())
    row = next(r for r in report["findings"] if r["question"] == "OOD images still in their source class? (ood.h5)")
    assert row["answer"].startswith(f"{100 * share:.0f} % ({round(20 * share)} of 20 assessed) are still put in "
                                    "their source class by a real-data classifier (p≥0.5)")
    assert ("likely label noise" in row["answer"]) == warned
    assert any("likely label noise" in w for w in report["warnings"]) == warned
    attach_findings(report, [], [], ReportSettings())       # recomputed after quality: warned once
    assert len(report["warnings"]) == int(warned)


def test_quality_report_states_the_share_it_measured(tmp_path, run_dsc):
    data, aug = report_stores(tmp_path, ood_in_dist=4)
    res = run_dsc("report", "--synthetic", aug, "--data", data, "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    share = report["quality"]["stores"][0]["overall"]["ood_still_source"]
    row = next(r for r in report["findings"] if r["question"].startswith("OOD images still in their source class?"))
    assert row["answer"].startswith(f"{100 * share:.0f} % (")
    assert ("likely label noise" in row["answer"]) == (share > 0.30)
