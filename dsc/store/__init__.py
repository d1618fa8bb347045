"""The only code that opens HDF5: the dsc store format, its writer and its reader."""

from dsc.store.overlap import Overlap, shared_images
from dsc.store.reader import Store, check_same_source, open_store
from dsc.store.schema import FORMAT, SCHEMA_VERSION, SPLITS
from dsc.store.writer import Precompressed, StoreWriter, row_digest

__all__ = ["FORMAT", "SCHEMA_VERSION", "SPLITS", "Overlap", "Precompressed", "Store", "StoreWriter", "check_same_source",
           "open_store", "row_digest", "shared_images"]
