"""The one linear probe (dsc.evaluate.linear): its two solvers, and one result type for both."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsc.evaluate.linear import LinearProbe, fit_linear


def _blobs(seed: int = 0, n: int = 90) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 5)) + 4.0 * np.eye(3, 5)[y]
    return x, y


def test_lbfgs_is_deterministic_and_its_head_matches_predict_proba():
    x, y = _blobs()
    a = fit_linear(x, y, 3, solver="lbfgs", weight_decay=1e-3, seed=0)
    b = fit_linear(x, y, 3, solver="lbfgs", weight_decay=1e-3, seed=0)
    assert isinstance(a, LinearProbe) and a.head.weight.shape == (3, 5)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    probs = a.predict_proba(x)
    assert probs.dtype == np.float64 and np.allclose(probs.sum(1), 1.0)
    assert (probs.argmax(1) == y).mean() == 1.0
    z = torch.from_numpy((x - a.mean) / a.scale).float()
    with torch.no_grad():   # the head is an ordinary nn.Linear over standardised features
        np.testing.assert_allclose(torch.softmax(a.head(z), 1).numpy(), probs, rtol=1e-5, atol=1e-6)


def test_sgd_without_standardisation_predicts_with_its_head():
    x, y = _blobs(1)
    fit = fit_linear(torch.from_numpy(x).float(), torch.from_numpy(y), 3, solver="sgd", epochs=5, lr=0.1,
                     device="cpu")
    assert fit.mean is None and fit.epoch == 5 and len(fit.history) == 5   # no val rows: the last epoch
    with torch.no_grad():
        ref = torch.softmax(fit.head(torch.from_numpy(x).float()), 1).numpy()
    np.testing.assert_allclose(fit.predict_proba(x), ref, rtol=1e-5, atol=1e-6)


def test_unknown_solver_is_refused():
    x, y = _blobs()
    with pytest.raises(ValueError, match="solver"):
        fit_linear(x, y, 3, solver="adam")  # type: ignore[arg-type]
