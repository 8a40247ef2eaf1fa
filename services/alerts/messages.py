"""Which records are alerts, and the bodies webhooks get: pure, testable without Kafka.

An alert's `id` is the id of the record it comes from (the drift id, the trainer
status id, the registry update id), so a record read twice makes the same alert and
a receiver can tell a retry from a new alert; it travels as the Alertmanager
fingerprint and in an `Idempotency-Key` header.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.alerts.settings import Kind

Record = dict[str, Any]


@dataclass(frozen=True)
class Alert:
    id: str
    kind: Kind
    model: str
    version: int | None
    severity: str
    summary: str
    description: str
    at: datetime

    @property
    def labels(self) -> dict[str, str]:
        found = {"alertname": f"Tideline{self.kind.title().replace('_', '')}", "model": self.model}
        found |= {"kind": self.kind, "severity": self.severity}
        return found | ({} if self.version is None else {"version": str(self.version)})


def _at(value: datetime | int) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1000, UTC)


def alert(topic: str, record: Record) -> Alert | None:
    """The alert a record of `topic` (a catalog name) makes, or None."""
    if topic == "monitor.drift":
        features = f" on {', '.join(record['features'])}" if record["features"] else ""
        return Alert(
            record["drift_id"],
            "drift",
            record["model_name"],
            record["model_version"],
            "warning",
            f"{record['kind']} drift on {record['model_name']} v{record['model_version']}{features}",
            f"{record['detector']} confirmed it, severity {record['severity']:.3f}; the trainer"
            " retrains on its own.",
            _at(record["detected_at"]),
        )
    if topic == "trainer.status":
        if record["state"] != "failed":
            return None
        trigger = record["trigger"]
        return Alert(
            record["status_id"],
            "training_failed",
            record["model_name"],
            None,
            "critical",
            f"a training run of {record['model_name']} failed ({trigger['kind']} {trigger['id']})",
            record["message"],
            _at(record["at"]),
        )
    if topic == "models.updated":
        action, version = record["action"], record["model"]
        kind: Kind
        if action in ("rejected", "challenger"):
            kind, severity, what = "rejected", "warning", "rejected by the gate"
        elif action == "rolled_back":
            kind, severity, what = "rolled_back", "critical", "rolled back to"
        elif action == "promoted":
            kind, severity, what = "promoted", "info", "promoted"
        else:
            return None
        name, number = version["model_name"], version["version"]
        return Alert(
            record["update_id"],
            kind,
            name,
            number,
            severity,
            f"{name} v{number} {what}"
            + (f" by {record['decided_by']}" if record["decided_by"] != "gate" else ""),
            record["reason"],
            _at(record["at"]),
        )
    return None


def slack(alert: Alert) -> Record:
    """Slack's incoming-webhook body (Mattermost and Teams' Slack-compatible hooks take it too)."""
    icon = {"critical": ":red_circle:", "warning": ":warning:"}.get(
        alert.severity, ":information_source:"
    )
    return {
        "text": f"{icon} *{alert.summary}*\n{alert.description}",
        "tideline": {"id": alert.id, "kind": alert.kind, "labels": alert.labels},
    }


def alertmanager(alert: Alert, receiver: str = "tideline") -> Record:
    """The body Alertmanager posts to a webhook receiver (version 4), for one firing alert."""
    labels = alert.labels
    annotations = {"summary": alert.summary, "description": alert.description}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{labels["alertname"]}", model="{alert.model}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": receiver,
        "groupLabels": {"alertname": labels["alertname"], "model": alert.model},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": alert.at.isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": alert.id,
            }
        ],
    }
