"""Caveats the report attaches to what it compares, so unfinished and questionable inputs stay visible:

- runs whose training did not finish but that have metrics anyway (``dsc probe --allow-incomplete``): their
  configuration is renamed ``NAME (incomplete)`` in every table, with a note and a warning
  (``mark_incomplete``, called by ``compare_runs``);
- a synthetic-OOD AUROC measured on an evaluation-only store made by the same model and strategy as the
  run's training negatives: optimistic, since training saw that generator's artefacts as negatives; the
  held-out-class AUROC is the fair measure (``apply_caveats``: a note, a mark in the table, a warning);
- OOD negatives that a real-data classifier still puts in their source class (label noise), from the
  quality assessment or from the stores' own ``--max-source-confidence`` filter records
  (``caveat_rows``: a Findings row per store, a warning above ``LABEL_NOISE_SHARE``);
- tiny evaluation sets: a test class with fewer than ``MIN_CLASS_TEST`` images, or a test split below
  ``MIN_TEST`` images, whose accuracy moves in steps of 20 % (a class) or several points (the split) per
  image (``flag_tiny_evaluation``: a warning naming them).

Stores are opened only for their root attributes; a store that is missing or changed since the run (other
fingerprint) is reported as not checked, never guessed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsc.report.group import Group

log = logging.getLogger(__name__)

INCOMPLETE = " (incomplete)"
OPTIMISTIC = " (optimistic)"
#: Above this share of OOD images still put in their source class, the negatives are called label noise.
LABEL_NOISE_SHARE = 0.30
#: Fewer test images than these in a class / in the whole test split: the accuracy moves in coarse steps.
MIN_CLASS_TEST = 5
MIN_TEST = 30
#: The metrics measured on the evaluation-only OOD stores.
SYNTHETIC_OOD_METRICS = ("synthetic_ood_auroc", "synthetic_ood_fpr95")


def warn(report: dict[str, Any], message: str) -> None:
    """Add a warning to the report once (``attach_findings`` may run twice) and log it."""
    warnings = report.setdefault("warnings", [])
    if message not in warnings:
        warnings.append(message)
        log.warning(message)


# ------------------------------------------------------------------------------------------ incomplete
def mark_incomplete(groups: list[Group]) -> list[str]:
    """Rename each configuration holding a run whose training did not finish to ``NAME (incomplete)``, add
    a note naming the runs, and return one warning per such run (call after the baseline is found)."""
    warnings = []
    for g in groups:
        problems = [(r, r.training_problem) for r in g.runs]
        problems = [(r, p) for r, p in problems if p]
        if not problems:
            continue
        g.name += INCOMPLETE
        for run, problem in problems:
            g.notes.append(f"run {run.name} is incomplete: {problem}")
            warnings.append(f"{run.path}: {problem}; configuration {g.name} includes it")
    return warnings


# ------------------------------------------------------------------------------------------ stores
@dataclass(frozen=True)
class StoreInfo:
    """What the report needs from a synthetic store's root attributes."""

    path: str
    fingerprint: str | None
    generator: tuple[str, str, str, str] | None   # (model id, revision, strategy, OOD strategy)
    filter: dict[str, Any] | None
    problem: str | None = None                     # why it could not be read (then nothing else is known)

    def describe_generator(self) -> str:
        if self.generator is None:
            return "unknown generator"
        model, revision, strategy, ood = self.generator
        return f"model {model}{'@' + revision if revision else ''}, strategy {strategy}" + (
            f", --ood-strategy {ood}" if ood else "")


class StoreCache:
    """Root attributes of stores by path, opened once per report."""

    def __init__(self) -> None:
        self._seen: dict[str, StoreInfo] = {}

    def get(self, path: str, fingerprint: str | None) -> StoreInfo:
        key = f"{path}|{fingerprint}"
        if key not in self._seen:
            self._seen[key] = _read_store(path, fingerprint)
        return self._seen[key]


def _read_store(path: str, fingerprint: str | None) -> StoreInfo:
    from dsc.errors import DscError
    from dsc.store import open_store

    if not Path(path).is_file():
        return StoreInfo(path, fingerprint, None, None, "missing")
    try:
        store = open_store(path, kind="synthetic")
        attrs, actual = store.attrs, store.fingerprint
    except DscError as exc:
        return StoreInfo(path, fingerprint, None, None, f"unreadable ({exc.message})")
    if fingerprint and actual != fingerprint:
        return StoreInfo(path, fingerprint, None, None, f"changed since the run (fingerprint {actual})")
    generator = None
    if attrs.get("model_id"):
        generator = (str(attrs.get("model_id")), str(attrs.get("model_revision") or ""),
                     str(attrs.get("strategy") or ""), str(attrs.get("ood_strategy") or ""))
    filt = attrs.get("filter") if isinstance(attrs.get("filter"), dict) else None
    return StoreInfo(path, actual, generator, filt)


def _negatives(run: Any) -> list[dict[str, Any]]:
    recs = (run.info.get("inputs") or {}).get("negatives") or []
    return [r for r in recs if isinstance(r, dict) and r.get("path")]


def _eval_stores(run: Any) -> list[dict[str, Any]]:
    recs = (run.metrics or {}).get("ood_stores") or []
    return [r for r in recs if isinstance(r, dict) and r.get("path")]


# ------------------------------------------------------------------------------------------ optimistic
def apply_caveats(report: dict[str, Any], groups: list[Group], cache: StoreCache | None = None) -> None:
    """Label a configuration's synthetic-OOD metrics optimistic when an evaluation-only OOD store of its runs
    was made by the same model and strategy as their training negatives (``caveats`` and a note on the
    configuration, ``report["caveats"]``, a warning). Call before the tables are built."""
    cache = cache or StoreCache()
    configs = {c["name"]: c for c in report.get("configurations", [])}
    found: dict[str, Any] = {}
    for g in groups:
        c = configs.get(g.name)
        if c is None or not any(k in c["metrics"] for k in SYNTHETIC_OOD_METRICS):
            continue
        pairs = []
        for run in g.runs:
            negs = [cache.get(r["path"], r.get("fingerprint")) for r in _negatives(run)]
            for rec in _eval_stores(run):
                ev = cache.get(rec["path"], rec.get("fingerprint"))
                pairs += [(ev, n) for n in negs if ev.generator is not None and ev.generator == n.generator]
        if not pairs:
            continue
        ev, neg = pairs[0]
        fair = c["metrics"].get("ood_auroc")
        fair_txt = (f"the held-out-class OOD AUROC ({100 * fair['mean']:.1f}) is the fair measure" if fair else
                    "the fair measure is the held-out-class OOD AUROC, which these runs lack (make DATA.h5 with "
                    "`dsc subset --holdout-classes K`)")
        text = (f"syn-OOD AUROC/FPR95 are optimistic: the evaluation-only OOD store {ev.path} was made by the same "
                f"{ev.describe_generator()} as the training negatives {neg.path}, so training saw that "
                f"generator's artefacts; {fair_txt}")
        c.setdefault("caveats", {}).update({k: "optimistic" for k in SYNTHETIC_OOD_METRICS if k in c["metrics"]})
        c["notes"].append(text)
        found[g.name] = {"evaluation_store": ev.path, "negatives_store": neg.path,
                         "generator": ev.describe_generator(), "fair_metric": "ood_auroc"}
        warn(report, f"{g.name}: {text}")
    if found:
        report.setdefault("caveats", {})["optimistic_synthetic_ood"] = found


# ------------------------------------------------------------------------------------------ label noise
def _filter_share(info: StoreInfo) -> tuple[float, int, int, float] | None:
    """(threshold, rejected, generated, share) of an OOD store filtered at generation, else None."""
    f = info.filter
    if not f or not str(f.get("rule", "")).startswith("keep score <"):   # OOD rules: "<" (old) and "<="
        return None
    x = f.get("max_source_confidence", f.get("min_confidence"))   # older OOD filters used min_confidence
    rejected, accepted = int(f.get("rejected", 0)), int(f.get("accepted", 0))
    total = rejected + accepted
    return (float(x), rejected, total, rejected / total) if x is not None and total else None


def label_noise(report: dict[str, Any], groups: list[Group], cache: StoreCache | None = None) -> list[dict]:
    """One entry per OOD store that is either assessed (``report["quality"]``) or used as training negatives:
    its path, the configurations training on it, and what is known of its images still in their source
    class: ``share`` (assessed), ``filtered`` (threshold, rejected, generated, share) or neither."""
    cache = cache or StoreCache()
    entries: dict[str, dict[str, Any]] = {}
    for g in groups:
        for run in g.runs:
            for rec in _negatives(run):
                key = rec.get("fingerprint") or rec["path"]
                e = entries.setdefault(key, {"path": rec["path"], "fingerprint": rec.get("fingerprint"),
                                             "used_by": []})
                if g.name not in e["used_by"]:
                    e["used_by"].append(g.name)
    quality = report.get("quality") or {}
    for store in quality.get("stores", []):
        share = (store.get("overall") or {}).get("ood_still_source")
        if share is None:
            continue
        key = store.get("fingerprint") or store["path"]
        e = entries.setdefault(key, {"path": store["path"], "fingerprint": store.get("fingerprint"), "used_by": []})
        e.update(share=float(share), flagged=int(store["overall"].get("ood_flagged", 0)),
                 assessed=sum(c.get("ood", {}).get("n", 0) for c in store.get("classes", {}).values()),
                 threshold=quality.get("min_confidence"))
    for e in entries.values():
        info = cache.get(e["path"], e["fingerprint"])
        filtered = _filter_share(info) if info.problem is None else None
        if filtered:
            x, rejected, total, share = filtered
            e["filtered"] = {"max_source_confidence": x, "rejected": rejected, "generated": total, "share": share}
        elif info.problem and "share" not in e:
            e["unchecked"] = info.problem
    return list(entries.values())


def _label_noise_row(e: dict[str, Any], report: dict[str, Any]) -> dict[str, str]:
    used = f"; training negatives of {', '.join(e['used_by'])}" if e["used_by"] else ""
    parts = []
    if "share" in e:
        parts.append(f"{100 * e['share']:.0f} % ({e['flagged']} of {e['assessed']} assessed) are still put in their "
                     f"source class by a real-data classifier (p≥{e['threshold']:g})")
    if "filtered" in e:
        f = e["filtered"]
        parts.append(f"filtered at generation with --max-source-confidence {f['max_source_confidence']:g}: "
                     f"{f['rejected']} of {f['generated']} generated ({100 * f['share']:.0f} %) were still their source "
                     "class and were dropped (recorded in /rejections)")
    if not parts:
        parts.append("not measured" + (f" ({e['unchecked']})" if e.get("unchecked") else "")
                     + f": assess it with `dsc report ... --synthetic {e['path']} --data DATA.h5`, or drop such "
                     "images with `dsc augment --mode ood --filter RUN --max-source-confidence 0.5`")
    answer = "; ".join(parts) + used
    if e.get("share", 0.0) > LABEL_NOISE_SHARE and "filtered" not in e:
        advice = (f"more than {100 * LABEL_NOISE_SHARE:.0f} % of these OOD images still look like their source "
                  "class, so as negatives (or as OOD test images) they are likely label noise: drop them with "
                  "`dsc augment --mode ood --filter RUN --max-source-confidence 0.5`, or use --ood-strategy "
                  "other-class or inpaint-object")
        answer += f". Warning: {advice}"
        warn(report, f"{e['path']}: {advice}")
    return {"question": f"OOD images still in their source class? ({e['path']})", "answer": answer}


def caveat_rows(report: dict[str, Any], groups: list[Group]) -> list[dict[str, str]]:
    """Findings rows: the OOD label-noise share of every OOD store that is assessed or trained on, and the
    optimistic synthetic-OOD AUROCs (``apply_caveats`` found them)."""
    entries = label_noise(report, groups)
    if entries:
        report.setdefault("caveats", {})["ood_label_noise"] = entries
    rows = [_label_noise_row(e, report) for e in entries]
    for name, o in (report.get("caveats") or {}).get("optimistic_synthetic_ood", {}).items():
        c = next((c for c in report.get("configurations", []) if c["name"] == name), {})
        fair = (c.get("metrics") or {}).get("ood_auroc")
        syn = (c.get("metrics") or {}).get("synthetic_ood_auroc")
        value = f" ({100 * syn['mean']:.1f})" if syn else ""
        answer = (f"no, optimistic{value}: the evaluation-only OOD store "
                  f"{o['evaluation_store']} comes from the same {o['generator']} as the training negatives "
                  f"{o['negatives_store']}; fair measure: held-out-class OOD AUROC "
                  + (f"{100 * fair['mean']:.1f}" if fair else "(not measured: no held-out classes)"))
        rows.append({"question": f"syn-OOD AUROC a fair measure? ({name})", "answer": answer})
    return rows


# ------------------------------------------------------------------------------------------ tiny test sets
def _test_counts(run: Any) -> tuple[int | None, dict[str, int]]:
    """(test images, {class: test images}) of a run, from metrics.json ``test.n`` and the confusion rows."""
    metrics = run.metrics or {}
    test = metrics.get("test") or {}
    n = test.get("n") if isinstance(test.get("n"), int) and not isinstance(test.get("n"), bool) else None
    classes, conf = metrics.get("classes") or [], test.get("confusion")
    per: dict[str, int] = {}
    if isinstance(conf, list) and len(conf) == len(classes):
        for name, row in zip(classes, conf, strict=True):
            if isinstance(row, list) and all(isinstance(v, (int, float)) for v in row):
                per[str(name)] = int(sum(row))
    return n, per


def flag_tiny_evaluation(report: dict[str, Any], groups: list[Group]) -> None:
    """Warn about test splits below ``MIN_TEST`` images and test classes below ``MIN_CLASS_TEST`` images (one
    image of 4 is 25 %): per DATA.h5 fingerprint, with the counts; JSON ``caveats.tiny_evaluation``."""
    seen: dict[str, dict[str, Any]] = {}
    for g in groups:
        for run in g.runs:
            n, per = _test_counts(run)
            fp = str(((run.metrics or {}).get("data") or {}).get("fingerprint") or "?")
            entry = seen.setdefault(fp, {"data_fingerprint": fp, "test_images": n, "small_classes": {}})
            if entry["test_images"] is None:
                entry["test_images"] = n
            for name, k in per.items():
                if k < MIN_CLASS_TEST:
                    entry["small_classes"].setdefault(name, k)
    flagged = [e for e in seen.values()
               if e["small_classes"] or (e["test_images"] is not None and e["test_images"] < MIN_TEST)]
    for e in flagged:
        where = f"the test split (DATA.h5 {e['data_fingerprint']})" if len(seen) > 1 else "the test split"
        parts = []
        n = e["test_images"]
        if n is not None and n < MIN_TEST:
            parts.append(f"{where} has only {n} images (< {MIN_TEST}): one image moves top-1 by "
                         f"{100 / max(n, 1):.1f} points")
        small = e["small_classes"]
        if small:
            listed = ", ".join(f"{c} ({k} image{'s' if k != 1 else ''})" for c, k in small.items())
            worst = min(small.values())
            parts.append(f"{len(small)} class(es) have fewer than {MIN_CLASS_TEST} test images: {listed}; their "
                         f"accuracy moves in steps of {100 / max(worst, 1):.0f} % or more")
        warn(report, "tiny evaluation set: " + "; ".join(parts) + ". Read such numbers as rough; make DATA.h5 "
             "with more test images per class (`dsc subset`) for firmer ones")
    if flagged:
        report.setdefault("caveats", {})["tiny_evaluation"] = flagged
