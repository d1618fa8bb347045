"""The results figure a paper needs, drawn from the report's JSON (``dsc report --json`` gives the same):
per configuration the primary metric's mean with its Student t-interval over seeds and every seed as a dot,
the baseline marked (a dashed line at its mean, ``(baseline)`` in bold), each configuration's Δ against
the baseline with the report's interval under its name; beside it, panels for corruption accuracy and
OOD AUROC when the runs measured them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from dsc.errors import InputError
from dsc.report.figures.style import CATEGORY_COLOURS, figure_style, save_figure, wrap

#: Panels beside the primary metric, when any configuration has the metric (held-out OOD before synthetic).
SECONDARY_PANELS = ("corruption_top1", ("ood_auroc", "synthetic_ood_auroc"))
SEED_OFFSET = 0.26    # seed dots sit this far below the mean's row (axis units, rows are 1 apart)


def _pct(x: float | None) -> float:
    return math.nan if x is None else 100.0 * float(x)


def _panels(report: dict[str, Any], configs: list[dict[str, Any]]) -> list[str]:
    primary = report.get("primary_metric") or report.get("metric") or "top1"
    have = {k for c in configs for k in c.get("metrics", {})}
    keys = [primary]
    for choice in SECONDARY_PANELS:
        options = choice if isinstance(choice, tuple) else (choice,)
        pick = next((k for k in options if k in have and k != primary), None)
        if pick is not None and not any(k in keys for k in options):
            keys.append(pick)
    return keys


def _delta_text(c: dict[str, Any], key: str) -> str:
    """"Δ +2.3 pp [-0.4, +4.9] exploratory (n=3)": the report's comparison with the baseline, as in its table."""
    d = (c.get("deltas") or {}).get(key)
    if not d or d.get("delta") is None:
        return ""
    text = f"Δ {_pct(d['delta']):+.1f} pp"
    ci = d.get("ci")
    if ci:
        text += f" [{_pct(ci[0]):+.1f}, {_pct(ci[1]):+.1f}]"
    verdict = d.get("verdict") or ("untested" if d.get("p") is None else "exploratory")
    if verdict == "untested":
        return text + f" (n={d.get('n', 0)}, untested)"
    if verdict == "exploratory":
        return text + f" exploratory (n={d['n']})"
    p = d.get("p_holm") if d.get("p_holm") is not None else d.get("p")
    name = "p_Holm" if d.get("p_holm") is not None else "p"
    return text + f" {name}={p:.3f} {d.get('mark') or ''}".rstrip() if p >= 0.001 else \
        text + f" {name}<0.001 {d.get('mark') or ''}".rstrip()


def interval_of_mean(values: list[float], level: float) -> tuple[float, float] | None:
    """The Student t-interval of the mean of ``values`` at ``level`` (None below two values)."""
    from dsc.report.stats import t_interval

    if len(values) < 2:
        return None
    lo, hi = t_interval(values, level)
    return float(lo), float(hi)


def results_figure(report: dict[str, Any]) -> Any:
    """The results figure of a report dict (schema dsc-report/1) as a matplotlib Figure (not saved); for a
    few-shot sweep (``report["data_efficiency"]``) the data-efficiency figure."""
    if report.get("data_efficiency"):
        from dsc.report.figures.efficiency import efficiency_figure

        return efficiency_figure(report)
    return _configurations_figure(report)


def _configurations_figure(report: dict[str, Any]) -> Any:
    """One row per configuration: the primary metric (and secondary panels), seeds, intervals, the baseline."""
    configs = [c for c in report.get("configurations") or [] if c.get("metrics")]
    if not configs:
        raise InputError("no configuration has test metrics to draw", hint="give complete run directories")
    level = float((report.get("statistics") or {}).get("level", 1.0 - float(report.get("alpha", 0.05))))
    labels = {m["key"]: m for m in report.get("metrics") or []}
    keys = _panels(report, configs)
    primary, baseline = keys[0], report.get("baseline")
    methods = list(dict.fromkeys(c.get("method", "") for c in configs))
    colour = {m: CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, m in enumerate(methods)}
    names = []
    for c in configs:
        name = wrap(c["name"], 26) + ("\n(baseline)" if c["name"] == baseline else "")
        delta = _delta_text(c, primary)
        names.append(name + (f"\n{delta}" if delta else ""))
    rows = np.arange(len(configs), dtype=float)
    width = 2.4 + 2.7 * len(keys)
    height = 1.3 + 0.62 * len(configs) + 0.1 * sum(n.count("\n") for n in names)
    with figure_style() as plt:
        fig, axes = plt.subplots(1, len(keys), figsize=(width, height), sharey=True, squeeze=False,
                                 layout="constrained")
        for ax, key in zip(axes[0], keys, strict=True):
            meta = labels.get(key, {"label": key, "higher_is_better": True})
            for y, c in zip(rows, configs, strict=True):
                stat = (c.get("metrics") or {}).get(key)
                if not stat or not stat.get("values"):
                    continue
                vals = [_pct(v) for v in stat["values"]]
                col = colour[c.get("method", "")]
                dy = SEED_OFFSET + np.linspace(-0.1, 0.1, len(vals)) * (len(vals) > 1)   # equal values stay apart
                ax.scatter(vals, y + dy, s=16, facecolors="none", edgecolors=col, linewidths=0.9, zorder=3,
                           gid=f"seeds:{c['name']}")
                mean = _pct(stat["mean"])
                ci = interval_of_mean([float(v) for v in stat["values"]], level)
                marker = "D" if c["name"] == baseline else "o"
                if ci is None:
                    ax.plot([mean], [y], marker=marker, color=col, markersize=6, zorder=4, linestyle="none")
                else:
                    ax.errorbar([mean], [y], xerr=[[mean - _pct(ci[0])], [_pct(ci[1]) - mean]], fmt=marker,
                                color=col, markersize=6, capsize=3, elinewidth=1.4, zorder=4)
                if c["name"] == baseline:
                    ax.axvline(mean, color="#555555", linestyle="--", linewidth=0.9, zorder=1)
            lo, hi = ax.get_xlim()   # a wide interval (2 seeds) may pass 0 or 100 %: the view stops there
            ax.set_xlim(max(lo, -2.0), min(hi, 102.0))
            arrow = "" if meta.get("higher_is_better", True) else " ↓"
            ax.set_xlabel(f"{meta.get('label', key)}{arrow} (%)")
            role = "primary metric" if key == primary else "secondary"
            ax.set_title(f"{meta.get('label', key)} ({role})")
            ax.grid(axis="x", color="#dddddd", linewidth=0.6)
            ax.set_axisbelow(True)
        ax0 = axes[0, 0]
        ax0.set_yticks(rows, names)
        ax0.set_ylim(len(configs) - 0.5, -0.6)
        for tick, c in zip(ax0.get_yticklabels(), configs, strict=True):
            if c["name"] == baseline:
                tick.set_fontweight("bold")
        _legend(fig, plt, colour, baseline, level, configs)
    return fig


def _legend(fig: Any, plt: Any, colour: dict[str, str], baseline: str | None, level: float,
            configs: list[dict[str, Any]]) -> None:
    from matplotlib.lines import Line2D

    n = sorted({int(c.get("n") or len(c.get("seeds") or [])) for c in configs})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}–{n[-1]}"
    handles = [Line2D([], [], marker="o", linestyle="none", markerfacecolor="none", markeredgecolor="#333333",
                      label=f"one seed ({seeds} per configuration)"),
               Line2D([], [], marker="o", color="#333333", label=f"mean, {level:.0%} t-interval over seeds")]
    if baseline:
        handles.append(Line2D([], [], color="#555555", linestyle="--", label=f"baseline mean ({baseline})"))
        handles.append(Line2D([], [], linestyle="none", label=f"Δ: difference to the baseline, {level:.0%} "
                              "interval (as in the report)"))
    if len(colour) > 1:
        handles += [Line2D([], [], marker="s", linestyle="none", color=col, label=m) for m, col in colour.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), frameon=False)


def write_results_figure(path: Path, report: dict[str, Any]) -> Path:
    """Draw the results figure of ``report`` and write it to ``path`` (PNG, PDF or SVG by suffix)."""
    return save_figure(results_figure(report), path)
