"""The report as tables: a small renderer-neutral model (sections of text cells with a style) that the
terminal (rich, ``dsc.report.layout``), Markdown and HTML exports all draw from, so they always show the
same thing. Cell and column text is plain user text, never markup.

Layout hints a renderer may use (Markdown ignores them): ``Cell.parts`` are the pieces a cell may be broken
between (``66.3`` / ``± 2.6``; delta / interval / status), ``Section.key`` the column that names a row
(repeated when a narrow terminal splits the table), ``Section.keep`` the columns that must stay in the
first part (the primary metric and its Δ), ``Section.alias_headers`` the columns headed by a configuration
name (a narrow terminal numbers them C1, C2, ... with a legend)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.text import Text

STYLES = {"best": "bold green", "good": "green", "bad": "red", "dim": "dim", "warn": "yellow", None: ""}


@dataclass
class Cell:
    text: str
    style: str | None = None   # "best" | "good" | "bad" | "dim" | "warn"
    parts: tuple[str, ...] = ()   # where the text may break: " ".join(parts) == text (else words)

    @classmethod
    def of(cls, *parts: str, style: str | None = None) -> Cell:
        """A cell made of pieces that may go on separate lines: ``Cell.of("66.3", "± 2.6")``."""
        parts = tuple(p for p in parts if p)
        return cls(" ".join(parts), style, parts)


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    right: set[int] = field(default_factory=set)   # right-aligned column indices
    key: int | None = 0                               # the column naming a row (None: no such column)
    keep: set[int] = field(default_factory=set)       # columns a narrow layout keeps in its first part
    alias_headers: set[int] = field(default_factory=set)   # columns headed by a configuration name


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    if s < 3600:
        return f"{s / 60:.1f}m"
    return f"{s / 3600:.1f}h"


def stage_parts(t: dict[str, float]) -> tuple[str, ...]:
    """("train 52s", "+ probe 1.3s", "+ eval 6.0s"): the main stages (all stages are in --json)."""
    parts = []
    train = t.get("pretrain", t.get("train"))
    if train is not None:
        parts.append(f"train {seconds(train)}")
    if "probe" in t:
        parts.append(f"probe {seconds(t['probe'])}")
    if "evaluate" in t:
        parts.append(f"eval {seconds(t['evaluate'])}")
    return tuple(p if i == 0 else f"+ {p}" for i, p in enumerate(parts)) or ("–",)


def stage_times(t: dict[str, float]) -> str:
    """"train 52s + probe 1.3s + eval 6.0s"."""
    return " ".join(stage_parts(t))


def mean_std_parts(summary: dict[str, Any] | None) -> tuple[str, ...]:
    """("66.3", "± 2.6") in %; ("66.3",) for one seed; ("–",) without a value."""
    if not summary or summary.get("mean") is None:
        return ("–",)
    if summary.get("std") is None:
        return (pct(summary["mean"]),)
    return pct(summary["mean"]), f"± {pct(summary['std'])}"


def mean_std(summary: dict[str, Any] | None) -> str:
    return " ".join(mean_std_parts(summary))


def delta_text(d: dict[str, Any] | None) -> Cell:
    """"+2.3 [-0.4, +4.9] exploratory (n=3)" or "+2.3 [+0.4, +4.2] n=6 p_Holm=0.012 *" (percentage points,
    t-interval, then the comparison's status: untested, exploratory, secondary or Holm-adjusted test)."""
    if not d or d.get("delta") is None:
        return Cell("–", "dim")
    parts = [f"{100 * d['delta']:+.1f}"]
    if d.get("ci"):
        lo, hi = d["ci"]
        parts.append(f"[{100 * lo:+.1f}, {100 * hi:+.1f}]")
    verdict = d.get("verdict") or ("untested" if d.get("p") is None else "exploratory")
    unpaired = ["(unpaired)"] if d.get("test") == "welch-t" else []
    if verdict == "untested":
        parts.append(f"(n={d.get('n', 0)}, untested)")
    elif verdict == "exploratory":
        parts += ["exploratory", f"(n={d['n']})", *unpaired]
    elif verdict == "secondary":
        parts += [f"n={d['n']}", f"p={_p(d['p'])}", "secondary", *unpaired]
    else:
        parts += [f"n={d['n']}", f"p_Holm={_p(d['p_holm'])}", *unpaired]
    mark = d.get("mark") or ""
    if mark:
        parts[-1] += f" {mark}"   # the mark stays with its p-value
    style = None
    if mark and mark != "n.s.":
        style = "good" if d.get("better") else "bad"
    return Cell.of(*parts, style=style)


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def _metric_cell(report: dict[str, Any], m: dict[str, Any]) -> Callable[[dict[str, Any]], Cell]:
    """The cell maker of one metric column: mean ± std, bold where best, "(optimistic)" when flagged."""
    def cell(c: dict[str, Any]) -> Cell:
        best = c["name"] in report["best"].get(m["key"], [])
        flag = "(optimistic)" if m["key"] in c.get("caveats", {}) else ""   # caveats.apply_caveats
        return Cell.of(*mean_std_parts(c["metrics"].get(m["key"])), flag, style="best" if best else None)
    return cell


def _rel_ce_cell(c: dict[str, Any], base: str | None) -> Cell:
    v = c.get("relative_corruption_error")
    if c["name"] == base:
        return Cell.of("1.00", "(ref)")
    return Cell("–" if v is None else f"{v:.2f}", None if v is None else ("good" if v < 1 else "bad"))


def main_section(report: dict[str, Any]) -> Section:
    """One row per configuration: what it is, its metrics (mean ± std over seeds), validation top-1 (the
    selection metric), the primary metric's delta against the baseline, time."""
    configs = report["configurations"]
    metrics = [m for m in report["metrics"] if any(m["key"] in c["metrics"] for c in configs)]
    key = report.get("primary_metric", report.get("metric"))
    primary = next((m for m in report["metrics"] if m["key"] == key), report["metrics"][0])
    base = report.get("baseline")
    chosen = (report.get("selection") or {}).get("name")
    show_val = any(c.get("val") for c in configs)
    show_delta = base is not None and any(primary["key"] in c["deltas"] for c in configs)
    show_mce = any("relative_corruption_error" in c for c in configs)
    primary_first = sorted(metrics, key=lambda m: m["key"] != primary["key"])   # primary, then the others
    section = Section("Comparison", [])
    columns: list[tuple[str, bool, Callable[[dict[str, Any]], Cell]]] = [   # header, right-aligned, cell
        ("configuration", False, lambda c: Cell.of(c["name"], "(baseline)" if _is_reference(c, base) else "")),
        ("seeds", True, lambda c: Cell(str(c["n"])))]
    for m in primary_first:
        columns.append((m["label"] + ("↓" if not m["higher_is_better"] else ""), True, _metric_cell(report, m)))
        if m is primary and show_delta:
            columns.append((f"Δ {primary['label']} (pp, primary)", False, lambda c: (
                delta_text(c["deltas"].get(primary["key"])) if not _is_reference(c, base) else Cell("—", "dim"))))
    if show_val:
        columns.append(("val top-1", True, lambda c: Cell.of(*mean_std_parts((c.get("val") or {}).get("top1")),
                                                             style="best" if c["name"] == chosen else None)))
    if show_mce:
        columns.append(("rel. CE↓", False, lambda c: _rel_ce_cell(c, base)))
    columns += [("time", False, lambda c: Cell.of(*stage_parts(c.get("timings") or {}), style="dim")),
                ("method", False, lambda c: Cell(c["method_label"])),
                ("synthetic", False, lambda c: Cell(c["synthetic_label"]))]
    if any(c.get("protocol") not in (None, "trained from scratch", "SupCon from scratch") for c in configs):
        columns.append(("protocol", False, lambda c: Cell(c.get("protocol") or "–")))
    section.columns = [h for h, _, _ in columns]
    section.right = {i for i, (_, right, _) in enumerate(columns) if right}
    section.keep = {i for i, (h, _, _) in enumerate(columns)
                    if h.startswith("Δ ") or (primary in metrics and i == 2)}
    section.rows = [[cell(c) for _, _, cell in columns] for c in configs]
    section.notes = _main_notes(report, metrics, primary, show_delta=show_delta, show_val=show_val,
                                show_mce=show_mce)
    return section


def _is_reference(c: dict[str, Any], base: str | None) -> bool:
    """The baseline, or in a few-shot sweep the baseline's arm in a cell (what that cell is compared with)."""
    return c["name"] == base or c["name"] == c.get("reference")


def _main_notes(report: dict[str, Any], metrics: list[dict[str, Any]], primary: dict[str, Any], *,
                show_delta: bool, show_val: bool, show_mce: bool) -> list[str]:
    """The notes under the comparison table: how Δ is tested, what val top-1 is, the metric legend and
    each configuration's own notes."""
    configs, base = report["configurations"], report.get("baseline")
    notes = []
    if show_delta:
        st = report.get("statistics") or {}
        level, min_seeds = st.get("level", 1 - report["alpha"]), st.get("min_seeds", 5)
        tested = any(d.get("verdict") == "tested" for c in configs for d in c["deltas"].values())
        notes.append(
            f"Δ: mean difference of the primary metric ({primary['label']}) against {base}"
            + (" (in a few-shot sweep: against that arm with as many examples per class)"
               if any(c.get("examples_per_class") is not None for c in configs) else "")
            + " in percentage points; "
            f"[..] {100 * level:g} % t-interval (paired over matched seeds; Welch's, marked unpaired, when seeds "
            f"do not match). Fewer than {min_seeds} seeds: exploratory, no p-value or mark. "
            + (f"Otherwise p_Holm is Holm-adjusted over the {st.get('family_size', 0)} primary comparisons of "
               f"this report (each configuration vs the baseline and the arm pairs of the Findings): *** p<0.001, "
               f"** p<0.01, * p<{report['alpha']:g}, n.s. not below {report['alpha']:g}. " if tested else "")
            + "Other metrics are secondary (--json has their deltas, unadjusted and unmarked).")
    elif base is None and configs:
        notes.append("no baseline configuration (ce/none or supcon+probe/none) among these runs; pass "
                     "--baseline NAME to compare against one.")
    if show_val:
        notes.append("val top-1: validation top-1 (baseline: selected epoch; SupCon: linear probe), the only "
                     "number used to choose a configuration (bold: chosen; Findings 3 reports it on test).")
    shown = {m["key"] for m in metrics}
    legend = ["F1: macro-F1", "ECE: 15-bin calibration error"]
    if "corruption_top1" in shown:
        legend.append("corrupt.: mean top-1 over corruptions and severities")
    if shown & {"ood_auroc", "ood_fpr95"}:
        legend.append(f"OOD AUROC / FPR95: held-out classes vs test images, {report['ood_score']} score")
    if shown & {"synthetic_ood_auroc", "synthetic_ood_fpr95"}:
        legend.append("syn-OOD: evaluation-only synthetic OOD images vs test images")
    if show_mce:
        legend.append("rel. CE: corruption error relative to the baseline (1 = same)")
    notes.append("Metrics in % on the test split, mean ± std (ddof=1) over seeds; best per column in bold; "
                 "↓ lower is better. " + "; ".join(legend) + ".")
    for c in configs:
        for n in c.get("notes", []):
            notes.append(f"{c['name']}: {n}")
    return notes


def incomplete_section(report: dict[str, Any]) -> Section | None:
    if not report["incomplete"]:
        return None
    s = Section("Incomplete runs (not in the comparison)", ["run", "path", "reason"])
    for r in report["incomplete"]:
        s.rows.append([Cell(r["run"]), Cell(r["path"], "dim"), Cell(r["reason"], "warn")])
    return s


def render(sections: list[Section], console: Console, warnings: list[str] | None = None,
           width: int | None = None) -> None:
    """Print the warnings and every section on ``console``, fitted to ``width`` (default: the console's):
    nothing is cut, wide tables are wrapped or split (``dsc.report.layout``), text wraps at word boundaries."""
    from dsc.report.layout import render_section

    width = width or console.width
    for w in warnings or []:
        console.print(Text(f"Warning: {w}", style="yellow"), soft_wrap=False, width=width)
    if warnings:
        console.print()
    for s in sections:
        render_section(s, console, width)
