"""Synthetic-data quality (docs/quality.md): can the generator make convincing data for this dataset?

Per class of a synthetic store, against the real train images of that class, in one feature space:
count, Fréchet distance and KID, diversity, nearest-real-neighbour distance (near-copies flagged), and the
share a classifier trained on real data only accepts (normal images: confident in the source class) or
still recognises (OOD images: confident in the source class, i.e. not really out-of-distribution).

``confidence_filter(run_dir, images, source_labels)`` is the scoring function `dsc augment --filter`
uses: the probability a run's real-data classifier gives each image's source class.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from dsc.errors import InputError, MismatchError
from dsc.report.table import Cell, Section, pct

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- distances
def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float | None:
    """||mu_x - mu_y||^2 + tr(Sx + Sy - 2 (Sx^1/2 Sy Sx^1/2)^1/2); None for fewer than 2 rows each.

    With A, B the centred rows scaled by 1/sqrt(n-1) (Sx = A'A, Sy = B'B), the trace of the root equals the
    nuclear norm of A B' (the non-zero eigenvalues of Sx Sy are those of (A B')(A B')'), which is exact and
    much cheaper than a d x d matrix root when there are fewer images than feature dimensions.
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return None
    a = (x - x.mean(0)) / np.sqrt(m - 1)
    b = (y - y.mean(0)) / np.sqrt(n - 1)
    d = x.shape[1]
    if m * n <= d * d:
        cross = float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
    else:
        root = _sqrtm_psd(a.T @ a)
        inner = root @ (b.T @ b) @ root
        cross = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())
    fd = float(((x.mean(0) - y.mean(0)) ** 2).sum() + (a ** 2).sum() + (b ** 2).sum() - 2 * cross)
    return max(fd, 0.0)


def kid(x: np.ndarray, y: np.ndarray) -> float | None:
    """Unbiased MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3 (Bińkowski et al.)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return None
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(x), len(y)]."""
    sq = (x ** 2).sum(1)[:, None] + (y ** 2).sum(1)[None, :] - 2 * x @ y.T
    return np.sqrt(np.clip(sq, 0, None))


def mean_pairwise_distance(x: np.ndarray) -> float | None:
    """Diversity: mean distance over distinct pairs (None for fewer than two rows)."""
    if len(x) < 2:
        return None
    d = pairwise(x, x)
    return float(d.sum() / (len(x) * (len(x) - 1)))


def nearest_distances(x: np.ndarray, ref: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Distance of each row of ``x`` to its nearest row of ``ref`` (chunked)."""
    out = np.empty(len(x))
    for s in range(0, len(x), 1024):
        d = pairwise(x[s:s + 1024], ref)
        if exclude_self:
            idx = np.arange(s, min(s + 1024, len(x)))
            d[np.arange(len(idx)), idx] = np.inf
        out[s:s + 1024] = d.min(1) if d.shape[1] else np.inf
    return out


# ------------------------------------------------------------------------------------------ classifiers
def fit_linear_probe(features: np.ndarray, labels: np.ndarray, num_classes: int, *, weight_decay: float = 1e-3,
                     steps: int = 50, seed: int = 0):
    """Multinomial logistic regression (full-batch L-BFGS, deterministic) on standardised features.

    Returns ``predict_proba(features) -> [N, C]``.
    """
    import torch

    mu = features.mean(0)
    sd = features.std(0) + 1e-6
    x = torch.from_numpy((features - mu) / sd).float()
    y = torch.from_numpy(labels.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(x.shape[1], num_classes, generator=gen) * 0.01).requires_grad_()
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y) + weight_decay * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_, b_ = w.detach(), b.detach()

    def predict_proba(f: np.ndarray) -> np.ndarray:
        z = torch.from_numpy((f - mu) / sd).float() @ w_ + b_
        return torch.softmax(z, dim=1).numpy().astype(np.float64)

    return predict_proba


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

    from dsc.report.features import encoder_space

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
            raise InputError(f"filter run {self.run_dir} does not exist",
                             hint="pass a `dsc baseline` run directory (or a probed `dsc pretrain` run)")
        if not (self.run_dir / "run.json").is_file():
            raise InputError(f"{self.run_dir} is not a run directory (no run.json)",
                             hint="pass a `dsc baseline` run directory (or a probed `dsc pretrain` run)")
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


# ------------------------------------------------------------------------------------------------ assess
def _subsample(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(idx, size=k, replace=False)) if len(idx) > k else idx


def _class_stats(real: np.ndarray, syn: np.ndarray, real_nn_median: float, near_ratio: float) -> dict[str, Any]:
    out: dict[str, Any] = {"n": int(len(syn))}
    if not len(syn):
        return out
    out["fd"] = frechet_distance(real, syn)
    out["kid"] = kid(real, syn)
    out["diversity"] = mean_pairwise_distance(syn)
    out["real_diversity"] = mean_pairwise_distance(real)
    if out["diversity"] is not None and out["real_diversity"]:
        out["diversity_ratio"] = out["diversity"] / out["real_diversity"]
    if len(real):
        nn = nearest_distances(syn, real)
        out["nn_real_median"] = float(np.median(nn))
        if real_nn_median > 0:
            out["nn_ratio"] = out["nn_real_median"] / real_nn_median
            out["near_copies"] = int((nn < near_ratio * real_nn_median).sum())
    return out


def assess(data_path: Path, synthetic_paths: list[Path], *, settings: Any, encoder: Path | None = None,
           classifier: Path | None = None) -> dict[str, Any]:
    """Quality of each synthetic store against DATA.h5's real train images (``settings``: ReportSettings)."""
    from dsc.evaluate.suite import in_distribution_indices
    from dsc.report.features import encoder_space, fixed_space
    from dsc.store import check_same_source, open_store

    rng = np.random.default_rng(settings.seed)
    data = open_store(data_path, kind="data")
    classes = data.classes
    space = encoder_space(Path(encoder))[0] if encoder is not None else fixed_space(settings.features, settings.seed)
    train_idx = in_distribution_indices(data, "train")
    val_idx = in_distribution_indices(data, "val")
    cap = settings.max_per_class
    labels_all = data.labels
    real_idx = np.concatenate([_subsample(train_idx[labels_all[train_idx] == c], cap, rng)
                               for c in range(len(classes))] or [np.empty(0, np.int64)]).astype(np.int64)
    real_feats = space.extract(data, real_idx, "real features")
    real_labels = labels_all[real_idx]
    # centre on the real mean and divide by one scale (the real features' RMS spread), so that every
    # feature space gives comparable numbers; per-dimension scaling would blow up near-constant (dead) units
    mu = real_feats.mean(0)
    scale = float(np.sqrt(((real_feats - mu) ** 2).sum(1).mean() / max(real_feats.shape[1], 1))) or 1.0
    z = lambda f: (f - mu) / scale  # noqa: E731
    real_z = z(real_feats)

    classify_desc: str
    if classifier is not None:
        predict_images = run_classifier(classifier)
        classify_desc = f"classifier of run {Path(classifier).name}"
        classify = None
        probe_val = None
    else:
        predict_images = None
        classify = fit_linear_probe(real_feats, real_labels, len(classes), seed=settings.seed)
        classify_desc = f"linear probe on real train features ({space.name})"
        probe_val = None
        if len(val_idx):
            vf = space.extract(data, val_idx, "real val features")
            probe_val = float((classify(vf).argmax(1) == labels_all[val_idx]).mean())

    # real-to-real nearest neighbour distances per class (the scale for near-copies)
    real_nn: dict[int, float] = {}
    for c in range(len(classes)):
        rc = real_z[real_labels == c]
        real_nn[c] = float(np.median(nearest_distances(rc, rc, exclude_self=True))) if len(rc) > 1 else math.nan

    stores = []
    for path in synthetic_paths:
        syn = open_store(path, kind="synthetic")
        check_same_source(data, syn, training=False)
        n = len(syn)
        is_ood = syn.column("is_ood").astype(bool) if syn.has("is_ood") else np.zeros(n, dtype=bool)
        src = (syn.column("source_label") if syn.has("source_label") else syn.labels).astype(np.int64)
        entry: dict[str, Any] = {"path": str(path), "fingerprint": syn.fingerprint, "n": int(n),
                                 "n_ood": int(is_ood.sum()), "classes": {}}
        all_normal: list[np.ndarray] = []
        accept_n = accept_total = conf_ood = ood_total = 0
        for c, name in enumerate(classes):
            rows_n = _subsample(np.flatnonzero((src == c) & ~is_ood), cap, rng)
            rows_o = _subsample(np.flatnonzero((src == c) & is_ood), cap, rng)
            rows = np.concatenate([rows_n, rows_o]).astype(np.int64)
            if not len(rows):
                continue
            feats = space.extract(syn, rows, f"{Path(path).name} {name}")
            probs = predict_images(syn.images(rows)) if predict_images is not None else classify(feats)
            conf = probs[:, c]
            fz = z(feats)
            k = len(rows_n)
            real_c = real_z[real_labels == c]
            stats_c: dict[str, Any] = {"n_total": int(((src == c) & ~is_ood).sum()),
                                       "n_ood_total": int(((src == c) & is_ood).sum())}
            if k:
                stats_c["normal"] = _class_stats(real_c, fz[:k], real_nn[c], settings.near_copy_ratio)
                stats_c["normal"]["acceptance"] = float((conf[:k] >= settings.min_confidence).mean())
                stats_c["normal"]["mean_confidence"] = float(conf[:k].mean())
                accept_n += int((conf[:k] >= settings.min_confidence).sum())
                accept_total += k
                all_normal.append(fz[:k])
            if len(rows_o):
                stats_c["ood"] = _class_stats(real_c, fz[k:], real_nn[c], settings.near_copy_ratio)
                stats_c["ood"]["still_source"] = float((conf[k:] >= settings.min_confidence).mean())
                conf_ood += int((conf[k:] >= settings.min_confidence).sum())
                ood_total += len(rows_o)
            entry["classes"][name] = stats_c
        if all_normal:
            normal = np.concatenate(all_normal)
            entry["overall"] = {"fd": frechet_distance(real_z, normal), "kid": kid(real_z, normal),
                                "acceptance": accept_n / accept_total if accept_total else None}
        if ood_total:
            entry.setdefault("overall", {})["ood_still_source"] = conf_ood / ood_total
            entry["overall"]["ood_flagged"] = conf_ood
        stores.append(entry)
    return {"data": str(data_path), "data_fingerprint": data.fingerprint, "feature_space": space.name,
            "classifier": classify_desc, "classifier_val_top1": probe_val,
            "min_confidence": settings.min_confidence, "near_copy_ratio": settings.near_copy_ratio,
            "max_per_class": cap, "real_per_class": {classes[c]: int((real_labels == c).sum())
                                                     for c in range(len(classes))},
            "stores": stores}


# ------------------------------------------------------------------------------------------------ render
def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def quality_sections(q: dict[str, Any]) -> list[Section]:
    """One table per store. Distances describe the normal images, or the OOD images of an OOD-only store."""
    sections = []
    for store in q["stores"]:
        role = "normal" if store["n"] > store["n_ood"] else "ood"
        tag = "" if role == "normal" else " (OOD)"
        s = Section(f"Synthetic-data quality: {store['path']} ({store['n']} images, {store['n_ood']} OOD)",
                    ["class", "real", "normal", f"FD{tag}", f"KID{tag}", "diversity ×real", "NN dist ×real",
                     "near-copies", f"accepted % (p≥{q['min_confidence']:g})", "OOD",
                     "OOD still source-class %"], right=set(range(1, 11)))
        for name, c in store["classes"].items():
            n, o = c.get("normal", {}), c.get("ood", {})
            d = n if role == "normal" else o
            near = n.get("near_copies", 0) + o.get("near_copies", 0)
            still = o.get("still_source")
            s.rows.append([
                Cell(name), Cell(str(q["real_per_class"].get(name, 0))), Cell(str(c["n_total"])),
                Cell(_num(d.get("fd"), "{:.1f}")), Cell(_num(d.get("kid"), "{:.3f}")),
                Cell(_num(d.get("diversity_ratio"))), Cell(_num(d.get("nn_ratio"))),
                Cell(str(near), "bad" if near else None),
                Cell(pct(n.get("acceptance")), "bad" if n.get("acceptance") is not None and n["acceptance"] < 0.5
                     else None),
                Cell(str(c["n_ood_total"])),
                Cell(pct(still), "bad" if still is not None and still > 0.5 else None)])
        ov = store.get("overall", {})
        s.notes.append(f"features: {q['feature_space']} (centred and scaled with real statistics); classifier: "
                       f"{q['classifier']}" + (f", val top-1 {pct(q['classifier_val_top1'])} %"
                                               if q.get("classifier_val_top1") is not None else ""))
        summary = []
        if "fd" in ov:
            summary.append(f"normal vs real: FD {_num(ov.get('fd'), '{:.1f}')}, KID {_num(ov.get('kid'), '{:.3f}')}, "
                           f"accepted {pct(ov.get('acceptance'))} %")
        if "ood_still_source" in ov:
            summary.append(f"OOD images the real-data classifier still puts in their source class: "
                           f"{ov.get('ood_flagged', 0)} ({pct(ov.get('ood_still_source'))} %) — flagged as not "
                           "really OOD")
        if summary:
            s.notes.append("overall: " + "; ".join(summary))
        s.notes.append(f"near-copy: nearest real image closer than {q['near_copy_ratio']:g} x the class's median "
                       "real-to-real nearest-neighbour distance; ×real columns are ratios to the real images' own "
                       "values (1 = like real data).")
        sections.append(s)
    return sections
