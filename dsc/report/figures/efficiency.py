"""The data-efficiency figure of a few-shot sweep (what ``--results-figure`` draws when the report spans two
or more cells): the primary metric against real train images per class on a log-2 axis, one line per
method and arm, the mean over seeds with its Student t-interval as a band, every seed as a dot, the
baseline's arm dashed. Drawn from ``report["data_efficiency"]`` (``dsc/report/efficiency.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dsc.report.figures.style import CATEGORY_COLOURS, figure_style


def efficiency_figure(report: dict[str, Any]) -> Any:
    """The figure as a matplotlib Figure (not saved)."""
    data = report["data_efficiency"]
    cells = [int(k) for k in data["cells"]]
    label = next((m["label"] for m in report.get("metrics") or [] if m["key"] == data["metric"]), data["metric"])
    colour = {r["configuration"]: CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, r in enumerate(data["rows"])}
    with figure_style() as plt:
        fig, ax = plt.subplots(figsize=(7.8, 4.2), layout="constrained")
        for r in data["rows"]:
            ks = [k for k in cells if str(k) in r["values"]]
            if not ks:
                continue
            v = [r["values"][str(k)] for k in ks]
            mean = np.array([100 * x["mean"] for x in v])
            col = colour[r["configuration"]]
            base = r["configuration"] == data["baseline"]
            ax.plot(ks, mean, marker="D" if base else "o", linestyle="--" if base else "-", color=col,
                    label=r["configuration"] + (" (baseline)" if base else ""), zorder=3, gid=f"line:{r['configuration']}")
            if all(x["low"] is not None for x in v):
                ax.fill_between(ks, [100 * x["low"] for x in v], [100 * x["high"] for x in v], color=col, alpha=0.15,
                                linewidth=0, zorder=1)
            for k, x in zip(ks, v, strict=True):
                jitter = np.linspace(-0.04, 0.04, len(x["values"])) * (len(x["values"]) > 1)
                ax.scatter(k * 2.0 ** jitter, [100 * s for s in x["values"]], s=10, facecolors="none", edgecolors=col,
                           linewidths=0.7, zorder=2)
        lo, hi = ax.get_ylim()   # a wide interval (2 seeds) may pass 0 or 100 %: the view stops there
        ax.set_ylim(max(lo, -2.0), min(hi, 102.0))
        ax.set_xscale("log", base=2)
        ax.set_xticks(cells, [str(k) for k in cells])
        ax.minorticks_off()
        ax.set_xlabel("real train images per class (log 2)")
        ax.set_ylabel(f"{label} (%)")
        level = float(data.get("level", 0.95))
        ax.set_title(f"Data efficiency: {label}, mean and {level:.0%} t-interval over seeds")
        ax.grid(color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)   # beside the lines, never on them
    return fig
