"""Alerts reach a real HTTP receiver: one call per alert however often its record is read,
retried after a 500, refused ones kept as dead letters, nothing sent twice after a restart."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tideline import catalog, dlq, kafka
from tideline.settings import Settings

from ...examples import example
from .running import Service, collect, produce, produce_signed, start_service

pytestmark = pytest.mark.integration


class Receiver(ThreadingHTTPServer):
    """Slack- and Alertmanager-style endpoints: the first call for an alert id answers 500,
    the next 200; /gone always answers 404."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: list[tuple[str, str, int, dict[str, Any]]] = []  # path, id, status, body
        self.seen: set[str] = set()
        self.lock = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def delivered(self) -> dict[str, int]:
        """Alert id to the number of calls that were answered 200."""
        with self.lock:
            found: dict[str, int] = {}
            for _, alert_id, status, _ in self.calls:
                found[alert_id] = found.get(alert_id, 0) + (status == 200)
            return found

    def wait(self, ids: set[str], timeout_s: float = 60) -> None:
        with self.lock:
            self.lock.wait_for(
                lambda: ids <= {i for _, i, s, _ in self.calls if s == 200}, timeout_s
            )
        assert ids <= set(self.delivered()), f"never delivered: {ids - set(self.delivered())}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        alert_id = self.headers["Idempotency-Key"]
        receiver = self.server
        with receiver.lock:
            if self.path == "/gone":
                status = 404
            else:
                status = 200 if alert_id in receiver.seen else 500
                receiver.seen.add(alert_id)
            receiver.calls.append((self.path, alert_id, status, body))
            receiver.lock.notify_all()
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _record(topic: str, **fields: Any) -> tuple[bytes, bytes]:
    bound = catalog.topic(topic).bind(Settings())
    record = example(bound.schema.parsed) | fields
    return bound.encode(record), record.get("model_name", "cards").encode()


def _drift(drift_id: str) -> tuple[bytes, bytes]:
    return _record("monitor.drift", drift_id=drift_id, model_name="cards", kind="concept")


def _update(update_id: str, action: str) -> tuple[bytes, bytes]:
    model = example(catalog.topic("models.updated").schema().parsed)["model"]
    return _record("models.updated", update_id=update_id, action=action, model=model)


async def _send(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    await produce(settings, topic, [v for v, _ in records], keys=[k for _, k in records])


async def test_each_alert_is_delivered_once_retried_after_a_500_and_kept_when_refused(
    settings: Settings, running: list[Service], receiver: Receiver
) -> None:
    await kafka.create_topics(settings)
    hooks = {
        "drift": {"url": f"{receiver.url}/slack"},
        "training_failed": {"url": f"{receiver.url}/slack"},
        "rolled_back": {"url": f"{receiver.url}/am", "format": "alertmanager"},
        "rejected": {"url": f"{receiver.url}/gone"},
    }
    env = {
        "TIDELINE_ALERTS_WEBHOOKS": json.dumps(hooks),
        "TIDELINE_ALERTS_BACKOFF_S": "0.05",
        "TIDELINE_ALERTS_OFFSET_RESET": "earliest",
    }
    alerts = start_service("alerts", settings, running, **env)
    # each drift record twice: read twice, sent once
    await _send(settings, "monitor.drift", [_drift("d1"), _drift("d2"), _drift("d1")])
    await _send(
        settings,
        "trainer.status",
        [
            _record("trainer.status", status_id="s1", state="training", model_name="cards"),
            _record("trainer.status", status_id="s2", state="failed", model_name="cards"),
        ],
    )
    await produce_signed(
        settings,
        [_update("u1", "rolled_back"), _update("u2", "promoted"), _update("u3", "rejected")],
    )
    await _send(settings, "models.updated", [_update("u4", "rolled_back")])  # a stranger's
    receiver.wait({"d1", "d2", "s2", "u1"})
    letters = dlq.TOPIC.bind(settings)
    refused = {
        r["stage"]: r
        for r in (letters.decode(m.value) for m in await collect(settings, "dead-letters", 2))
    }
    assert {r["service"] for r in refused.values()} == {"alerts"}
    assert "answered 404" in refused["delivery"]["error_message"]
    assert refused["signature"]["error_class"] == "unsigned"
    alerts.wait_for("tideline_records_consumed_total", 9, service="alerts")
    assert alerts.metric("tideline_alerts_repeats_total") == 1

    assert receiver.delivered() == {"d1": 1, "d2": 1, "s2": 1, "u1": 1, "u3": 0}
    calls = {(path, i): status for path, i, status, _ in receiver.calls}
    assert calls[("/slack", "d1")] == 200  # its first call was the 500, then once more
    assert sum(i == "d1" for _, i, _, _ in receiver.calls) == 2
    assert sum(i == "u3" for _, i, _, _ in receiver.calls) == 1  # a 404 is not retried
    bodies = {i: body for _, i, status, body in receiver.calls if status == 200}
    assert bodies["d1"]["text"].startswith(":warning: *concept drift on cards")
    (firing,) = bodies["u1"]["alerts"]
    assert (bodies["u1"]["version"], firing["fingerprint"]) == ("4", "u1")
    assert firing["labels"]["alertname"] == "TidelineRolledBack"

    # a restart resends nothing it had delivered: the next alert is the only call
    assert alerts.stop() == 0
    start_service("alerts", settings, running, **env)
    await _send(settings, "monitor.drift", [_drift("d3")])
    receiver.wait({"d3"})
    assert receiver.delivered() == {"d1": 1, "d2": 1, "s2": 1, "u1": 1, "u3": 0, "d3": 1}
