"""Evaluation: classification metrics, corruption robustness, OOD detection, feature extraction, and the
numbers of the synthetic-data quality assessment.

Used by `dsc probe` and `dsc baseline` (metrics on the test split; the linear probe of ``linear``);
`dsc report` and `dsc study` use its feature extraction, split selection and ``quality`` (Fréchet distance,
KID, near-copies, the real-data classifier); `dsc augment --filter` uses ``filter.ConfidenceFilter``.
See docs/evaluation.md and docs/quality.md.
"""

from dsc.evaluate.metrics import (
                                  classification_metrics,
                                  confusion_matrix,
                                  expected_calibration_error,
                                  macro_f1,
                                  per_class_accuracy,
                                  top_k_accuracy,
)
from dsc.evaluate.ood import auroc, energy_score, fpr_at_tpr, knn_score, msp_score, ood_detection
from dsc.evaluate.suite import (
                                  EvalOptions,
                                  evaluate_classifier,
                                  holdout_indices,
                                  in_distribution_indices,
                                  ood_indices,
)

__all__ = ["EvalOptions", "auroc", "classification_metrics", "confusion_matrix", "energy_score",
           "evaluate_classifier", "expected_calibration_error", "fpr_at_tpr", "holdout_indices",
           "in_distribution_indices", "knn_score", "macro_f1", "msp_score", "ood_detection", "ood_indices",
           "per_class_accuracy", "top_k_accuracy"]
