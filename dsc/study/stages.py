"""The stages a study builds before its runs (docs/commands/study.md#the-whole-pipeline): DATA.h5 from
``[subset]``, tokens from ``[invert]`` and synthetic stores from ``[augment.NAME]`` recipes, one per few-shot
cell and seed that needs its own (``[study] vary``). Parsed and checked with the study file; each stage's
action (build, resume or skip) comes from what its output already holds, by dsc's one resume rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsc.errors import ConfigError
from dsc.study.spec import StudySpec

#: Keys the study sets in [invert] and [augment.NAME] per cell and seed (refused in the file).
SET_BY_STUDY = ("seed", "few_shot_seed", "examples_per_class")
#: [augment.NAME] keys that default to [invert]'s value: the tokens only fit the model they were learned on.
INHERITED = ("model", "revision", "local_files_only", "device", "dtype", "resolution")
#: Where a study keeps what it builds, inside its output folder.
STAGES_DIR = "stages"


@dataclass(frozen=True)
class CellSeeds:
    """Which draw and which generator seed a run of a cell uses (``None``: the whole train split)."""

    shots: int | None
    draw: int | None
    generator: int

    @property
    def suffix(self) -> str:
        cell = f"-k{self.shots}-draw{self.draw}" if self.shots is not None else ""
        return f"{cell}-seed{self.generator}"

    @property
    def label(self) -> str:
        return f"k={self.shots}, draw {self.draw}, seed {self.generator}" if self.shots is not None \
            else f"seed {self.generator}"


def cell_seeds(spec: StudySpec, shots: int | None, seed: int) -> CellSeeds:
    """The draw and generator seed of the run of ``seed`` in cell ``shots``: its own seed for what
    ``[study] vary`` lists, else the first seed's."""
    first = spec.seeds[0]
    draw = (seed if "few-shot draw" in spec.vary else first) if shots is not None else None
    return CellSeeds(shots, draw, seed if "synthetic" in spec.vary else first)


@dataclass
class Stage:
    """One output the study builds: ``kind`` is data, tokens or store."""

    kind: str
    path: Path
    settings: Any
    sources: dict[str, str]
    data: Path
    cell: CellSeeds | None = None
    recipe: str = ""
    tokens: Stage | None = None       # a store's tokens, when the study learns them
    action: str = "build"             # build | resume | skip
    reason: str = "new"
    work: str = ""                    # the estimated work, in words
    amount: int | None = None         # ... and as a number of ``unit`` (None: not known before the data exists)
    unit: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def upstream(self) -> list[Stage]:
        return [self.tokens] if self.tokens is not None else []


@dataclass
class Stages:
    """Every stage of a study, in build order: the data, then tokens, then stores."""

    data: Stage | None = None
    #: token sets by (cell, recipe): recipe "" for the [invert] table's, a recipe's name for its own ``invert``
    tokens: dict[tuple[CellSeeds, str], Stage] = field(default_factory=dict)
    stores: dict[tuple[str, CellSeeds], Stage] = field(default_factory=dict)
    evaluation: dict[str, Stage] = field(default_factory=dict)   # eval_ood recipes: one store each, from test images
    recipes: set[str] = field(default_factory=set)         # every [augment.NAME] of the file

    def all(self) -> list[Stage]:
        return [*([self.data] if self.data else []), *self.tokens.values(), *self.stores.values(),
                *self.evaluation.values()]

    def __bool__(self) -> bool:
        return bool(self.all())

    def store(self, recipe: str, cell: CellSeeds) -> Path:
        return self.stores[(recipe, cell)].path

    def built_paths(self) -> set[Path]:
        """Outputs that do not exist yet but will when their stage is built."""
        return {s.path for s in self.all() if s.action != "skip"}


def resolve_section(section: str, values: dict[str, Any], origin: str, *, source: str | None = None,
                    full_keys: bool = False) -> tuple[Any, dict[str, str]]:
    """Validated settings of one study-file section (errors prefixed with ``origin``) and where each value
    came from: the file's own values as ``source`` (default ``origin``); keys ``section.key`` with
    ``full_keys`` (what subset and augment record), else ``key``."""
    from dsc.settings import resolve_settings

    try:
        resolved = resolve_settings({section: values})
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc.message}", hint=exc.hint) from None
    prefix = section + "."
    sources = {(k if full_keys else k[len(prefix):]): ((source or origin) if v == "command line" else v)
               for k, v in resolved.sources.items() if k.startswith(prefix)}
    return resolved.section(section), sources


def recipes_of(doc: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    """The ``[augment.NAME]`` tables of the study file."""
    table = doc.get("augment", {})
    loose = sorted(k for k, v in table.items() if not isinstance(v, dict))
    if loose:
        raise ConfigError(f"study file {path}: [augment] holds settings ({', '.join(loose)}) instead of named "
                          "recipes", hint="name each recipe: [augment.normal] mode = \"normal\" ... and list "
                          "it in [study] synthetic or ood")
    return dict(table)


def _refuse_study_keys(table: dict[str, Any], where: str, path: Path, extra: tuple[str, ...] = ()) -> None:
    bad = sorted(k for k in table if k in (*SET_BY_STUDY, *extra))
    if bad:
        raise ConfigError(f"study file {path}: {where} sets {', '.join(bad)}, which the study sets per cell and "
                          "seed", hint="remove it: [study] seeds, vary and examples_per_class decide them")


def load_stages(spec: StudySpec, doc: dict[str, Any], path: Path) -> Stages:
    """The stages the study file describes, every setting validated (nothing is read but the file)."""
    recipes = recipes_of(doc, path)
    stages = Stages(recipes=set(recipes))
    _check_recipe_use(spec, recipes, path)
    named = {str(p) for synthetic, ood in spec.arm_stores().values() for p in [*synthetic, *ood]}   # trained with
    evaluation = {str(p) for p in spec.eval_ood if str(p) in recipes}   # evaluation-only OOD recipes
    if "subset" in doc:
        settings, sources = resolve_section("subset", doc["subset"], f"study file {path} [subset]", full_keys=True)
        stages.data = Stage("data", spec.data, settings, sources, spec.data)
    invert = doc.get("invert")
    if invert is not None:
        _refuse_study_keys(invert, "[invert]", path, ("classes",))
        if not any("tokens" not in r and "invert" not in r and _takes_tokens(r) for r in recipes.values()):
            raise ConfigError(f"study file {path}: [invert] is given but no [augment.NAME] recipe uses its tokens",
                              hint="add a recipe without its own tokens = ..., or remove [invert]")
    cells = sorted({cell_seeds(spec, shots, seed) for shots in spec.shots for seed in spec.seeds},
                   key=lambda c: (c.shots or 0, c.draw or 0, c.generator))
    folder = spec.output / STAGES_DIR
    for name, recipe in recipes.items():
        if name in evaluation:
            cell = cell_seeds(spec, spec.shots[-1], spec.seeds[0])   # the tokens of the largest cell, first seed
            stages.evaluation[name] = _store(stages, name, recipe, CellSeeds(None, None, cell.generator), invert,
                                             folder, spec, path, tokens_cell=cell)
            continue
        if name not in named:
            continue
        if recipe.get("split", "train") != "train":
            raise ConfigError(f"study file {path}: [augment.{name}] split = {recipe['split']!r}: a study trains "
                              "on what it builds, and images made from val or test images may only be evaluated",
                              hint="list it in eval_ood (evaluation-only OOD images), or remove split")
        for cell in cells:
            stages.stores[(name, cell)] = _store(stages, name, recipe, cell, invert, folder, spec, path)
    return stages


def _store(stages: Stages, name: str, recipe: dict[str, Any], cell: CellSeeds, invert: dict[str, Any] | None,
           folder: Path, spec: StudySpec, path: Path, tokens_cell: CellSeeds | None = None) -> Stage:
    """The stage of recipe ``name`` for ``cell`` (its tokens those of ``tokens_cell``, default ``cell``)."""
    recipe = dict(recipe)
    own = recipe.pop("invert", None)   # the recipe's own token set: [invert] with these keys changed
    if own is not None and (not isinstance(own, dict) or "tokens" in recipe):
        raise ConfigError(f"study file {path}: [augment.{name}] invert must be a table of [invert] settings "
                          "(e.g. invert = {{ method = \"ti+lora\" }}), without tokens = ...",
                          hint="remove tokens = ... or the invert table")
    _refuse_study_keys(recipe, f"[augment.{name}]", path)
    learn = {**(invert or {}), **own} if own is not None else invert
    tokens = None
    values = {k: learn[k] for k in INHERITED if learn and k in learn and k not in recipe}
    values.update(recipe)
    if learn is not None and "tokens" not in recipe and _takes_tokens(recipe):
        at, key = tokens_cell or cell, name if own is not None else ""
        tokens = stages.tokens.get((at, key)) or _tokens_stage(stages, learn, at, folder, spec, path, key)
        values["tokens"] = str(tokens.path)
    values.update(_cell_values(cell))
    settings, sources = resolve_section("augment", values, f"study file {path} [augment.{name}] ({cell.label})",
                                 full_keys=True)
    return Stage("store", folder / f"{name}{cell.suffix}.h5", settings, sources, spec.data, cell, name, tokens)


def _takes_tokens(recipe: dict[str, Any]) -> bool:
    """Whether the recipe's strategy reads learned tokens (the DA-Fusion family; real-guidance does not, so
    its stores neither wait for nor depend on a token set)."""
    from dsc import registry

    strategy = recipe.get("strategy", "dafusion")
    return "tokens" in registry.get_plugin("augmenter", strategy).Options.model_fields


def _check_recipe_use(spec: StudySpec, recipes: dict[str, dict[str, Any]], path: Path) -> None:
    """Each recipe is listed in synthetic or ood, as its mode says; an unused recipe is a likely typo."""
    for key, mode in (("synthetic", "normal"), ("ood", "ood")):
        for p in getattr(spec, key):
            recipe = recipes.get(str(p))
            if recipe is not None and recipe.get("mode", "normal") != mode:
                raise ConfigError(f"study file {path}: recipe {p} makes {recipe.get('mode', 'normal')} images but "
                                  f"is listed in {key}", hint=f"list it in {'ood' if mode == 'normal' else 'synthetic'}"
                                  f" or set mode = \"{mode}\" in [augment.{p}]")
    for p in spec.eval_ood:
        recipe = recipes.get(str(p))
        if recipe is None:
            continue
        if p in spec.synthetic or p in spec.ood:
            raise ConfigError(f"study file {path}: recipe {p} is listed for training and in eval_ood",
                              hint="images for evaluation must not be trained on: use two recipes")
        if recipe.get("mode", "normal") != "ood" or recipe.get("split", "train") == "train":
            raise ConfigError(f"study file {path}: eval_ood recipe {p} must make OOD images from held-out images",
                              hint=f"set mode = \"ood\" and split = \"test\" in [augment.{p}]")
    unused = sorted(set(recipes) - {str(p) for p in [*spec.synthetic, *spec.ood, *spec.eval_ood]})
    if unused:
        raise ConfigError(f"study file {path}: recipe {', '.join(unused)} is not used",
                          hint=f"list it in [study] synthetic (normal), ood (OOD) or eval_ood (OOD from test "
                          f"images): synthetic = [\"{unused[0]}\"]")


def _cell_values(cell: CellSeeds) -> dict[str, Any]:
    values: dict[str, Any] = {"seed": cell.generator}
    if cell.shots is not None:
        values.update(examples_per_class=cell.shots, few_shot_seed=cell.draw)
    return values


def _tokens_stage(stages: Stages, invert: dict[str, Any], cell: CellSeeds, folder: Path, spec: StudySpec,
                  path: Path, recipe: str = "") -> Stage:
    """The token set of ``cell``: the [invert] table's, or (``recipe``) that recipe's own ``invert``."""
    where = f"[augment.{recipe}] invert" if recipe else "[invert]"
    settings, sources = resolve_section("invert", {**invert, **_cell_values(cell)},
                                        f"study file {path} {where} ({cell.label})")
    stage = Stage("tokens", folder / f"tokens{'-' + recipe if recipe else ''}{cell.suffix}", settings, sources,
                  spec.data, cell, recipe)
    stages.tokens[(cell, recipe)] = stage
    return stage
