"""The dsc store format (see docs/store-format.md). Constants shared by the writer and the reader."""

from __future__ import annotations

FORMAT = "dsc-store"
#: 2: synthetic stores record each image's seed inputs (``base_seed``, ``ood_strategy`` columns and the
#: ``seed_derivation`` attribute) and derive seeds from the mode too; schema 1 stores are still read.
SCHEMA_VERSION = 2

#: What a store holds: real images (``subset``), synthetic images (``augment``), features (``probe``).
KINDS = ("data", "synthetic", "embeddings")

#: Root attributes stored as JSON strings (parsed as data only, never evaluated).
JSON_ATTRS = ("settings", "sources", "versions", "plugin", "plugin_options", "timings", "inputs", "extra",
              "summary", "class_info", "filter", "seed_derivation")

#: Required root attributes of every store.
REQUIRED_ATTRS = ("format", "schema_version", "kind", "dsc_version", "created", "fingerprint")

SPLITS = ("train", "val", "test")
