"""Reference distributions: how each feature (and the predictions) looked in training.

The trainer records one `tideline.FeatureReference` per feature with every model;
the monitor bins the live stream the same way (`numeric_bins`, `categorical_bins`)
and compares. Numeric: decile edges of the training sample, the share in each bin,
and evenly spaced quantiles (the reference CDF for Kolmogorov-Smirnov). Categorical:
the most frequent categories and the share of each, the rest pooled as OTHER.
"""

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

BINS = 10
QUANTILES = 21  # 0, 5%, ..., 100%
TOP_CATEGORIES = 20
OTHER, MISSING = "<other>", "<missing>"


def numeric_bins(edges: Sequence[float], values: Sequence[float]) -> list[int]:
    """How many of `values` fall in each of the len(edges) + 1 bins (NaN left out)."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    index = np.searchsorted(np.asarray(edges, dtype=float), data, side="right")
    return [int(c) for c in np.bincount(index, minlength=len(edges) + 1)]


def categorical_bins(categories: Sequence[str], values: Sequence[Any]) -> list[int]:
    """How many of `values` fall on each of `categories` (OTHER takes the rest)."""
    counts = Counter(MISSING if v is None else str(v) for v in values)
    found = [counts.pop(c, 0) for c in categories]
    if OTHER in categories:
        found[list(categories).index(OTHER)] += sum(counts.values())
    return found


def shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def numeric(name: str, values: Sequence[float]) -> dict[str, Any]:
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if len(data) == 0:
        edges: list[float] = []
        quantiles: list[float] = []
    else:
        inner = np.quantile(data, np.linspace(0, 1, BINS + 1)[1:-1])
        edges = [float(e) for e in np.unique(inner)]
        quantiles = [float(q) for q in np.quantile(data, np.linspace(0, 1, QUANTILES))]
    return {
        "name": name,
        "kind": "numeric",
        "sample_size": len(data),
        "edges": edges,
        "categories": [],
        "proportions": shares(numeric_bins(edges, data.tolist())),
        "quantiles": quantiles,
    }


def categorical(name: str, values: Sequence[Any]) -> dict[str, Any]:
    counts = Counter(MISSING if v is None else str(v) for v in values)
    categories = sorted(c for c, _ in counts.most_common(TOP_CATEGORIES))
    if len(counts) > TOP_CATEGORIES:
        categories.append(OTHER)
    return {
        "name": name,
        "kind": "categorical",
        "sample_size": len(values),
        "edges": [],
        "categories": categories,
        "proportions": shares(categorical_bins(categories, values)),
        "quantiles": [],
    }
