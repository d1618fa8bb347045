"""Rich rendering of what commands print: store summaries (`dsc info`, the table `dsc subset` prints when it
finishes) and the summary of a probe (`dsc probe`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from dsc.console import count, out
from dsc.store.schema import SPLITS

if TYPE_CHECKING:
    from dsc.probe import ProbeResult

MAX_SKIPS_SHOWN = 20


def _short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return escape(text if len(text) <= limit else text[:limit] + " ...")


def _class_table(title: str, splits: Iterable[str], *extra: str) -> Table:
    """A table of label, class, one count per split, total (and the ``extra`` count columns)."""
    table = Table(title=title, title_justify="left")
    table.add_column("label", justify="right")
    table.add_column("class")
    for column in (*splits, "total", *extra):
        table.add_column(column, justify="right")
    return table


def render_summary(s: dict[str, Any]) -> None:
    """`dsc info`: header line, samples per class and split, then provenance."""
    attrs = s["attrs"]
    shape = "x".join(str(x) for x in s["image_shape"]) if s["image_shape"] else "-"
    holdout = s.get("holdout_classes") or []
    head = (f"[bold]{escape(s['path'])}[/]  {s['kind']} store, {count(s['n'], 'sample')}, "
            f"{count(len(s['classes']), 'class', 'classes')}"
            + (f" + {len(holdout)} held-out" if holdout else "")
            + f", images {shape}, masks {'yes' if s['masks'] else 'no'}")
    out.print(head, highlight=False)
    if attrs.get("evaluation_only"):
        out.print("[yellow]evaluation-only: never used for training[/]")
    splits = list(s["counts"])
    known = s["classes"] + holdout
    names = sorted({c for per in s["counts"].values() for c in per},
                   key=lambda c: (known.index(c) if c in known else len(known), c))
    table = _class_table("samples per class and split", splits)
    for c in names:
        vals = [s["counts"][sp].get(c, 0) for sp in splits]
        if c in s["classes"]:
            label = str(s["classes"].index(c))
        elif c in holdout:
            label = "held out"
        else:
            label = "-"
        table.add_row(label, escape(c), *map(str, vals), str(sum(vals)),
                      style="dim" if c in holdout else None)
    totals = [sum(s["counts"][sp].values()) for sp in splits]
    table.add_row("", "[bold]all[/]", *map(str, totals), str(sum(totals)))
    out.print(table)
    render_provenance(attrs)


def render_provenance(attrs: dict[str, Any]) -> None:
    prov = Table(title="provenance", title_justify="left", show_header=False)
    prov.add_column("key", style="cyan")
    prov.add_column("value", overflow="fold")
    for key in ("fingerprint", "created", "dsc_version", "command", "plugin", "plugin_options", "inputs"):
        if key in attrs:
            value = attrs[key]
            if key == "plugin" and isinstance(value, dict):
                value = f"{value.get('name')} ({value.get('distribution')} {value.get('version')})"
            prov.add_row(key, _short(value))
    settings = attrs.get("settings")
    if isinstance(settings, dict):
        sources = attrs.get("sources") if isinstance(attrs.get("sources"), dict) else {}
        changed = {k: v for k, v in settings.items()
                   if sources.get(f"subset.{k}", sources.get(k, "default")) != "default"}
        prov.add_row("settings", _short(changed or settings) + ("  (non-default only)" if changed else ""))
    summary = attrs.get("summary")
    if isinstance(summary, dict) and isinstance(summary.get("skipped"), dict):  # written by `dsc subset`
        skipped = summary["skipped"]
        reasons = ", ".join(f"{n} {r}" for r, n in skipped.get("by_reason", {}).items()) or "none"
        prov.add_row("skipped images", f"{skipped.get('total', 0)} ({escape(reasons)})")
        small = summary.get("skipped_classes") or []
        if small:
            prov.add_row("skipped classes", _short(", ".join(f"{c['name']} ({c['images']})" for c in small)))
        if "split_source" in summary:
            prov.add_row("splits", escape(str(summary["split_source"])))
        if "grouping" in summary:
            prov.add_row("groups", escape(str(summary["grouping"])))
    timings = attrs.get("timings")
    if isinstance(timings, dict):
        prov.add_row("timings", ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()
                                          if isinstance(v, (int, float))))
    if isinstance(attrs.get("versions"), dict):
        prov.add_row("versions", _short(", ".join(f"{k} {v}" for k, v in attrs["versions"].items())))
    out.print(prov)


def render_subset_summary(summary: dict[str, Any], *, path: Path, fingerprint: str,
                          timings: dict[str, float]) -> None:
    """The table `dsc subset` prints at the end: per class and split, skipped images and why."""
    table = _class_table("subset: images per class and split", SPLITS, "skipped")
    rows = [(str(i), c, "red" if c["train"] == 0 else None) for i, c in enumerate(summary["classes"])]
    for label, c, style in rows + [("held out", c, "dim") for c in summary["holdout_classes"]]:
        table.add_row(label, escape(c["name"]), *(str(c[sp]) for sp in SPLITS), str(c["total"]),
                      str(c["skipped"]) if c["skipped"] else "", style=style)
    every = summary["classes"] + summary["holdout_classes"]
    table.add_row("", "[bold]all[/]", *(str(sum(c[sp] for c in every)) for sp in SPLITS),
                  str(summary["n"]), str(summary["skipped"]["total"]))
    out.print(table)
    skipped = summary["skipped"]
    if skipped["total"]:
        reasons = ", ".join(f"{n} {r}" for r, n in skipped["by_reason"].items())
        out.print(f"[yellow]skipped {count(skipped['total'], 'image')}[/] ({escape(reasons)}):", highlight=False)
        for s in skipped["files"][:MAX_SKIPS_SHOWN]:
            out.print(f"  {escape(s['reason'])}: {escape(s['detail'])}", highlight=False)
        if skipped["total"] > MAX_SKIPS_SHOWN:
            out.print(f"  ... and {skipped['total'] - MAX_SKIPS_SHOWN} more (`dsc info {escape(str(path))} "
                      "--json` lists up to 200)", highlight=False)
    for c in summary["skipped_classes"]:
        out.print(f"[yellow]skipped class[/] {escape(c['name'])}: {count(c['images'], 'image')}, "
                  f"{escape(c['reason'])}",
                  highlight=False)
    rate = summary.get("images_per_s")
    out.print(f"[green]wrote[/] {escape(str(path))}: {count(summary['n'], 'image')} at {summary['resolution']} px, "
              f"{count(len(summary['classes']), 'class', 'classes')}"
              + (f" + {len(summary['holdout_classes'])} held out" if summary["holdout_classes"] else "")
              + f", masks {'yes' if summary['masks'] else 'no'}, splits: {summary['split_source']}; "
              f"fingerprint {fingerprint}; "
              + (f"decoding and writing {rate:,.0f} images/s with {count(summary.get('workers', 1), 'worker')}, "
                 if rate else "") + f"{timings.get('total', 0):.1f} s in all", highlight=False)


def render_probe(result: ProbeResult) -> None:
    """A short summary table of a probe's metrics on stdout."""
    m = result.metrics
    test = m.get("test", {})
    table = Table(title=f"probe of {m['run']} ({m['backbone']}, epoch {m['selected_epoch']} by val)",
                  title_justify="left", show_header=False)
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right")
    val = m["val"].get("top1")
    table.add_row("val top-1", f"{val:.4f}" if val is not None else "-")
    for key in ("top1", "top5", "macro_f1", "ece"):
        if key in test:
            table.add_row(f"test {key}", f"{test[key]:.4f}")
    rob = m.get("robustness")
    if rob:
        table.add_row("mean corruption top-1", f"{rob['mean_corruption_top1']:.4f}")
    for name, scores in (m.get("ood") or {}).items():
        for score, vals in scores.items():
            table.add_row(f"OOD {name} {score} AUROC / FPR95", f"{vals['auroc']:.4f} / {vals['fpr95']:.4f}")
    training = m.get("training") or {}
    if training.get("status") not in (None, "complete"):
        done, total = training.get("epochs_done"), training.get("epochs")
        table.add_row("training", f"[yellow]{training['status']} at epoch {done} of {total}[/]")
    t = m["timings"]
    table.add_row("time: features / probe / evaluate",
                  f"{t['features']:.1f}s / {t['probe']:.1f}s / {t['evaluate']:.1f}s")
    out.print(table)
    encoded = int((m.get("embeddings") or {}).get("encoded") or 0)
    if result.embeddings_reused or not encoded:
        how = "reused"
    else:
        rate = f", encoding {encoded / t['features']:,.1f} images/s" if t.get("features") else ""
        how = f"computed for {count(encoded, 'image')}{rate}"
    epochs = len(result.history)
    out.print(f"features {how}: {result.embeddings_path}", highlight=False, markup=False)
    out.print(f"probe trained {count(epochs, 'epoch')} in {t['probe']:.1f} s; {t['total']:.1f} s in all; "
              f"metrics: {result.metrics_path}", highlight=False, markup=False)
