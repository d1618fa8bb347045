"""The report as tables: a small renderer-neutral model (sections of text cells with a style) that the
terminal (rich), Markdown and HTML exports all draw from, so they always show the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

STYLES = {"best": "bold green", "good": "green", "bad": "red", "dim": "dim", "warn": "yellow", None: ""}


@dataclass
class Cell:
    text: str
    style: str | None = None   # "best" | "good" | "bad" | "dim" | "warn"


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    right: set[int] = field(default_factory=set)   # right-aligned column indices


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    if s < 3600:
        return f"{s / 60:.1f}m"
    return f"{s / 3600:.1f}h"


def stage_times(t: dict[str, float]) -> str:
    """"train 52s + probe 1.3s + eval 6.0s": the main stages (all stages are in --json)."""
    parts = []
    train = t.get("pretrain", t.get("train"))
    if train is not None:
        parts.append(f"train {seconds(train)}")
    if "probe" in t:
        parts.append(f"probe {seconds(t['probe'])}")
    if "evaluate" in t:
        parts.append(f"eval {seconds(t['evaluate'])}")
    return " + ".join(parts) or "–"


def mean_std(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("mean") is None:
        return "–"
    if summary.get("std") is None:
        return pct(summary["mean"])
    return f"{pct(summary['mean'])} ± {pct(summary['std'])}"


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
    unpaired = " (unpaired)" if d.get("test") == "welch-t" else ""
    if verdict == "untested":
        parts.append(f"(n={d.get('n', 0)}, untested)")
    elif verdict == "exploratory":
        parts.append(f"exploratory (n={d['n']}){unpaired}")
    elif verdict == "secondary":
        parts.append(f"n={d['n']} p={_p(d['p'])} secondary{unpaired}")
    else:
        parts.append(f"n={d['n']} p_Holm={_p(d['p_holm'])}{unpaired}")
    mark = d.get("mark") or ""
    if mark:
        parts.append(mark)
    style = None
    if mark and mark != "n.s.":
        style = "good" if d.get("better") else "bad"
    return Cell(" ".join(parts), style)


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


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
    cols = ["configuration", "method", "synthetic", "seeds"]
    cols += [m["label"] + ("↓" if not m["higher_is_better"] else "") for m in metrics]
    if show_val:
        cols.append("val top-1")
    if show_delta:
        cols.append(f"Δ {primary['label']} (pp, primary)")
    if show_mce:
        cols.append("rel. CE↓")
    cols.append("time")
    section = Section("Comparison", cols, right=set(range(3, 4 + len(metrics) + show_val)))
    for c in configs:
        row = [Cell(c["name"] + (" (baseline)" if c["name"] == base else "")), Cell(c["method_label"]),
               Cell(c["synthetic_label"]), Cell(str(c["n"]))]
        for m in metrics:
            best = c["name"] in report["best"].get(m["key"], [])
            flag = " (optimistic)" if m["key"] in c.get("caveats", {}) else ""   # caveats.apply_caveats
            row.append(Cell(mean_std(c["metrics"].get(m["key"])) + flag, "best" if best else None))
        if show_val:
            row.append(Cell(mean_std((c.get("val") or {}).get("top1")), "best" if c["name"] == chosen else None))
        if show_delta:
            row.append(delta_text(c["deltas"].get(primary["key"])) if c["name"] != base else Cell("—", "dim"))
        if show_mce:
            v = c.get("relative_corruption_error")
            row.append(Cell("1.00 (ref)" if c["name"] == base else ("–" if v is None else f"{v:.2f}"),
                            None if v is None or c["name"] == base else ("good" if v < 1 else "bad")))
        row.append(Cell(stage_times(c.get("timings") or {}), "dim"))
        section.rows.append(row)
    notes = []
    if show_delta:
        st = report.get("statistics") or {}
        level, min_seeds = st.get("level", 1 - report["alpha"]), st.get("min_seeds", 5)
        tested = any(d.get("verdict") == "tested" for c in configs for d in c["deltas"].values())
        notes.append(
            f"Δ: mean difference of the primary metric ({primary['label']}) against {base} in percentage points; "
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
    section.notes = notes
    return section


def incomplete_section(report: dict[str, Any]) -> Section | None:
    if not report["incomplete"]:
        return None
    s = Section("Incomplete runs (not in the comparison)", ["run", "path", "reason"])
    for r in report["incomplete"]:
        s.rows.append([Cell(r["run"]), Cell(r["path"], "dim"), Cell(r["reason"], "warn")])
    return s


def to_rich(section: Section) -> Table:
    table = Table(title=section.title, box=box.SIMPLE_HEAVY, title_justify="left", title_style="bold",
                  caption="\n".join(section.notes) or None, caption_justify="left", caption_style="dim")
    for i, col in enumerate(section.columns):
        table.add_column(col, justify="right" if i in section.right else "left", overflow="fold",
                         no_wrap=i == 0 or i in section.right)
    for row in section.rows:
        table.add_row(*[Text(c.text, style=STYLES.get(c.style, "")) for c in row])
    return table


def render(sections: list[Section], console: Console, warnings: list[str] | None = None) -> None:
    for w in warnings or []:
        console.print(Text(f"Warning: {w}", style="yellow"))
    from rich.measure import Measurement

    for s in sections:
        table = to_rich(s)
        target = console
        if not console.is_terminal:   # piped or redirected: do not squeeze the table into 80 columns
            width = Measurement.get(console, console.options.update_width(250), table).maximum
            if width > console.width:
                target = Console(file=console.file, width=width, no_color=console.no_color)
        target.print(table)
