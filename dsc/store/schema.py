"""The dsc store format (see docs/store-format.md): its constants, splits and the columns of each store kind.

The writer creates columns from these specs and the reader checks them, so the format is defined here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = "dsc-store"
#: 2: synthetic stores record each image's seed inputs (``base_seed``, ``ood_strategy`` columns and the
#: ``seed_derivation`` attribute) and derive seeds from the mode too; schema 1 stores are still read.
#: 3: synthetic stores have ``mix_weight`` (the weight of ``other_label`` in a Diff-Mix image's soft target, 0 for
#: every other image; a store without the column reads as all zeros) and may hold source-free images
#: (text-to-image: ``source_index`` -1); schema 1 and 2 stores are still read.
SCHEMA_VERSION = 3

#: What a store holds: real images (``subset``), synthetic images (``augment``), features (``probe``).
KINDS = ("data", "synthetic", "embeddings")

#: The splits of a store's ``split`` column, in their order.
SPLITS = ("train", "val", "test")

#: Root attributes stored as JSON strings (parsed as data only, never evaluated).
JSON_ATTRS = ("settings", "sources", "versions", "plugin", "plugin_options", "timings", "inputs", "extra",
              "summary", "class_info", "filter", "seed_derivation")

#: Required root attributes of every store.
REQUIRED_ATTRS = ("format", "schema_version", "kind", "dsc_version", "created", "fingerprint")


@dataclass(frozen=True)
class Column:
    """One ``/samples/<name>`` column: the dtype writers create it with and the family readers accept.

    ``family`` is ``int``, ``bool``, ``float``, ``str`` (one value per row) or the shape-checked
    ``digest``, ``images``, ``masks``, ``features``.
    """

    name: str
    dtype: Any
    family: str

    @property
    def per_row(self) -> bool:
        """One scalar per row (a 1-D column)."""
        return self.family in ("int", "bool", "float", "str")


#: Every standard column (docs/store-format.md#groups-and-datasets). Other columns are read unchecked.
COLUMNS: dict[str, Column] = {c.name: c for c in (
    Column("digest", "S16", "digest"), Column("images", np.uint8, "images"), Column("masks", np.uint8, "masks"),
    Column("features", np.float32, "features"),
    Column("labels", np.int64, "int"), Column("split", str, "str"), Column("group", str, "str"),
    Column("source", str, "str"), Column("meta", str, "str"), Column("holdout", bool, "bool"),
    Column("holdout_label", np.int64, "int"),
    Column("is_ood", np.bool_, "bool"), Column("source_label", np.int64, "int"),
    Column("source_index", np.int64, "int"), Column("variant", np.int32, "int"),
    Column("other_label", np.int64, "int"), Column("mix_weight", np.float32, "float"),
    Column("strategy", str, "str"), Column("prompt", str, "str"),
    Column("strength", np.float32, "float"), Column("guidance", np.float32, "float"),
    Column("steps", np.int32, "int"), Column("scheduler", str, "str"), Column("seed", np.int64, "int"),
    Column("base_seed", np.int64, "int"), Column("ood_strategy", str, "str"),
    Column("filter_score", np.float32, "float"),
    Column("set", str, "str"), Column("row", np.int64, "int"),
)}

#: The columns of each store kind, in the order the writers create them. ``digest`` is made by every writer;
#: ``masks`` only when the dataset has masks, ``filter_score`` only with ``dsc augment --filter``.
KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "data": ("digest", "images", "masks", "labels", "split", "group", "source", "meta", "holdout",
             "holdout_label"),
    "synthetic": ("digest", "images", "labels", "is_ood", "source_label", "source_index", "variant",
                  "other_label", "mix_weight", "split", "strategy", "prompt", "strength", "guidance", "steps", "scheduler",
                  "seed", "base_seed", "ood_strategy", "filter_score"),
    "embeddings": ("digest", "features", "labels", "split", "set", "row"),
}
OPTIONAL_COLUMNS = ("masks", "filter_score")

#: ``/rejections/<name>`` of a store made with ``dsc augment --filter``: one record per rejected image, enough
#: to regenerate it (parallel 1-D datasets, attribute ``count``).
REJECTIONS = "rejections"
REJECTION_COLUMNS = ("source_index", "variant", "source_label", "other_label", "seed", "strength", "score")


def row_columns(kind: str) -> list[Column]:
    """The one-value-per-row columns every store of ``kind`` has, in writing order (no optional ones)."""
    return [COLUMNS[n] for n in KIND_COLUMNS[kind] if COLUMNS[n].per_row and n not in OPTIONAL_COLUMNS]


def family_of(name: str) -> str | None:
    """The family of a standard column (``None`` for a column outside the schema)."""
    column = COLUMNS.get(name)
    return column.family if column else None
