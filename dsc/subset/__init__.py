"""`dsc subset`: turn a dataset plugin's records into a DATA.h5 store.

Steps: open the dataset plugin -> choose classes (super-class / tag filters, ``--class-names`` or N at
random, minimum size, held-out classes) -> cap images per class -> assign splits (the dataset's own, else
stratified and group-respecting) -> decode, convert to RGB, crop and resize in worker processes -> write
the store (temporary file, renamed when complete). See docs/commands/subset.md and docs/store-format.md.

The modules, in that order: ``plan`` (classes, records, settings), ``splits`` (leak-free splits), ``images``
(the pixel rules for one image), ``decode`` (items through worker processes) and ``build`` (the store).
"""

from dsc.subset.build import SubsetResult, build_subset
from dsc.subset.decode import Item, Job, process
from dsc.subset.images import REASONS, crop_resize, full_box, load_rgb, object_box, to_rgb
from dsc.subset.plan import Plan, Row, open_dataset, plan_subset
from dsc.subset.splits import group_split, leaking_groups, normalise_split

__all__ = ["REASONS", "Item", "Job", "Plan", "Row", "SubsetResult", "build_subset", "crop_resize", "full_box",
           "group_split", "leaking_groups", "load_rgb", "normalise_split", "object_box", "open_dataset", "plan_subset",
           "process", "to_rgb"]
