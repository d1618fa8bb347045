"""Statistics over seeds: mean, sample std, paired and Welch t-tests with their t-intervals, Holm's
correction and the marks the report prints.

Intervals are Student t intervals (exact coverage for normal differences at any n >= 2; a bootstrap
percentile interval covers the truth about half the time with two seeds). Comparisons with fewer than
``MIN_SEEDS`` seeds are exploratory: no significance marks. The Student t distribution is computed here
from the regularised incomplete beta function (continued fraction, modified Lentz method), so the report
needs no scipy at run time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean (nan for no values)."""
    return float(sum(values) / len(values)) if len(values) else math.nan


def std(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); nan for fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def _beta_cf(a: float, b: float, x: float, max_iter: int = 300, eps: float = 1e-15) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        # even step
        num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        # odd step
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """Two-sided p-value P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isnan(t) or df <= 0:
        return math.nan
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution."""
    p = t_sf_two_sided(t, df) / 2.0
    return 1.0 - p if t > 0 else p


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (bisection on the CDF; accurate to ~1e-10)."""
    lo, hi = -1e4, 1e4
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


#: Fewer seeds than this: a comparison is exploratory (shown with its interval and n, never marked).
MIN_SEEDS = 5


@dataclass
class TestResult:
    """A comparison of a configuration against the baseline on one metric."""

    test: str                 # "paired-t" | "welch-t" | "none"
    delta: float              # mean difference (configuration - baseline)
    n: int                    # pairs (paired) or min group size
    t: float = math.nan
    df: float = math.nan
    p: float = math.nan
    ci: tuple[float, float] | None = None   # t-interval of the mean difference at ``level``
    level: float = 0.95

    @property
    def exploratory(self) -> bool:
        """Too few seeds (< MIN_SEEDS) for a significance claim."""
        return self.n < MIN_SEEDS

    def as_dict(self) -> dict:
        d = asdict(self)
        d["exploratory"] = self.exploratory
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def _no_spread(sd: float, values: Sequence[float]) -> bool:
    """True when ``sd`` is zero up to float rounding (equal differences computed from different numbers,
    e.g. 4.1666...70 and 4.1666...61, must not give a zero-width interval or an infinite t)."""
    scale = max([1.0, *(abs(v) for v in values)])
    return sd <= 1e-9 * scale


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Paired t-test of ``a - b`` against 0: (t, df, two-sided p). nan when undefined."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    if n < 2:
        return math.nan, math.nan, math.nan
    sd = std(diffs)
    if _no_spread(sd, diffs):
        return math.nan, float(n - 1), math.nan
    t = mean(diffs) / (sd / math.sqrt(n))
    return t, float(n - 1), t_sf_two_sided(t, n - 1)


def welch_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test: (t, df, two-sided p). nan when undefined."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return math.nan, math.nan, math.nan
    va, vb = std(a) ** 2 / na, std(b) ** 2 / nb
    if _no_spread(math.sqrt(va + vb), [*a, *b]):
        return math.nan, math.nan, math.nan
    t = (mean(a) - mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    return t, df, t_sf_two_sided(t, df)


def t_interval(samples: np.ndarray | Sequence[float], level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Student t interval of the mean along the last axis: mean ± t_{(1+level)/2, n-1} · sd / √n.

    Vectorised: ``samples`` of shape (..., n) gives bounds of shape (...). Needs n >= 2.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[-1]
    if n < 2:
        raise ValueError("a t-interval needs at least two values")
    half = t_ppf(1 - (1 - level) / 2, n - 1) * x.std(axis=-1, ddof=1) / math.sqrt(n)
    m = x.mean(axis=-1)
    return m - half, m + half


def paired_t_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """Interval of the mean paired difference (None for fewer than two pairs)."""
    if len(diffs) < 2:
        return None
    lo, hi = t_interval(diffs, level)
    return float(lo), float(hi)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """Welch interval of mean(a) - mean(b) (None when undefined: fewer than two values a side, no variance)."""
    t, df, _ = welch_ttest(a, b)
    d = mean(a) - mean(b)
    if math.isnan(df):   # fewer than two values on a side, or no variance at all
        return None
    half = t_ppf(1 - (1 - level) / 2, df) * math.sqrt(std(a) ** 2 / len(a) + std(b) ** 2 / len(b))
    return d - half, d + half


def compare(values: dict[int, float], baseline: dict[int, float], *, level: float = 0.95) -> TestResult:
    """Compare per-seed values with the baseline's: paired over shared seeds when there are two or more,
    else Welch's test over all seeds, else only the difference of means."""
    shared = sorted(set(values) & set(baseline))
    if len(shared) >= 2:
        a = [values[s] for s in shared]
        b = [baseline[s] for s in shared]
        t, df, p = paired_ttest(a, b)
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        ci = None if math.isnan(p) else paired_t_interval(diffs, level)   # identical diffs: no interval
        return TestResult("paired-t", mean(diffs), len(shared), t, df, p, ci, level)
    a, b = list(values.values()), list(baseline.values())
    if not a or not b:
        return TestResult("none", math.nan, 0, level=level)
    t, df, p = welch_ttest(a, b)
    test = "none" if math.isnan(p) else "welch-t"
    return TestResult(test, mean(a) - mean(b), min(len(a), len(b)), t, df, p,
                      welch_interval(a, b, level) if test != "none" else None, level)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None / nan entries are not tests: None back).

    The k-th smallest of m p-values becomes max_{j<=k} min(1, (m - j + 1) p_(j)); rejecting adjusted p < α
    controls the family-wise error rate at α.
    """
    tested = [(p, i) for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    out: list[float | None] = [None] * len(pvalues)
    m, running = len(tested), 0.0
    for rank, (p, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def mark(p: float | None, alpha: float = 0.05, n: int | None = None) -> str:
    """Significance mark: *** p<0.001, ** p<0.01, * p<alpha, n.s. otherwise; "" when untested or when
    ``n`` seeds are too few (< MIN_SEEDS) for a significance claim."""
    if p is None or math.isnan(p) or (n is not None and n < MIN_SEEDS):
        return ""
    if p < 0.001 and alpha >= 0.001:
        return "***"
    if p < 0.01 and alpha >= 0.01:
        return "**"
    if p < alpha:
        return "*"
    return "n.s."


def summary(values: Sequence[float]) -> dict:
    """{"mean", "std", "n", "values"} of per-seed values (std None for one seed)."""
    m, s = mean(values), std(values)
    return {"mean": None if math.isnan(m) else m, "std": None if math.isnan(s) else s, "n": len(values),
            "values": list(values)}
