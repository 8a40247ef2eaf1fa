"""Model families, chosen by configuration: a name and string parameters, never code.

Every family turns the same feature rows into a model made only of library types
(scikit-learn, river), so the artifact loads anywhere without Tideline's code, and
scores the same way for the trainer, the registry's gate and serving.

Families (classification / regression), each one entry of FAMILIES:
- `gradient_boosting`: scikit-learn HistGradientBoostingClassifier / Regressor
- `linear`: scikit-learn LogisticRegression / Ridge
- `river_linear`: river LogisticRegression / LinearRegression, the numbers imputed and scaled,
  learnt one row at a time, so it can keep learning between retrains
- `river_tree`: river's Hoeffding Adaptive Tree (classification only), categories as
  ordinal codes, learnt one row at a time as `river_linear` is

A river model fitted again goes on learning where it stopped (`Library.online`): what
the trainer's online line is made of (docs/models.md).

A family belongs to a `Library`, one entry of LIBRARIES, which says how its models are
fitted and scored; a family from a third library is one Library and one Family.
"""

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import treelite
import treelite.gtil
import treelite.sklearn
import yaml
from river import base as river_base
from river import compose as river_compose
from river import drift as river_drift
from river import linear_model as river_linear
from river import preprocessing as river_preprocessing
from river import stats as river_stats
from river import tree as river_tree
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from tideline.errors import TidelineError
from tideline.evaluation import Task
from tideline.features import NUMERIC
from tideline.project import Project

log = logging.getLogger(__name__)


class LearnerError(TidelineError):
    """An unknown family, parameters it does not take, or data it cannot learn from."""


@dataclass(frozen=True)
class Columns:
    """The project's features split by how a model reads them."""

    numeric: list[str]
    categorical: list[str]  # strings and booleans: encoded as the family says

    @classmethod
    def of(cls, project: Project) -> "Columns":
        types = {f.name: f.avro_type(project.event.fields) for f in project.features.all}
        return cls(
            [n for n, t in types.items() if t in NUMERIC],
            [n for n, t in types.items() if t not in NUMERIC],
        )

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def frame(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """The model input: numeric columns as floats (NaN when missing), the rest as text."""
        data = (
            pd.DataFrame(rows, columns=self.names) if not isinstance(rows, pd.DataFrame) else rows
        )
        out = pd.DataFrame(index=data.index)
        for name in self.numeric:
            out[name] = pd.to_numeric(data[name], errors="coerce").astype(float)
        for name in self.categorical:
            out[name] = [_text(v) for v in data[name]]
        return out


def _params(raw: Mapping[str, str]) -> dict[str, Any]:
    # values are strings in the records (Avro map<string>); YAML gives them their types
    return {name: yaml.safe_load(value) for name, value in raw.items()}


# One-hot columns a field gets at most: its most frequent values one each, the rest (and
# values never seen in training) one shared column, so 100,000 values stay 64 columns.
ONE_HOT_COLUMNS = 64


def one_hot() -> OneHotEncoder:
    """Categories for a model that takes sparse input: one-hot, rare values pooled."""
    return OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=ONE_HOT_COLUMNS)


def target_encoded(folds: type[KFold] | type[StratifiedKFold]) -> Callable[[], TargetEncoder]:
    """Categories for a model that needs dense input: one column a field, the (smoothed)
    mean label of its value, learnt by cross-fitting so a tree cannot memorise it. Any
    cardinality; a value never seen in training gets the overall mean."""

    def make() -> TargetEncoder:
        # unshuffled folds: retraining on the same rows gives the same model
        return TargetEncoder(cv=folds(5))

    return make


def pipeline(
    estimator: Callable[..., Any], categories: Callable[[], Any] = one_hot
) -> Callable[[Columns, dict[str, Any]], Any]:
    """A scikit-learn family's `make`: missing numbers imputed and scaled, categories
    encoded by `categories()`, then `estimator` with the run's parameters."""

    def make(columns: Columns, params: dict[str, Any]) -> Pipeline:
        prepare = ColumnTransformer(
            [
                (
                    "numeric",
                    make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                    columns.numeric,
                ),
                ("categorical", categories(), columns.categorical),
            ]
        )
        return Pipeline([("prepare", prepare), ("model", estimator(**params))])

    return make


def _river(estimator: Callable[..., Any]) -> Callable[[Columns, dict[str, Any]], Any]:
    def make(columns: Columns, params: dict[str, Any]) -> Any:
        # missing numbers take the running mean; only the numbers (floats) are scaled: a
        # one-hot key (the int 1) is 1 whenever present, which river's scaler would make 0
        imputed = river_preprocessing.StatImputer(  # type: ignore[no-untyped-call]
            *((n, river_stats.Mean()) for n in columns.numeric)
        )
        scaled = river_compose.SelectType(float) | river_preprocessing.StandardScaler()
        return imputed | (scaled + river_compose.SelectType(int)) | estimator(**params)

    return make


def _river_tree(columns: Columns, params: dict[str, Any]) -> Any:
    # HDDM_A for the tree's default ADWIN, which is native code skops cannot write (as
    # accurate on drifting Agrawal: docs/models.md); categories as ordinal codes, since
    # the tree's own nominal splitter holds a dict skops cannot read back
    parts = []
    if columns.numeric:
        parts.append(
            river_compose.Select(*columns.numeric)
            | river_preprocessing.StatImputer(  # type: ignore[no-untyped-call]
                *((n, river_stats.Mean()) for n in columns.numeric)
            )
        )
    if columns.categorical:
        parts.append(
            river_compose.Select(*columns.categorical) | river_preprocessing.OrdinalEncoder()
        )
    prepare = parts[0] if len(parts) == 1 else river_compose.TransformerUnion(*parts)
    # a binary detector, which river's annotation (DriftDetector) does not name
    detector: Any = river_drift.binary.HDDMA()  # type: ignore[no-untyped-call]
    return prepare | river_tree.HoeffdingAdaptiveTreeClassifier(drift_detector=detector, **params)


def _tree(model: Any) -> Any | None:
    """The Hoeffding Adaptive Tree at the end of a river pipeline, or None."""
    estimator = (
        list(model.steps.values())[-1] if isinstance(model, river_compose.Pipeline) else None
    )
    return estimator if isinstance(estimator, river_tree.HoeffdingAdaptiveTreeClassifier) else None


_GENERATORS = ("rng", "_rng")  # what river's nodes and distributions call theirs
_CACHES = ("_plan", "_last_step_cached")  # a river Pipeline's, rebuilt when None


def _objects(root: Any) -> Iterator[Any]:
    """Every object `root` holds, itself included, each once."""
    seen, pending = set(), [root]
    while pending:
        item = pending.pop()
        if id(item) in seen or isinstance(item, str | int | float | bool | type(None)):
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            pending += item.values()
        elif isinstance(item, list | tuple | set | frozenset):
            pending += item
        elif hasattr(item, "__dict__"):
            yield item
            pending += vars(item).values()


def _left_out(model: Any) -> Iterator[tuple[Any, str]]:
    """(object, attribute) of what `written` leaves out of a river model."""
    tree = _tree(model)
    for item in _objects(model) if isinstance(model, river_base.Estimator) else ():
        if isinstance(item, river_compose.Pipeline):
            yield from ((item, a) for a in _CACHES)
        elif tree is not None and item is not tree:
            yield from ((item, a) for a in _GENERATORS if a in vars(item))


@contextlib.contextmanager
def written(model: Any) -> Iterator[Any]:
    """`model` as its artifact holds it. skops writes an object again at each reference
    to it, so what river models hold more than once is left out while the model is
    written, and put back after:
    - a Pipeline's plan caches (its last step twice more), rebuilt on first use;
    - a tree's random generators: every leaf holds the tree's, every Gaussian of its
      splitters one of its own, drawn from only when sampled, which a tree never does.
      625 numbers each, they were 95% of a tree's file and seconds of an online step.
    `loaded` gives a tree read back its own generator in each of those places."""
    held = [(o, a, getattr(o, a)) for o, a in _left_out(model)]
    for owner, attribute, _ in held:
        setattr(owner, attribute, None)
    try:
        yield model
    finally:
        for owner, attribute, value in held:
            setattr(owner, attribute, value)


def loaded(model: Any) -> Any:
    """A model read back from its artifact, as `written` left it out: usable as it was."""
    tree = _tree(model)
    if tree is None:  # a pipeline rebuilds its caches itself
        return model
    for owner, attribute in list(_left_out(model)):
        if attribute in _GENERATORS and getattr(owner, attribute) is None:
            setattr(owner, attribute, tree._rng)
    return model


def _river_row(row: Mapping[Any, Any], numeric: Collection[str]) -> dict[str, Any]:
    # a number is a float, None when missing (the model's imputer fills it); a category
    # is its text (None when missing), for a model that encodes it, and a one-hot key of
    # the int 1 (none when missing), for one that takes it as it is
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in numeric:
            out[name] = None if value is None or value != value else float(value)
        else:
            out[name] = value if isinstance(value, str) else None
            if isinstance(value, str):
                out[f"{name}={value}"] = 1
    return out


def _numeric(x: pd.DataFrame) -> set[str]:
    return {str(name) for name, dtype in x.dtypes.items() if dtype.kind == "f"}  # Columns.frame's


def _target(task: Task, labels: Sequence[Any]) -> np.ndarray[Any, Any]:
    if task == "classification":
        return np.asarray(labels, dtype=bool)
    return np.asarray(labels, dtype=float)


def _number(value: Any) -> float:
    # as Columns.frame's pd.to_numeric(errors="coerce"): what is not a number is missing
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _text(value: Any) -> str | None:
    # as Columns.frame: a missing value stays missing, any other is its text
    return None if value is None or value != value else str(value)


def _river_scores(
    model: Any, task: Task, rows: Sequence[Mapping[Any, Any]], numeric: Collection[str]
) -> list[float]:
    found = [_river_row(r, numeric) for r in rows]
    if task == "classification":
        return [float(model.predict_proba_one(r).get(True, 0.0)) for r in found]
    return [float(model.predict_one(r)) for r in found]


def _trees(estimator: Any) -> treelite.Model | None:
    """The gradient-boosting `estimator` as a treelite model, which scores a row in
    0.03 ms where scikit-learn's per-tree Python calls take 0.6 ms; None for others."""
    if not isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        return None
    try:
        return treelite.sklearn.import_model(estimator)
    except Exception as exc:  # whatever the cause, scikit-learn still scores the model
        log.warning("scoring with scikit-learn, treelite cannot read the model: %s", exc)
        return None


class Rows(Protocol):
    """Scores feature rows (mappings by feature name) as `scores` scores their frame."""

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> list[float]: ...


def _columns(
    columns: "Columns", rows: Sequence[Mapping[str, Any]]
) -> tuple[list[list[float]], list[list[str | None]]]:
    # as Columns.frame does, without pandas
    numeric = [[_number(r.get(n)) for n in columns.numeric] for r in rows]
    text = [[_text(r.get(n)) for n in columns.categorical] for r in rows]
    return numeric, text


class RiverRows:
    def __init__(self, model: Any, task: Task, columns: Columns) -> None:
        self.model, self.task, self.columns = model, task, columns
        self.numeric = frozenset(columns.numeric)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        numeric, text = _columns(self.columns, rows)
        named = [
            dict(zip(self.columns.names, [*a, *b], strict=True))
            for a, b in zip(numeric, text, strict=True)
        ]
        return _river_scores(self.model, self.task, named, self.numeric)


class PipelineRows:
    """`scores` of `columns.frame(rows)`, without pandas: for serving.

    A DataFrame and the column transformer's pandas indexing cost about 4 ms a call,
    whether for one row or fifty: most of a request, and most of a small stream batch.
    The fitted transformers take plain arrays in a fraction of that, and a
    gradient-boosting model scores through treelite (the same trees, in native code).
    Only for the pipelines `make` builds (prepare, then model).
    """

    def __init__(self, model: Any, task: Task, columns: Columns) -> None:
        self.model, self.task, self.columns = model, task, columns
        # resolved once: named_steps and named_transformers_ make a new Bunch each access
        self.estimator: Any = model.named_steps["model"]
        parts = model.named_steps["prepare"].named_transformers_
        self.numeric_steps = [s for _, s in parts["numeric"].steps] if "numeric" in parts else []
        self.encoder: Any = parts.get("categorical")
        self.trees = _trees(self.estimator)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        if not rows:
            return []
        x = self._prepared(*_columns(self.columns, rows))
        if self.trees is not None:
            # one native thread, as everywhere in a service (tideline.service)
            return [float(s) for s in treelite.gtil.predict(self.trees, x, nthread=1).ravel()]
        if self.task == "classification":
            return [float(s) for s in self.estimator.predict_proba(x)[:, 1]]
        return [float(s) for s in self.estimator.predict(x)]

    def _prepared(self, numeric: list[list[float]], text: list[list[str | None]]) -> Any:
        shape = (len(numeric), -1)
        parts = []
        with warnings.catch_warnings():
            # fitted on a DataFrame, they warn that plain arrays carry no column names
            warnings.filterwarnings("ignore", "X does not have valid feature names")
            if self.columns.numeric:
                x = np.array(numeric, dtype=float).reshape(shape)
                # step by step: Pipeline.transform's metadata routing makes a class per call,
                # garbage in a reference cycle that later stalls a request in the collector
                for step in self.numeric_steps:
                    x = step.transform(x)
                parts.append(x)
            if self.columns.categorical:
                encoded = self.encoder.transform(np.array(text, dtype=object).reshape(shape))
                parts.append(encoded.toarray() if hasattr(encoded, "toarray") else encoded)
        return np.hstack(parts)


def _river_fit(model: Any, task: Task, x: pd.DataFrame, y: np.ndarray[Any, Any]) -> Any:
    numeric = _numeric(x)
    # classes as 0 and 1, not False and True: a tree keys its counts by class, and skops
    # reads a dict's key False back as bool("False"), which is True (scores look up
    # True, which finds 1)
    targets = y.astype(int).tolist() if task == "classification" else y.tolist()
    for row, target in zip(x.to_dict("records"), targets, strict=True):
        model.learn_one(_river_row(row, numeric), target)
    return model


def _river_frame_scores(model: Any, task: Task, x: pd.DataFrame) -> list[float]:
    return _river_scores(model, task, x.to_dict("records"), _numeric(x))


def _sklearn_fit(model: Any, task: Task, x: pd.DataFrame, y: np.ndarray[Any, Any]) -> Any:
    return model.fit(x, y)


def _sklearn_scores(model: Any, task: Task, x: pd.DataFrame) -> list[float]:
    if task == "classification":
        return [float(s) for s in model.predict_proba(x)[:, 1]]
    return [float(s) for s in model.predict(x)]


@dataclass(frozen=True)
class Library:
    """How the models of one library are recognised, fitted and scored."""

    name: str
    owns: Callable[[Any], bool]  # is this loaded model one of ours?
    fit: Callable[[Any, Task, pd.DataFrame, np.ndarray[Any, Any]], Any]
    scores: Callable[[Any, Task, pd.DataFrame], list[float]]  # a score a row of the frame
    rows: Callable[[Any, Task, Columns], Rows]  # the same scores of plain rows, for serving
    # Every type its models' artifacts name, exactly (`artifacts.types_in`): a model file
    # naming any other is refused before it is built, since skops calls what a file names.
    types: frozenset[str]
    online: bool  # does `fit` on a fitted model go on learning (True), or start over?


# What any artifact is built of: skops' containers and numpy's arrays.
_CONTAINERS = {
    "builtins.dict",
    "builtins.float",
    "builtins.frozenset",
    "builtins.int",
    "builtins.list",
    "builtins.slice",
    "builtins.str",
    "builtins.tuple",
    "numpy.dtype",
    "numpy.float64",
    "numpy.ndarray",
}


RIVER = Library(
    "river",
    lambda model: isinstance(model, river_base.Estimator),
    _river_fit,
    _river_frame_scores,
    RiverRows,
    frozenset(
        {
            *_CONTAINERS,
            "collections.Counter",
            "collections.OrderedDict",
            "collections.defaultdict",
            "river._river_rust.vectordict.VectorDict",
            "river.compose.pipeline.Pipeline",
            "river.compose.select.SelectType",
            "river.compose.union.TransformerUnion",
            "river.optim.initializers.Zeros",
            "river.optim.losses.Log",
            "river.optim.losses.Squared",
            "river.optim.schedulers.Constant",
            "river.optim.sgd.SGD",
            "river.preprocessing.impute.StatImputer",
            "river.preprocessing.scale.StandardScaler",
            "river.stats.mean.Mean",
        }
    ),
    online=True,
)
SKLEARN = Library(
    "scikit-learn",
    lambda model: isinstance(model, BaseEstimator),
    _sklearn_fit,
    _sklearn_scores,
    PipelineRows,
    frozenset(  # `pipeline`'s steps; each family adds its estimator's
        {
            *_CONTAINERS,
            "sklearn.compose._column_transformer.ColumnTransformer",
            "sklearn.impute._base.SimpleImputer",
            "sklearn.pipeline.Pipeline",
            "sklearn.preprocessing._data.StandardScaler",
            "sklearn.preprocessing._encoders.OneHotEncoder",
        }
    ),
    online=False,
)
LIBRARIES = (RIVER, SKLEARN)

Make = Callable[[Columns, dict[str, Any]], Any]


@dataclass(frozen=True)
class Family:
    library: Library
    make: Mapping[Task, Make]  # an untrained model for each task, from parsed parameters
    defaults: Mapping[str, str] = field(default_factory=dict)
    types: frozenset[str] = frozenset()  # what its models name beyond its library's types


FAMILIES: dict[str, Family] = {
    "gradient_boosting": Family(
        SKLEARN,
        {
            # dense categories: scikit-learn's gradient boosting takes no sparse input
            "classification": pipeline(
                HistGradientBoostingClassifier, target_encoded(StratifiedKFold)
            ),
            "regression": pipeline(HistGradientBoostingRegressor, target_encoded(KFold)),
        },
        # a fixed seed, so that retraining on the same rows gives the same model
        {"random_state": "0"},
        frozenset(
            {
                "numpy.random._generator.Generator",
                "numpy.uint64",
                "sklearn._loss._loss.CyHalfBinomialLoss",
                "sklearn._loss._loss.CyHalfSquaredError",
                "sklearn._loss.link.IdentityLink",
                "sklearn._loss.link.Interval",
                "sklearn._loss.link.LogitLink",
                "sklearn._loss.loss.HalfBinomialLoss",
                "sklearn._loss.loss.HalfSquaredError",
                "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
                "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
                "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
                "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                "sklearn.model_selection._split.KFold",
                "sklearn.model_selection._split.StratifiedKFold",
                "sklearn.preprocessing._label.LabelEncoder",
                "sklearn.preprocessing._target_encoder.TargetEncoder",
            }
        ),
    ),
    "linear": Family(
        SKLEARN,
        {"classification": pipeline(LogisticRegression), "regression": pipeline(Ridge)},
        types=frozenset(
            {
                "sklearn.linear_model._logistic.LogisticRegression",
                "sklearn.linear_model._ridge.Ridge",
            }
        ),
    ),
    "river_tree": Family(
        RIVER,
        # river's regression trees hold classes skops cannot write (`__slots__`)
        {"classification": _river_tree},
        {"seed": "0"},  # as gradient_boosting's random_state
        frozenset(
            {
                "builtins.bool",
                "builtins.set",
                "collections.defaultdict",
                "random.Random",
                "river.compose.select.Select",
                "river.drift.binary.hddm_a.HDDMA",
                "river.preprocessing.ordinal.OrdinalEncoder",
                "river.proba.gaussian.Gaussian",
                "river.stats.var.Var",
                "river.tree.hoeffding_adaptive_tree_classifier.HoeffdingAdaptiveTreeClassifier",
                "river.tree.nodes.hatc_nodes.AdaLeafClassifier",
                "river.tree.nodes.hatc_nodes.AdaNumBinaryBranchClass",
                "river.tree.splitter.gaussian_splitter.GaussianSplitter",
            }
        ),
    ),
    "river_linear": Family(
        RIVER,
        {
            "classification": _river(river_linear.LogisticRegression),
            "regression": _river(river_linear.LinearRegression),
        },
        types=frozenset(
            {
                "river.linear_model.lin_reg.LinearRegression",
                "river.linear_model.log_reg.LogisticRegression",
            }
        ),
    ),
}


def trusted_types() -> frozenset[str]:
    """Every type a model of any family may name: the artifact check's allow-list."""
    return frozenset().union(
        *(lib.types for lib in LIBRARIES), *(family.types for family in FAMILIES.values())
    )


def parameters(family: str, params: Mapping[str, str]) -> dict[str, str]:
    """The parameters a model of `family` is made with: its defaults, overridden by `params`."""
    if family not in FAMILIES:
        raise LearnerError(f"unknown model family {family!r}; one of {sorted(FAMILIES)}")
    return {**FAMILIES[family].defaults, **params}


def make(family: str, task: Task, columns: Columns, params: Mapping[str, str]) -> Any:
    """An untrained model of `family` for `task`."""
    chosen = parameters(family, params)
    if task not in FAMILIES[family].make:
        raise LearnerError(f"{family} does not do {task}; it does {sorted(FAMILIES[family].make)}")
    try:
        return FAMILIES[family].make[task](columns, _params(chosen))
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise LearnerError(f"{family} does not take parameters {dict(params)}: {exc}") from exc


def library(model: Any) -> Library:
    """The library a loaded model belongs to."""
    for found in LIBRARIES:
        if found.owns(model):
            return found
    raise LearnerError(f"no library in {[lib.name for lib in LIBRARIES]} scores a {type(model)}")


def fit(model: Any, task: Task, x: pd.DataFrame, labels: Sequence[Any]) -> Any:
    """Train `model` on `x` (from Columns.frame) and the labels, in row order."""
    try:
        return library(model).fit(model, task, x, _target(task, labels))
    except ValueError as exc:
        raise LearnerError(f"training failed: {exc}") from exc


def scores(model: Any, task: Task, x: pd.DataFrame) -> list[float]:
    """One score a row: the positive class's probability, or the predicted value."""
    return library(model).scores(model, task, x)


def row_scorer(model: Any, task: Task, columns: Columns) -> Rows:
    """`scores` of `columns.frame(rows)` for plain rows, without pandas: for serving."""
    return library(model).rows(model, task, columns)
