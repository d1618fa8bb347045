"""A few-shot sweep's answer, data efficiency: the primary metric against examples per class, one row (and
one line in the figure) per method and arm, the mean over seeds with its Student t-interval per cell.

Present when the compared runs span two or more few-shot cells (``--examples-per-class``, or a study's
``[study] examples_per_class = [...]``). Each cell is compared with its own baseline in the Comparison table
(``group.cell_reference``); this table puts the cells side by side, as DA-Fusion's headline figure does.
"""

from __future__ import annotations

from typing import Any

from dsc.report import stats
from dsc.report.group import Group
from dsc.report.table import Cell, Section, pct


def _arm(name: str, k: int | None) -> str:
    """A configuration's name without its cell (``ce/normal/k4`` -> ``ce/normal``)."""
    suffix = f"/k{k}"
    return name[: -len(suffix)] if k is not None and name.endswith(suffix) else name


def efficiency_data(report: dict[str, Any], groups: list[Group]) -> dict[str, Any] | None:
    """``report["data_efficiency"]``: per arm and cell the primary metric's mean, interval and seeds; None
    unless the runs span two or more cells."""
    cells = sorted({g.examples_per_class for g in groups if g.examples_per_class is not None})
    if len(cells) < 2:
        return None
    key = report.get("primary_metric", "top1")
    level = float((report.get("statistics") or {}).get("level", 1 - float(report.get("alpha", 0.05))))
    rows: dict[str, dict[str, Any]] = {}
    for c in report.get("configurations") or []:
        k = c.get("examples_per_class")
        arm = _arm(c["name"], k)
        row = rows.setdefault(arm, {"configuration": arm, "method": c["method"], "method_label": c["method_label"],
                                    "synthetic": c["synthetic"]["label"], "values": {}})
        stat = (c.get("metrics") or {}).get(key)
        if not stat or stat.get("mean") is None:
            continue
        values = [float(v) for v in stat["values"]]
        low, high = (float(x) for x in stats.t_interval(values, level)) if len(values) >= 2 else (None, None)
        row["values"]["all" if k is None else str(k)] = {"mean": stat["mean"], "low": low, "high": high,
                                                          "n": len(values), "values": values}
    base = report.get("baseline")
    return {"metric": key, "level": level, "cells": cells, "baseline": _arm(base, _cell_of(base)) if base else None,
            "rows": list(rows.values())}


def _cell_of(name: str) -> int | None:
    tail = name.rsplit("/k", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def efficiency_section(report: dict[str, Any], groups: list[Group]) -> Section | None:
    """The "Data efficiency" table (and ``report["data_efficiency"]``); None without a few-shot sweep."""
    data = efficiency_data(report, groups)
    if data is None:
        return None
    report["data_efficiency"] = data
    label = next((m["label"] for m in report.get("metrics") or [] if m["key"] == data["metric"]), data["metric"])
    columns = [str(k) for k in data["cells"]] + (["all"] if any("all" in r["values"] for r in data["rows"]) else [])
    s = Section(f"Data efficiency: {label} by examples per class", ["configuration", *columns],
                right=set(range(1, len(columns) + 1)))
    for r in data["rows"]:
        name = Cell.of(r["configuration"], "(baseline)" if r["configuration"] == data["baseline"] else "")
        s.rows.append([name, *(_cell(r["values"].get(k)) for k in columns)])
    n = sorted({v["n"] for r in data["rows"] for v in r["values"].values()})
    s.notes.append(
        f"Columns: real train images per class (the seeded few-shot draw). Cells: mean {label} over seeds in % "
        f"with its {100 * data['level']:g} % t-interval [low, high] ({'-'.join(map(str, n[::max(1, len(n) - 1)]))}"
        " seeds). Each column is compared with its own baseline in the Comparison table."
        + (f" Fewer than {stats.MIN_SEEDS} seeds: exploratory." if n and n[0] < stats.MIN_SEEDS else ""))
    return s


def _cell(v: dict[str, Any] | None) -> Cell:
    if v is None:
        return Cell("–", "dim")
    if v["low"] is None:
        return Cell.of(pct(v["mean"]))
    return Cell.of(pct(v["mean"]), f"[{pct(v['low'])}, {pct(v['high'])}]")
