"""Data drift: a live sample against a reference distribution recorded at training time.

Both kinds are binned as the reference was (numeric: its decile edges; categorical: its
categories). Each gets the Population Stability Index, how far the shares moved (under
0.1 stable, 0.1 to 0.25 moderate, above 0.25 a real shift), and the chi-squared test of
homogeneity of the reference's counts and the window's, whose p-value holds its error
rate whatever the shape: skewed, discrete or categorical. Numeric features also get the
Kolmogorov-Smirnov distance to the reference CDF (its quantiles, interpolated), as a
distance only: its test's p-value against an interpolated CDF is not one (on a lognormal
or a Poisson feature it reported p < 0.05 on every stationary window).
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from tideline.distributions import categorical_bins, numeric_bins, shares

# An empty bin would make PSI infinite: shares are floored at this.
EPSILON = 1e-4


def _floored(shares: Sequence[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    values = np.maximum(np.asarray(shares, dtype=np.float64), EPSILON)
    floored: np.ndarray[Any, np.dtype[np.float64]] = values / values.sum()
    return floored


def psi(expected: Sequence[float], counts: Sequence[int]) -> float:
    """PSI of observed `counts` per bin against the `expected` share of each bin."""
    total = sum(counts)
    if total == 0:
        return math.nan
    e = _floored(expected)
    a = _floored([c / total for c in counts])
    return float(np.sum((a - e) * np.log(a / e)))


def ks(quantiles: Sequence[float], values: Sequence[float]) -> float:
    """The KS distance of `values` to the CDF through evenly spaced `quantiles`."""
    q = np.asarray(quantiles, dtype=float)
    levels = np.linspace(0, 1, len(q))

    def cdf(x: float) -> float:  # scipy calls it on the sorted sample at once
        return np.interp(x, q, levels, left=0.0, right=1.0)

    return float(stats.ks_1samp(np.asarray(values, dtype=float), cdf).statistic)


# Chi-squared's approximation wants about this many values expected in every cell: sparser
# bins are pooled, rarest first, before the test.
MIN_EXPECTED = 5.0


def _pooled(table: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The columns of a 2 x k table merged, rarest first, until each expects MIN_EXPECTED
    values in both rows; a sparse remainder joins the last full column."""
    need = MIN_EXPECTED * table.sum() / table.sum(axis=1).min()
    columns: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    pool = np.zeros(2)
    for column in table.T[np.argsort(table.sum(axis=0), kind="stable")]:
        pool = pool + column
        if pool.sum() >= need:
            columns.append(pool)
            pool = np.zeros(2)
    if columns:
        columns[-1] = columns[-1] + pool
    return np.array(columns).T if columns else np.zeros((2, 0))


def homogeneity(reference: Sequence[int], live: Sequence[int]) -> tuple[float, float]:
    """(statistic, p-value) of the chi-squared test that the reference's counts per bin
    and the live window's come from one distribution. Both are samples, so the test
    allows for the reference's own noise, which one against its shares taken as exact
    would not; with fewer than two bins left after pooling there is nothing to tell
    apart: (0, 1)."""
    table = np.array([reference, live], dtype=np.float64)
    if table.sum(axis=1).min() <= 0:
        return 0.0, 1.0
    table = _pooled(table)
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _reference_counts(reference: dict[str, Any]) -> list[int]:
    return [round(share * reference["sample_size"]) for share in reference["proportions"]]


def compare(reference: dict[str, Any], values: Sequence[Any]) -> dict[str, Any]:
    """A tideline.FeatureDrift record: `values` (a live window) against `reference`
    (a tideline.FeatureReference). Scores are None where the sample cannot give one."""
    found: dict[str, Any] = {
        "feature": reference["name"],
        "kind": reference["kind"],
        "sample_size": 0,
        "psi": None,
        "ks": None,
        "chi2": None,
        "p_value": None,
        "proportions": [],
    }
    if reference["kind"] == "numeric":
        data = [float(v) for v in values if v is not None and v == v]
        found["sample_size"] = len(data)
        if data and reference["quantiles"]:
            counts = numeric_bins(reference["edges"], data)
            found["psi"], found["proportions"] = (
                psi(reference["proportions"], counts),
                shares(counts),
            )
            found["ks"] = ks(reference["quantiles"], data)
            found["chi2"], found["p_value"] = homogeneity(_reference_counts(reference), counts)
        return found
    found["sample_size"] = len(values)
    if values:
        expected, before = list(reference["proportions"]), _reference_counts(reference)
        counts = categorical_bins(reference["categories"], values)
        unseen = len(values) - sum(counts)
        if unseen:  # categories training never saw (and no OTHER bin took them): a bin of their own
            expected.append(0.0)
            before.append(0)
            counts.append(unseen)
        found["psi"], found["proportions"] = psi(expected, counts), shares(counts)
        found["chi2"], found["p_value"] = homogeneity(before, counts)
    return found
