"""Model families as configuration: names, parameters, input frames, reference distributions."""

import gc
import io
import math
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import treelite.sklearn
from tideline import artifacts, distributions, learners, project
from tideline.evaluation import Task

from ops import synthetic

from ..projects import EXAMPLES, FAMILY_EXAMPLES, FAMILY_TASKS

CARDS = project.load(EXAMPLES[0])
COLUMNS = learners.Columns.of(CARDS)
TREELITE_GARBAGE = 6  # objects in cycles a treelite call leaves, as measured


def test_columns_follow_the_feature_types() -> None:
    assert COLUMNS.categorical == ["last_channel"]
    assert "amount" in COLUMNS.numeric
    frame = COLUMNS.frame([{"amount": 3, "last_channel": None}, {"amount": None}])
    assert math.isnan(frame["amount"][1])
    assert list(frame["last_channel"]) == [None, None]


def test_parameters_are_strings_typed_by_yaml_over_the_family_defaults() -> None:
    assert learners.parameters("gradient_boosting", {"max_iter": "5"}) == {
        "random_state": "0",
        "max_iter": "5",
    }
    model = learners.make("gradient_boosting", "classification", COLUMNS, {"max_iter": "5"})
    assert model.named_steps["model"].max_iter == 5


def test_unknown_families_and_parameters_are_refused_by_name() -> None:
    with pytest.raises(learners.LearnerError, match="unknown model family 'xgb'"):
        learners.make("xgb", "classification", COLUMNS, {})
    with pytest.raises(learners.LearnerError, match="does not take parameters"):
        learners.make("linear", "classification", COLUMNS, {"depth": "3"})
    with pytest.raises(learners.LearnerError, match="river_tree does not do regression"):
        learners.make("river_tree", "regression", COLUMNS, {})


def test_a_fitted_river_model_goes_on_learning_where_a_scikit_learn_one_starts_over() -> None:
    rows = _categorical_rows(10, 600, seed=4)
    x, labels = COLUMNS_KX.frame(rows), [_label("classification", r) for r in rows]
    for family in ("river_linear", "linear"):
        model = learners.make(family, "classification", COLUMNS_KX, {})
        learners.fit(model, "classification", x.iloc[:300], labels[:300])
        learners.fit(model, "classification", x.iloc[300:], labels[300:])
        assert learners.library(model).online == (family == "river_linear")
        if family == "river_linear":  # its scaler has counted all 600 rows, not the last 300
            assert learnt(model) == 600


def learnt(model: Any) -> int:
    """How many rows a river_linear model has learnt: what its imputer has counted."""
    return int(model.steps["StatImputer"].stats["x"].n)


def test_numeric_references_bin_by_deciles() -> None:
    reference = distributions.numeric("x", [float(i) for i in range(100)] + [math.nan])
    assert reference["sample_size"] == 100
    assert len(reference["edges"]) == 9
    assert reference["proportions"] == [0.1] * 10
    assert reference["quantiles"][0] == 0.0
    assert reference["quantiles"][-1] == 99.0
    assert distributions.numeric_bins(reference["edges"], [-5.0, 50.0, 1000.0]) == [
        1,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        1,
    ]


def test_categorical_references_pool_the_rare_and_name_the_missing() -> None:
    values = [f"c{i}" for i in range(25)] * 2 + [None] * 10
    reference = distributions.categorical("x", values)
    assert len(reference["categories"]) == distributions.TOP_CATEGORIES + 1
    assert reference["categories"][-1] == distributions.OTHER
    assert distributions.MISSING in reference["categories"]
    assert math.isclose(sum(reference["proportions"]), 1.0)
    assert distributions.categorical_bins(["a", distributions.OTHER], ["a", "b", "c"]) == [1, 2]


@pytest.mark.parametrize(("family", "path"), FAMILY_EXAMPLES)
def test_rows_score_without_pandas_as_through_the_frame(family: str, path: Path) -> None:
    definition = project.load(path)
    columns, task = learners.Columns.of(definition), definition.label.task
    events = synthetic.Generator(definition, entities=50, seed=3).stream(
        datetime(2026, 11, 24, tzinfo=UTC), 600, timedelta(seconds=5)
    )
    pairs = list(synthetic.labelled_vectors(definition, events, synthetic.Concept(definition, 7)))
    rows = [vector["values"] for vector, _ in pairs]
    labels = [label["payload"][definition.label.field] for _, label in pairs]
    model = learners.make(family, task, columns, {})
    learners.fit(model, task, columns.frame(rows), labels)
    numeric, category = columns.numeric[-1], columns.categorical[0]
    odd = [
        rows[0] | {numeric: None, category: None},  # missing values
        rows[1] | {numeric: "n/a", category: "fax"},  # not a number, an unknown category
        *rows[2:20],
    ]
    through_the_frame = learners.scores(model, task, columns.frame(odd))
    score_rows = learners.row_scorer(model, task, columns)
    trees = getattr(score_rows, "trees", None)
    assert (trees is not None) == (family == "gradient_boosting")
    gc.collect()
    gc.disable()
    try:
        one_by_one = [score_rows([row])[0] for row in odd]
        cyclic_garbage = gc.collect()
    finally:
        gc.enable()
    assert score_rows(odd) == pytest.approx(through_the_frame, abs=1e-12)
    assert one_by_one == pytest.approx(through_the_frame, abs=1e-12)
    assert score_rows([]) == []
    # Garbage in reference cycles waits for the collector, whose pause a request then
    # pays. scikit-learn and river leave none; treelite's ctypes calls leave six small
    # objects a call (numpy's data_as casts): with the services' collector thresholds, a
    # pause of about 5 ms every 8,000 requests (tideline.service.quiet_gc).
    assert cyclic_garbage <= (TREELITE_GARBAGE * len(odd) if trees else 0)


def test_trees_treelite_cannot_read_are_scored_by_scikit_learn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    events = synthetic.Generator(CARDS, entities=50, seed=3).stream(
        datetime(2026, 11, 24, tzinfo=UTC), 300, timedelta(seconds=5)
    )
    pairs = list(synthetic.labelled_vectors(CARDS, events, synthetic.Concept(CARDS, 7)))
    rows = [vector["values"] for vector, _ in pairs]
    labels = [label["payload"][CARDS.label.field] for _, label in pairs]
    model = learners.make("gradient_boosting", "classification", COLUMNS, {"max_iter": "20"})
    learners.fit(model, "classification", COLUMNS.frame(rows), labels)
    native = learners.PipelineRows(model, "classification", COLUMNS)

    def unreadable(estimator: object) -> None:
        raise NotImplementedError("a tree layout of a newer scikit-learn")

    monkeypatch.setattr(treelite.sklearn, "import_model", unreadable)
    fallback = learners.PipelineRows(model, "classification", COLUMNS)
    assert native.trees is not None
    assert fallback.trees is None
    assert "treelite cannot read the model: a tree layout" in caplog.text
    assert fallback(rows) == pytest.approx(native(rows), abs=1e-12)


CARDINALITIES = (2, 10, 1_000, 100_000)
COLUMNS_KX = learners.Columns(["x"], ["kind", "flag"])


def _categorical_rows(cardinality: int, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {"x": float(x), "kind": f"k{k}", "flag": bool(f)}
        for x, k, f in zip(
            rng.normal(size=n), rng.integers(0, cardinality, n), rng.integers(0, 2, n), strict=True
        )
    ]


def _label(task: Task, row: dict[str, Any]) -> Any:
    # the label is the category's parity, so a model that reads the category beats chance
    odd = int(str(row["kind"])[1:]) % 2 == 1
    return odd if task == "classification" else float(odd) + 0.1 * row["x"]


@pytest.mark.parametrize("cardinality", CARDINALITIES)
@pytest.mark.parametrize(("family", "task"), FAMILY_TASKS)
def test_every_family_takes_categories_of_any_cardinality(
    family: str, task: Task, cardinality: int
) -> None:
    columns = COLUMNS_KX
    rows = _categorical_rows(cardinality, 4_000, seed=1)
    model = learners.make(family, task, columns, {})
    learners.fit(model, task, columns.frame(rows), [_label(task, r) for r in rows])
    dumped = artifacts.dump(model)
    loaded = artifacts.load(dumped, artifacts.sha256(dumped))
    unseen: list[dict[str, Any]] = [
        {"x": 0.3, "kind": "never seen", "flag": None},
        {"x": None, "kind": None},
    ]
    tests = _categorical_rows(cardinality, 400, seed=2)
    through_the_frame = learners.scores(loaded, task, columns.frame([*unseen, *tests]))
    assert all(math.isfinite(s) for s in through_the_frame)
    rows_scores = learners.row_scorer(loaded, task, columns)([*unseen, *tests])
    assert rows_scores == pytest.approx(through_the_frame, abs=1e-9)
    if cardinality <= 10:  # enough rows a value to learn each one
        truth = [_label(task, r) for r in tests]
        scores = through_the_frame[len(unseen) :]
        if task == "classification":
            right = [(s >= 0.5) == t for s, t in zip(scores, truth, strict=True)]
            assert sum(right) / len(right) > 0.95
        else:
            errors = [abs(s - t) for s, t in zip(scores, truth, strict=True)]
            assert sum(errors) / len(errors) < 0.2


def test_a_river_tree_read_back_learns_on_exactly_as_the_one_written() -> None:
    rows = _categorical_rows(10, 3_000, seed=5)
    labels = [_label("classification", r) for r in rows]
    model = learners.make("river_tree", "classification", COLUMNS_KX, {})
    learners.fit(model, "classification", COLUMNS_KX.frame(rows[:2_000]), labels[:2_000])
    data = artifacts.dump(model)
    # skops writes an object again at every reference: the tree and its generator once
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = archive.read("schema.json")
    assert schema.count(b'"__class__": "Random"') == 1
    assert schema.count(b'"__class__": "HoeffdingAdaptiveTreeClassifier"') == 1
    again = artifacts.load(data, artifacts.sha256(data))
    assert all(getattr(o, a) is not None for o, a in learners._left_out(model))  # put back
    rest, test = COLUMNS_KX.frame(rows[2_000:]), COLUMNS_KX.frame(_categorical_rows(10, 300, 6))
    for each in (model, again):  # bootstrap draws and all: the same model after
        learners.fit(each, "classification", rest, labels[2_000:])
    assert learners.scores(again, "classification", test) == learners.scores(
        model, "classification", test
    )
