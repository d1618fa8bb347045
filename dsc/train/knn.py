"""Cheap validation for contrastive pre-training: weighted k-nearest-neighbour top-1 on encoder features."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def encode(module: torch.nn.Module, images: torch.Tensor, prepare, device: torch.device, batch_size: int = 256,
           autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Features [N, D] (float32, CPU) of uint8 images [N, H, W, 3]; ``prepare`` makes model inputs."""
    was_training = module.training
    module.eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = prepare(images[start:start + batch_size].to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out.append(module(x).float().cpu())
    module.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


def knn_top1(train_feats: torch.Tensor, train_labels: torch.Tensor, query_feats: torch.Tensor,
             query_labels: torch.Tensor, k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> float:
    """Top-1 of similarity-weighted kNN voting (cosine similarity, weights exp(sim / T))."""
    if query_feats.shape[0] == 0 or train_feats.shape[0] == 0:
        return float("nan")
    n_classes = int(max(train_labels.max(), query_labels.max())) + 1
    bank = F.normalize(train_feats, dim=1)
    k = min(k, bank.shape[0])
    correct = 0
    for start in range(0, query_feats.shape[0], chunk):
        q = F.normalize(query_feats[start:start + chunk], dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], n_classes)
        votes.scatter_add_(1, train_labels[idx], torch.exp(sim / temperature))
        correct += int((votes.argmax(1) == query_labels[start:start + chunk]).sum())
    return correct / query_feats.shape[0]
