"""Stable Diffusion for dsc: model loading (hub id, folder, single file, tiny), learned class tokens,
textual inversion. Importing this package imports nothing heavy; the modules import torch/diffusers."""
