"""Grouping runs into configurations: runs that differ only in seed (and in settings that do not change
results, such as worker counts) belong together."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dsc.arms import ARMS, arm_label
from dsc.errors import InputError
from dsc.provenance import json_hash
from dsc.report.runs import Run

#: Settings that do not define a configuration (they vary between seeds or only affect speed).
IGNORED_SETTINGS = frozenset({"seed", "few_shot_seed", "workers", "amp", "channels_last", "device", "output", "resume",
                              "force", "dtype", "num_workers", "log_every"})
METHOD_LABELS = {"ce": "CE", "supcon+probe": "SupCon+probe"}
SYNTHETIC_LABELS = {"none": "none", "normal": "normal", "ood": "OOD", "normal+ood": "normal+OOD"}


def method_of(run: Run) -> str:
    m = (run.metrics or {}).get("method")
    if m:
        return str(m)
    return "ce" if run.kind == "baseline" else "supcon+probe"


def synthetic_of(run: Run) -> dict[str, Any]:
    """The run's synthetic-data description, normalised (label, policy, ood_policy, fingerprints).

    The label (the arm) is derived from the store fingerprints the run used; the recorded label only
    counts when it is a study's named arm (``dafusion``, ``diff-mix``: ``[study.arms]``) or when a run lists no
    fingerprints at all (older dsc wrote ``normal+ood`` for negatives only)."""
    syn = (run.metrics or {}).get("synthetic") or {}
    normal = sorted(str(x) for x in syn.get("normal") or [])
    ood = sorted(str(x) for x in syn.get("ood") or [])
    recorded = syn.get("label")
    named = recorded if isinstance(recorded, str) and recorded and recorded not in ARMS else None
    label = arm_label(normal, ood, named) if normal or ood or named else (recorded or "none")
    return {"label": str(label), "policy": syn.get("policy") if normal else None,
            "ood_policy": syn.get("ood_policy") if ood else None, "normal": normal, "ood": ood}


def relabelled(run: Run) -> str | None:
    """A warning when the run's recorded arm label disagrees with the data it used (None when it agrees)."""
    recorded = ((run.metrics or {}).get("synthetic") or {}).get("label")
    derived = synthetic_of(run)["label"]
    if recorded and recorded != derived:
        return (f"{run.path} records the arm {recorded!r} but trained on "
                f"{'no normal synthetic data' if derived == 'ood' else derived + ' data'}; shown as {derived!r}")
    return None


def _settings_key(run: Run) -> dict[str, Any]:
    """The settings that define a configuration (a setting dsc added later, at the value older runs had, is
    left out, so runs from before it group with runs after)."""
    from dsc.train.run_dir import ADDED_LATER

    return {k: v for k, v in sorted(run.settings.items()) if k not in IGNORED_SETTINGS
            and not (k in ADDED_LATER and v == ADDED_LATER[k])}


def protocol_of(method: str, settings: dict[str, Any]) -> str:
    """How the encoder was obtained and trained: ``trained from scratch``, ``fine-tuned from pretrained``,
    ``linear on frozen pretrained`` (CE), ``SupCon from scratch`` / ``SupCon from pretrained`` (+ probe)."""
    init = "pretrained" if settings.get("pretrained") else "checkpoint" if settings.get("checkpoint") else "scratch"
    if method == "ce":
        if settings.get("protocol") == "linear":
            return f"linear on frozen {init}"
        return "trained from scratch" if init == "scratch" else f"fine-tuned from {init}"
    return f"SupCon from {init}"


def config_key(run: Run) -> str:
    """A stable identity of everything about a run except its seed."""
    syn = synthetic_of(run)
    recipes = _recipes(run)
    if recipes is not None:  # stores of one recipe made with other seeds: replicates, like training seeds
        syn = {**syn, **recipes}
    key = {"method": method_of(run), "backbone": (run.metrics or {}).get("backbone"),
           "data": run.data_fingerprint, "synthetic": syn, "settings": _settings_key(run)}
    return json_hash(key)


def _recipes(run: Run) -> dict[str, list[str]] | None:
    """The recipes of the run's synthetic and OOD stores (run.json), when every store records one."""
    inputs = run.info.get("inputs") if isinstance(run.info.get("inputs"), dict) else {}
    stores = {k: [x for x in inputs.get(k) or [] if isinstance(x, dict)] for k in ("synthetic", "negatives")}
    every = [x.get("recipe") for k in stores for x in stores[k]]
    if not every or not all(every):
        return None
    return {"normal": sorted(x["recipe"] for x in stores["synthetic"]),
            "ood": sorted(x["recipe"] for x in stores["negatives"])}


@dataclass
class Group:
    """Runs of one configuration (one per seed, normally)."""

    key: str
    runs: list[Run]
    method: str
    backbone: str | None
    synthetic: dict[str, Any]
    settings: dict[str, Any]
    name: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]

    @property
    def examples_per_class(self) -> int | None:
        """The few-shot cell of a group trained with ``--examples-per-class`` (None: the whole train split)."""
        k = self.settings.get("examples_per_class")
        return int(k) if k is not None else None

    @property
    def protocol(self) -> str:
        return protocol_of(self.method, self.settings)

    @property
    def method_label(self) -> str:
        return METHOD_LABELS.get(self.method, self.method)

    @property
    def synthetic_label(self) -> str:
        syn = self.synthetic
        text = SYNTHETIC_LABELS.get(syn["label"], syn["label"])
        policies = [p for p in (syn.get("policy"), syn.get("ood_policy")) if p]
        return f"{text} ({', '.join(policies)})" if policies else text

    def values(self, getter) -> dict[int, float]:
        """Per-seed values of a metric (runs without the metric are left out; seedless runs get -1, -2...).
        Seeds are unique within a group (``group_runs`` refuses repeats), so no run is dropped here."""
        out: dict[int, float] = {}
        for i, run in enumerate(self.runs):
            v = getter(run.metrics or {})
            if v is None:
                continue
            seed = run.seed if run.seed is not None else -(i + 1)
            out[seed] = float(v)
        return out


def _base_name(g: Group) -> str:
    shots = g.examples_per_class
    return f"{g.method}/{g.synthetic['label']}" + (f"/k{shots}" if shots is not None else "")


def group_runs(runs: list[Run]) -> list[Group]:
    """Group complete runs by configuration and give each group a short unique name such as
    ``ce/none`` or ``supcon+probe/normal+ood`` (policies, backbone or a hash are appended on clashes)."""
    groups: dict[str, Group] = {}
    for run in runs:
        if not run.complete:
            continue
        key = config_key(run)
        if key not in groups:
            groups[key] = Group(key, [], method_of(run), (run.metrics or {}).get("backbone"),
                                synthetic_of(run), _settings_key(run))
        groups[key].runs.append(run)
    ordered = sorted(groups.values(), key=lambda g: (
        g.examples_per_class if g.examples_per_class is not None else 1 << 30,
        list(METHOD_LABELS).index(g.method) if g.method in METHOD_LABELS else 9,
        list(SYNTHETIC_LABELS).index(g.synthetic["label"]) if g.synthetic["label"] in SYNTHETIC_LABELS else 9,
        json.dumps(g.synthetic, sort_keys=True), str(g.backbone), g.key))
    for g in ordered:
        g.runs.sort(key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, r.name))
        g.name = _base_name(g)
    refiners = (
        lambda g: g.protocol,
        lambda g: ",".join(p for p in (g.synthetic.get("policy"), g.synthetic.get("ood_policy")) if p),
        lambda g: str(g.backbone or ""),
        lambda g: g.key[:6],
    )
    for refine in refiners:
        clashes: dict[str, list[Group]] = {}
        for g in ordered:
            clashes.setdefault(g.name, []).append(g)
        for same in clashes.values():
            if len(same) > 1 and (refine is not refiners[0] or len({refine(g) for g in same}) > 1):
                for g in same:   # (the protocol is named only where it tells configurations apart)
                    extra = refine(g)
                    if extra:
                        g.name = f"{g.name}[{extra}]" if "[" not in g.name else g.name[:-1] + f",{extra}]"
    for g in ordered:
        _refuse_shared_seeds(g)
    return ordered


def _refuse_shared_seeds(g: Group) -> None:
    """Two runs of one configuration with the same seed cannot both be paired by seed: refuse, naming both."""
    first: dict[int, Run] = {}
    for run in g.runs:
        if run.seed is None:
            continue
        if run.seed in first:
            raise InputError(f"runs {first[run.seed].path} and {run.path} are both seed {run.seed} of "
                             f"configuration {g.name}; the comparison pairs runs by seed",
                             hint="report only one of them (move the other out of the folders given), or "
                             "give repeated runs different seeds")
        first[run.seed] = run


def largest_cell(groups: list[Group]) -> int | None:
    """The few-shot cell with the most examples per class (None, the whole train split, is the largest)."""
    cells = {g.examples_per_class for g in groups}
    return None if None in cells or not cells else max(c for c in cells if c is not None)


def cell_reference(base: Group | None, g: Group, groups: list[Group]) -> Group | None:
    """The configuration ``g`` is compared with: the baseline, or in a few-shot sweep the baseline's
    configuration (method, arm, backbone) in ``g``'s own cell (same examples per class); None if it has none."""
    if base is None or g.examples_per_class == base.examples_per_class:
        return base
    return next((h for h in groups if h.examples_per_class == g.examples_per_class and h.method == base.method
                 and h.synthetic["label"] == base.synthetic["label"] and h.backbone == base.backbone), None)


def find_baseline(groups: list[Group], spec: str | None, runs: list[Run] | None = None) -> Group | None:
    """The group named by ``spec`` (a configuration name, case-insensitive, or a run directory), or the
    default: ``ce/none``, else ``supcon+probe/none``, else no baseline. In a few-shot sweep the default is
    that arm in the cell with the most examples per class (each cell is compared with its own, see
    :func:`cell_reference`)."""
    from pathlib import Path

    if spec is None:
        for name in ("ce/none", "supcon+probe/none"):
            match = [g for g in groups if g.name == name or g.name.startswith(name + "/k")]
            if match:
                return max(match, key=lambda g: g.examples_per_class or 0)
        return None
    path = Path(spec)
    if path.is_dir():
        target = path.resolve()
        for g in groups:
            if any(r.path.resolve() == target for r in g.runs):
                return g
        raise InputError(f"baseline run {spec} is not among the complete runs of this report",
                         hint="pass it as a RUN argument too, or give a configuration name")
    wanted = spec.strip().lower()
    exact = [g for g in groups if g.name.lower() == wanted]
    if exact:
        return exact[0]
    prefix = [g for g in groups if g.name.lower().startswith(wanted)]
    if len(prefix) == 1:
        return prefix[0]
    names = ", ".join(g.name for g in groups) or "(none)"
    if len(prefix) > 1:
        raise InputError(f"baseline {spec!r} matches several configurations: "
                         f"{', '.join(g.name for g in prefix)}", hint=f"use one of: {names}")
    raise InputError(f"baseline {spec!r} matches no configuration", hint=f"use one of: {names}")


def mixed_data(runs: list[Run]) -> dict[str, list[str]]:
    """Data fingerprint -> run names, when the complete runs come from more than one DATA.h5."""
    by_fp: dict[str, list[str]] = {}
    for r in runs:
        if r.complete:
            by_fp.setdefault(r.data_fingerprint or "unknown", []).append(str(r.path))
    return by_fp if len(by_fp) > 1 else {}


#: The arm comparisons the Findings make, as (kind, treated arm, reference arm). "both" (normal+OOD vs
#: none) is asked only where a family has no normal arm to separate the two effects. A study's named arms
#: (``dafusion``, ``diff-mix``, ...) are each compared with the family's ``none`` arm (kind "named").
ARM_PAIRS = (("positives", "normal", "none"), ("negatives", "normal+ood", "normal"),
             ("negatives-only", "ood", "none"), ("both", "normal+ood", "none"))


def arm_pairs(groups: list[Group]) -> list[tuple[str, Group, Group]]:
    """(kind, treated, reference) for every arm comparison between configurations of one method, backbone
    and DATA.h5 (a family); with several configurations of one arm in a family, every pairing is listed."""
    families: dict[tuple, dict[str, list[Group]]] = {}
    for g in groups:
        fam = (g.method, str(g.backbone), g.runs[0].data_fingerprint if g.runs else None, g.examples_per_class)
        families.setdefault(fam, {}).setdefault(g.synthetic["label"], []).append(g)
    out: list[tuple[str, Group, Group]] = []
    for arms in families.values():
        for kind, treated, reference in ARM_PAIRS:
            if kind == "both" and arms.get("normal"):
                continue
            out += [(kind, a, b) for a in arms.get(treated, []) for b in arms.get(reference, [])]
        for name in [n for n in arms if n not in ARMS]:   # a study's named arms ([study.arms]) against none
            out += [("named", a, b) for a in arms[name] for b in arms.get("none", [])]
    return out
