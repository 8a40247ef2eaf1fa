"""The console's fold of the loop's records, its health summary, and the terminal tail's lines,
without Kafka: what each record changes, bounded histories, bytes shown safely."""

import io
import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from tideline import distributions

from ops import tail
from ops.console import health
from ops.console.view import View, bin_labels, preview
from ops.scrape import parse

AT = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _version(number: int, aliases: list[str], state: str = "production") -> dict[str, Any]:
    return {
        "model_name": "cards",
        "version": number,
        "state": state,
        "aliases": aliases,
        "family": "gradient_boosting",
        "trigger": {"kind": "drift", "id": f"d{number}"},
        "metrics": {"accuracy": 0.95},
        "created_at": AT,
        "reference": [
            distributions.numeric("amount", [float(i) for i in range(100)]),
            distributions.categorical("channel", ["web"] * 60 + ["pos"] * 40),
        ],
    }


def _update(version: dict[str, Any], action: str, update_id: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "action": action,
        "model": version,
        "reason": "why",
        "decided_by": "gate",
        "at": AT,
    }


def _metrics(version: int, accuracy: float, t: int, champion: bool = True) -> dict[str, Any]:
    features = [
        {"feature": "amount", "kind": "numeric", "sample_size": 500, "psi": 0.3,
         "ks": None, "chi2": None, "p_value": None, "proportions": [0.1] * 10},
        {"feature": "channel", "kind": "categorical", "sample_size": 500, "psi": 0.05,
         "ks": None, "chi2": None, "p_value": None, "proportions": [0.5, 0.4, 0.1]},
    ]  # fmt: skip
    return {
        "model_name": "cards",
        "model_version": version,
        "window_start": t - 10_000,
        "window_end": t,
        "emitted_at": t,
        "volume": 400 if champion else 0,
        "labelled": 100,
        "label_delay_ms_p50": 3000.0,
        "scoring_latency_ms_p50": 4.0,
        "scoring_latency_ms_p99": 9.0,
        "performance": {"accuracy": accuracy},
        "features": features if champion else [],
        "prediction_drift": None,
        "psi_threshold": 0.25,
        "performance_floor": 0.85 if champion else None,
        "pending_joins": 7,
        "by_event_time": [
            {"start": t - 60_000, "width_ms": 60_000, "labelled": 100, "errors": 5.0}
        ],
    }


def test_metrics_become_points_histograms_and_event_time_totals() -> None:
    view = View()
    view.apply("models.updated", _update(_version(1, ["champion"]), "promoted", "u1"))
    changes = view.apply("monitor.metrics", _metrics(1, 0.95, 1_000_000))
    assert [c.kind for c in changes] == ["point", "event_time", "histograms"]
    point = changes[0].data
    assert (point["coverage"], point["floor"], point["psi"]["amount"]) == (0.25, 0.85, 0.3)
    amount, channel = changes[2].data["features"]
    assert amount["bins"][0].startswith("< ")
    assert len(amount["bins"]) == 10
    # the live window has a bin the reference lacks: categories training never saw
    assert channel["bins"] == ["pos", "web", "<unseen>"]
    assert channel["reference"] == [0.4, 0.6, 0.0]
    # labels of one event-time bucket come over many intervals: the console sums them
    view.apply("monitor.metrics", _metrics(1, 0.9, 1_010_000))
    (bucket,) = view.snapshot()["by_event_time"]["cards"][-1:]
    assert (bucket["labelled"], bucket["errors"]) == (100, 5.0)
    assert sum(b["labelled"] for b in view.snapshot()["by_event_time"]["cards"]) == 200


def test_a_challengers_metrics_are_a_point_with_no_drift() -> None:
    view = View()
    (point, _) = view.apply("monitor.metrics", _metrics(2, 0.9, 1, champion=False))
    assert (point.data["champion"], point.data["coverage"], point.data["psi"]) == (False, None, {})


def test_the_timeline_has_drift_training_and_every_transition_and_stays_bounded() -> None:
    view = View(items=3)
    drift = {
        "drift_id": "d1", "model_name": "cards", "model_version": 1, "kind": "concept",
        "detector": "adwin", "features": [], "severity": 0.2, "window_start": AT,
        "window_end": AT, "detected_at": AT, "details": {},
    }  # fmt: skip
    status = {
        "status_id": "s1", "model_name": "cards", "state": "failed",
        "trigger": {"kind": "drift", "id": "d1"}, "message": "TypeError: Sparse data",
        "details": {}, "at": AT,
    }  # fmt: skip
    view.apply("monitor.drift", drift)
    kinds = [c.kind for c in view.apply("trainer.status", status)]
    assert kinds == ["trainer", "timeline"]
    assert view.trainer["cards"]["message"] == "TypeError: Sparse data"
    view.apply("models.updated", _update(_version(2, ["champion"]), "promoted", "u2"))
    view.apply("models.updated", _update(_version(2, ["champion"]), "paused", "u3"))
    timeline = view.snapshot()["timeline"]
    assert [i["kind"] for i in timeline] == ["trainer", "registry", "registry"]  # the oldest went
    assert timeline[-1]["title"] == "automatic promotion paused"
    models = view.snapshot()["models"]["cards"]
    assert (models["paused"], models["champion"]) == (True, 2)


def test_dead_letters_show_text_as_text_and_bytes_as_hex() -> None:
    assert preview(b'{"event_id": 1}')["text"] == '{"event_id": 1}'
    binary = preview(b"\x00\xffnot json")
    assert (binary["text"], binary["hex"], binary["size"]) == (
        None,
        "00 ff 6e 6f 74 20 6a 73 6f 6e",
        10,
    )
    big = preview(b"x" * 100_000)
    assert (len(big["text"]), big["size"]) == (2048, 100_000)
    assert preview(None)["size"] == 0
    view = View(letters=2)
    for offset in range(3):
        view.apply("dead-letters", _letter(offset))
    snapshot = view.snapshot()
    assert [d["source"] for d in snapshot["dead_letters"]] == ["t/0@1", "t/0@2"]
    assert snapshot["dead_letter_counts"] == {"ingest|decode|UnicodeDecodeError": 3}
    assert len(snapshot["dead_letter_times"]) == 3


def _letter(offset: int) -> dict[str, Any]:
    return {
        "source_topic": "t", "source_partition": 0, "source_offset": offset,
        "source_timestamp": AT, "key": None, "value": b"\x00\xff", "headers": [],
        "stage": "decode", "rule": None, "error_class": "UnicodeDecodeError",
        "error_message": "neither Avro nor JSON", "service": "ingest", "failed_at": AT,
    }  # fmt: skip


def test_bin_labels_follow_the_reference() -> None:
    numeric = distributions.numeric("x", [1.0, 2.0, 3.0])
    assert bin_labels(numeric, len(numeric["edges"]) + 1)[-1].startswith("≥ ")
    assert bin_labels(distributions.numeric("x", []), 1) == ["all"]


SCRAPE = """
tideline_last_poll_timestamp_seconds{service="ingest"} 1000.0
tideline_records_consumed_total{service="ingest",topic="t.events.raw"} 600.0
tideline_consumer_lag{service="ingest",topic="t.events.raw",partition="1"} 5.0
tideline_consumer_lag{service="ingest",topic="t.events.raw",partition="0"} 2.0
tideline_dead_letters_total{service="ingest",topic="t.events.raw",stage="decode",reason="x"} 3.0
"""


def test_health_from_two_scrapes() -> None:
    before = parse(SCRAPE.replace("600.0", "400.0"), at=990.0)
    now = parse(SCRAPE, at=1000.5)
    found = health.summarize("ingest", "http://x", now, before)
    assert (found["state"], found["last_poll_age_s"], found["total_lag"]) == ("healthy", 0.5, 7)
    assert found["rate"] == 200 / 10.5
    assert [p["partition"] for p in found["lag"]] == [0, 1]
    assert found["dead_letters"] == 3
    stuck = health.summarize("ingest", "http://x", parse(SCRAPE, at=1100.0), None)
    assert (stuck["state"], stuck["rate"]) == ("stuck", None)
    assert health.summarize("ingest", "http://x", None, now)["state"] == "down"
    assert health.summarize("serving", "http://x", now, None)["state"] == "starting"


def test_tail_lines_never_wrap_when_piped_and_json_lines_parse() -> None:
    out = io.StringIO()
    piped = Console(file=out, soft_wrap=True, highlight=False, width=40)
    record = _update(_version(2, ["champion"]), "promoted", "u1") | {"reason": "a\nlong " * 20}
    piped.print(tail.render("models.updated", record))
    (line,) = out.getvalue().splitlines()
    assert "cards v2: promoted -> production" in line
    assert len(line) > 40
    parsed = json.loads(tail.as_json("dead-letters", _letter(1)))
    assert (parsed["kind"], parsed["record"]["value"]) == ("dead-letter", "00ff")
    assert tail.model_of("models.updated", record) == "cards"
    assert tail.model_of("dead-letters", _letter(1)) is None


async def test_a_feed_that_starts_again_ends_every_pages_stream() -> None:
    from tideline.settings import Settings

    from ops.console.feed import Feed
    from ops.console.settings import ConsoleSettings

    feed = Feed(Settings(), ConsoleSettings())
    feed.view.apply("dead-letters", _letter(1))
    feed.caught_up.set()
    first, queue = feed.open_page()
    assert json.loads(first)["data"]["dead_letter_counts"] == {
        "ingest|decode|UnicodeDecodeError": 1
    }
    feed._restart()
    assert (queue.get_nowait(), feed.pages, feed.caught_up.is_set()) == (None, set(), False)
    assert feed.view.snapshot()["dead_letters"] == []  # read again from the topics, not twice
