"""Statistics for judging whether a slice's error rate is really higher.

Pure numpy/scipy and vectorised: every function takes arrays (or scalars) of
counts so that thousands of feature values can be tested in one call.
"""

import numpy as np
from scipy import stats

ArrayLike = np.ndarray | float | int


def error_rate(errors: ArrayLike, size: ArrayLike) -> np.ndarray:
    """errors / size, NaN where size is 0 (an empty slice has no rate)."""
    errors = np.asarray(errors, dtype=np.float64)
    size = np.asarray(size, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(size > 0, errors / np.where(size > 0, size, 1.0), np.nan)


def wilson_interval(
    successes: ArrayLike, trials: ArrayLike, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion.

    Unlike the normal approximation it stays inside [0, 1] and is honest for
    small slices and rates near 0, which is where error rates live.

    Returns:
      (lower, upper) arrays; NaN where trials is 0.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = stats.norm.ppf(0.5 + confidence / 2.0)
    safe_n = np.where(n > 0, n, 1.0)
    p = k / safe_n
    denominator = 1.0 + z * z / safe_n
    centre = (p + z * z / (2.0 * safe_n)) / denominator
    half_width = (z / denominator) * np.sqrt(
        p * (1.0 - p) / safe_n + z * z / (4.0 * safe_n * safe_n)
    )
    lower = np.where(n > 0, np.clip(centre - half_width, 0.0, 1.0), np.nan)
    upper = np.where(n > 0, np.clip(centre + half_width, 0.0, 1.0), np.nan)
    return lower, upper


def greater_rate_p_value(
    errors_in: ArrayLike, size_in: ArrayLike, errors_out: ArrayLike, size_out: ArrayLike
) -> np.ndarray:
    """One-sided pooled two-proportion z-test: is the rate inside > outside?

    Used for "slice vs the rest of the data". Returns 1.0 where the test is
    undefined (an empty group, or no variance because the pooled rate is 0
    or 1): no evidence of a higher rate.
    """
    e1 = np.asarray(errors_in, dtype=np.float64)
    n1 = np.asarray(size_in, dtype=np.float64)
    e2 = np.asarray(errors_out, dtype=np.float64)
    n2 = np.asarray(size_out, dtype=np.float64)
    defined = (n1 > 0) & (n2 > 0)
    n1_safe = np.where(defined, n1, 1.0)
    n2_safe = np.where(defined, n2, 1.0)
    pooled = (e1 + e2) / (n1_safe + n2_safe)
    variance = pooled * (1.0 - pooled) * (1.0 / n1_safe + 1.0 / n2_safe)
    defined &= variance > 0
    z = (e1 / n1_safe - e2 / n2_safe) / np.sqrt(np.where(defined, variance, 1.0))
    return np.where(defined, stats.norm.sf(z), 1.0)


def exact_greater_rate_p_value(
    errors_in: ArrayLike, size_in: ArrayLike, errors_out: ArrayLike, size_out: ArrayLike
) -> np.ndarray:
    """One-sided Fisher exact test: given all errors of both groups, the chance that at least
    errors_in of them fall inside (hypergeometric). For the decisions that make a finding: the
    normal tail is too light for a few errors in a small slice, and taking the outside rate as
    the null rate (a binomial test) fails when the outside has few or no errors (a model
    nearly perfect elsewhere): one stray error would then be a finding. 1.0 where undefined."""
    e1 = np.asarray(errors_in, dtype=np.int64)
    n1 = np.asarray(size_in, dtype=np.int64)
    e2 = np.asarray(errors_out, dtype=np.int64)
    n2 = np.asarray(size_out, dtype=np.int64)
    defined = (n1 > 0) & (n2 > 0)
    p_values = stats.hypergeom.sf(e1 - 1, n1 + n2, e1 + e2, n1)
    return np.where(defined, np.clip(p_values, 0.0, 1.0), 1.0)


def benjamini_hochberg(p_values: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), same order as input.

    Testing many slices at once makes some look significant by chance;
    rejecting where q < level controls the false discovery rate at level.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind='stable')
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def lift(rate: ArrayLike, baseline_rate: ArrayLike) -> np.ndarray:
    """How many times the baseline the rate is; NaN if the baseline is 0."""
    rate = np.asarray(rate, dtype=np.float64)
    baseline_rate = np.asarray(baseline_rate, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(
            baseline_rate > 0, rate / np.where(baseline_rate > 0, baseline_rate, 1.0), np.nan
        )


def paired_worse_p_value(worse: ArrayLike, better: ArrayLike) -> np.ndarray:
    """One-sided exact McNemar test for two models on the same examples: is the new model
    wrong more often? Only the discordant pairs tell the models apart (`worse`: wrong now,
    right before; `better`: right now, wrong before); if neither model were worse, each such
    pair would go either way with chance 1/2, so the p-value is the binomial tail of at least
    `worse` of them going the bad way. Exact, so a handful of discordant pairs in a small slice
    is judged fairly. 1.0 without discordant pairs: no evidence."""
    w = np.asarray(worse, dtype=np.int64)
    b = np.asarray(better, dtype=np.int64)
    n = w + b
    p_values = stats.binom.sf(w - 1, np.maximum(n, 1), 0.5)
    return np.where(n > 0, np.clip(p_values, 0.0, 1.0), 1.0)


def bonferroni(p_values: ArrayLike) -> np.ndarray:
    """p-values multiplied by how many there are (capped at 1): rejecting where the result is
    below `level` keeps the chance of any false alarm among them below `level`, whatever
    their dependence (a gate that tests every finding must not block on one by chance)."""
    p = np.asarray(p_values, dtype=np.float64)
    return np.minimum(p * p.size, 1.0)
