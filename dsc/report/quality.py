"""The synthetic-data quality tables (docs/quality.md): one per store, from the dict that
``dsc.evaluate.quality.assess`` computes (distances, near-copies, acceptance by a real-data classifier)."""

from __future__ import annotations

import math
from typing import Any

from dsc.report.table import Cell, Section, pct


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def quality_sections(q: dict[str, Any]) -> list[Section]:
    """One table per store. Distances describe the normal images, or the OOD images of an OOD-only store."""
    sections = []
    for store in q["stores"]:
        role = "normal" if store["n"] > store["n_ood"] else "ood"
        tag = "" if role == "normal" else " (OOD)"
        s = Section(f"Synthetic-data quality: {store['path']} ({store['n']} images, {store['n_ood']} OOD)",
                    ["class", "real", "normal", f"FD{tag}", f"KID{tag}", "diversity ×real", "NN dist ×real",
                     "near-copies", f"accepted % (p≥{q['min_confidence']:g})", "OOD",
                     "OOD still source-class %"], right=set(range(1, 11)))
        for name, c in store["classes"].items():
            n, o = c.get("normal", {}), c.get("ood", {})
            d = n if role == "normal" else o
            near = n.get("near_copies", 0) + o.get("near_copies", 0)
            still = o.get("still_source")
            s.rows.append([
                Cell(name), Cell(str(q["real_per_class"].get(name, 0))), Cell(str(c["n_total"])),
                Cell(_num(d.get("fd"), "{:.1f}")), Cell(_num(d.get("kid"), "{:.3f}")),
                Cell(_num(d.get("diversity_ratio"))), Cell(_num(d.get("nn_ratio"))),
                Cell(str(near), "bad" if near else None),
                Cell(pct(n.get("acceptance")), "bad" if n.get("acceptance") is not None and n["acceptance"] < 0.5
                     else None),
                Cell(str(c["n_ood_total"])),
                Cell(pct(still), "bad" if still is not None and still > 0.5 else None)])
        ov = store.get("overall", {})
        s.notes.append(f"features: {q['feature_space']} (centred and scaled with real statistics); classifier: "
                       f"{q['classifier']}" + (f", val top-1 {pct(q['classifier_val_top1'])} %"
                                               if q.get("classifier_val_top1") is not None else ""))
        summary = []
        if "fd" in ov:
            summary.append(f"normal vs real: FD {_num(ov.get('fd'), '{:.1f}')}, KID {_num(ov.get('kid'), '{:.3f}')}, "
                           f"accepted {pct(ov.get('acceptance'))} %")
        if "ood_still_source" in ov:
            summary.append(f"OOD images the real-data classifier still puts in their source class: "
                           f"{ov.get('ood_flagged', 0)} ({pct(ov.get('ood_still_source'))} %) — flagged as not "
                           "really OOD")
        if summary:
            s.notes.append("overall: " + "; ".join(summary))
        s.notes.append(f"near-copy: nearest real image closer than {q['near_copy_ratio']:g} x the class's median "
                       "real-to-real nearest-neighbour distance; ×real columns are ratios to the real images' own "
                       "values (1 = like real data).")
        sections.append(s)
    return sections
