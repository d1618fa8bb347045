"""Training data over dsc stores: in-memory image sets, batched two-view transforms, batch plans."""

from dsc.data.samplers import BatchPlan, VariantIndex
from dsc.data.stores import ImageSet, TrainingInputs, load_real, load_synthetic, open_inputs
from dsc.data.views import ViewMaker

__all__ = ["BatchPlan", "ImageSet", "TrainingInputs", "VariantIndex", "ViewMaker", "load_real", "load_synthetic",
           "open_inputs"]
