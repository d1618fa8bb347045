"""Built-in backbone plugins: ``timm`` (any timm model) and ``torchvision`` (torchvision.models).

Modules here import torch, timm and torchvision inside methods only (``dsc plugins`` imports them).
"""
