"""Data drift: a live sample against a reference distribution recorded at training time.

Numeric features: the Population Stability Index over the reference's decile bins, and
the one-sample Kolmogorov-Smirnov test against the reference CDF (its quantiles,
interpolated). Categorical features: PSI and the chi-squared test over the
reference's categories. PSI reads: under 0.1 stable, 0.1 to 0.25 moderate, above
0.25 a real shift.
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


def ks(quantiles: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """(statistic, p-value) of `values` against the CDF through evenly spaced `quantiles`."""
    q = np.asarray(quantiles, dtype=float)
    levels = np.linspace(0, 1, len(q))

    def cdf(x: float) -> float:  # scipy calls it on the sorted sample at once
        return np.interp(x, q, levels, left=0.0, right=1.0)

    result = stats.ks_1samp(np.asarray(values, dtype=float), cdf)
    return float(result.statistic), float(result.pvalue)


def chi2(expected: Sequence[float], counts: Sequence[int]) -> tuple[float, float]:
    """(statistic, p-value) of the chi-squared test of `counts` against `expected` shares."""
    observed = np.asarray(counts, dtype=float)
    result = stats.chisquare(observed, _floored(expected) * observed.sum())
    return float(result.statistic), float(result.pvalue)


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
            found["ks"], found["p_value"] = ks(reference["quantiles"], data)
        return found
    found["sample_size"] = len(values)
    if values:
        expected = list(reference["proportions"])
        counts = categorical_bins(reference["categories"], values)
        unseen = len(values) - sum(counts)
        if unseen:  # categories training never saw (and no OTHER bin took them): a bin of their own
            expected.append(0.0)
            counts.append(unseen)
        found["psi"], found["proportions"] = psi(expected, counts), shares(counts)
        found["chi2"], found["p_value"] = chi2(expected, counts)
    return found
