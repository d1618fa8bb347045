"""The real-data classifier of a run, and the confidence filter of `dsc augment --filter` (docs/quality.md).

``confidence_filter(run_dir, images, source_labels)`` scores synthetic images: the probability a run's
real-data classifier gives each image's source class; ``ConfidenceFilter(run_dir)`` is the same with the
run loaded once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dsc.errors import InputError, MismatchError

log = logging.getLogger(__name__)

_RUN_HINT = "pass a `dsc baseline` run directory (or a probed `dsc pretrain` run)"


def _run_head(run_dir: Path, num_classes: int | None = None):
    """The classifier head of a run trained on real data: the probe's linear layer of a pretrain run
    (RUN/probe/classifier.safetensors) or the ``classifier.*`` tensors of a baseline run's checkpoint.
    Only the first ``num_classes`` outputs are kept (an extra-class OOD output is dropped).
    Returns (nn.Linear, source description)."""
    import torch
    from safetensors.torch import load_file
    from torch import nn

    from dsc.train.checkpoint import has_checkpoint, load_tensors

    found: list[tuple[dict, str]] = []
    probe_head = run_dir / "probe" / "classifier.safetensors"        # written by `dsc probe`
    if probe_head.is_file():
        found.append((load_file(str(probe_head)), "probe/classifier"))
    for which in ("best", "last"):                                     # `dsc baseline` checkpoints
        if has_checkpoint(run_dir, which):
            found.append((load_tensors(run_dir, which), f"checkpoint {which}"))
            break
    for tensors, desc in found:
        weight = next((v for k, v in tensors.items() if k.startswith("classifier.") and k.endswith("weight")
                       and v.ndim == 2), None)
        if weight is None:
            continue
        bias = next((v for k, v in tensors.items() if k.startswith("classifier.") and k.endswith("bias")
                     and v.ndim == 1 and len(v) == weight.shape[0]), None)
        k = min(num_classes or weight.shape[0], weight.shape[0])
        head = nn.Linear(weight.shape[1], k, bias=bias is not None)
        with torch.no_grad():
            head.weight.copy_(weight[:k])
            if bias is not None:
                head.bias.copy_(bias[:k])
        return head.eval(), desc
    raise InputError(f"{run_dir} has no classifier", hint="use a `dsc baseline` run, or a `dsc pretrain` run "
                     "after `dsc probe`")


def _check_real_only(run_dir: Path) -> None:
    from dsc.report.runs import load_run

    run = load_run(run_dir)
    label = ((run.metrics or {}).get("synthetic") or {}).get("label")
    if label not in (None, "none"):
        log.warning("%s was trained with synthetic data (%s); a filter should use a classifier trained on "
                    "real data only", run_dir, label)


def run_classifier(run_dir: Path | str):
    """``predict(images uint8 NHWC) -> probabilities [N, C]`` of a run's encoder + classifier head."""
    import torch

    from dsc.evaluate.spaces import encoder_space

    run_dir = Path(run_dir)
    space, info = encoder_space(run_dir)
    head, _ = _run_head(run_dir, len(info.get("classes") or []) or None)
    _check_real_only(run_dir)

    def predict(images: np.ndarray) -> np.ndarray:
        feats = torch.from_numpy(space.extract_array(images)).float()     # CPU, like the head
        if feats.shape[1] != head.in_features:
            raise MismatchError(f"{run_dir}: classifier expects {head.in_features} features, encoder gives "
                                f"{feats.shape[1]}", hint="the run directory is inconsistent")
        with torch.no_grad():
            return torch.softmax(head(feats), dim=1).numpy().astype(np.float64)

    return predict


def confidence_filter(run_dir: Path | str, images: np.ndarray, source_labels: np.ndarray) -> np.ndarray:
    """Score synthetic images: the probability that ``run_dir``'s classifier (trained on real data) gives
    each image's source class. Keep an image when its score >= ``--min-confidence``.

    ``images``: uint8 [N, H, W, 3]; ``source_labels``: int [N] (class indices of the run's DATA.h5).
    """
    return _source_scores(lambda x: run_classifier(run_dir)(x), images, source_labels)  # loads only if needed


def _source_scores(predict: Any, images: np.ndarray, source_labels: np.ndarray) -> np.ndarray:
    """Validate the inputs, then the probability ``predict`` gives each image's source class."""
    images = np.asarray(images)
    labels = np.asarray(source_labels, dtype=np.int64)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
    if len(images) != len(labels):
        raise InputError(f"{len(images)} images but {len(labels)} source labels")
    if len(images) == 0:
        return np.empty(0)
    probs = predict(images)
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise MismatchError(f"source labels outside the classifier's {probs.shape[1]} classes",
                            hint="filter with a run trained on the same DATA.h5")
    return probs[np.arange(len(labels)), labels]


class ConfidenceFilter:
    """``confidence_filter`` with the run loaded once: ``ConfidenceFilter(run)(images, source_labels)``.

    ``classes``: the run's class names (run.json); ``fingerprint``: sha256 of the classifier head and the
    run's recorded settings, so a store can name exactly which classifier filtered it.
    """

    def __init__(self, run_dir: Path | str) -> None:
        import hashlib
        import json

        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise InputError(f"filter run {self.run_dir} does not exist", hint=_RUN_HINT)
        if not (self.run_dir / "run.json").is_file():
            raise InputError(f"{self.run_dir} is not a run directory (no run.json)", hint=_RUN_HINT)
        info = json.loads((self.run_dir / "run.json").read_text())
        self.classes: list[str] = list(info.get("classes") or [])
        if not self.classes:
            raise InputError(f"{self.run_dir}/run.json records no classes", hint="use a complete run")
        head, self.source = _run_head(self.run_dir, len(self.classes))  # raises when there is no classifier
        self.predict = run_classifier(self.run_dir)
        digest = hashlib.sha256()
        for t in head.state_dict().values():
            digest.update(t.detach().cpu().numpy().astype(np.float32).tobytes())
        digest.update(json.dumps(info.get("settings"), sort_keys=True, default=str).encode())
        self.fingerprint = digest.hexdigest()[:16]

    def __call__(self, images: np.ndarray, source_labels: np.ndarray) -> np.ndarray:
        """Probability of each image's source class (float64 [N])."""
        return _source_scores(self.predict, images, source_labels)
