"""Training: ``dsc pretrain`` (SupCon) and ``dsc baseline`` (cross-entropy), checkpoints, run directories."""

from dsc.train.checkpoint import load_checkpoint, load_encoder, save_checkpoint
from dsc.train.run_dir import RunDir, read_run_info

__all__ = ["RunDir", "load_checkpoint", "load_encoder", "read_run_info", "save_checkpoint"]
