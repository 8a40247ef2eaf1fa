"""What the console shows, as a fold of the loop's records: pure, testable without Kafka.

`View.apply` takes one decoded record of a watched topic and returns the changes to
send to the pages that are open (`Change`: a kind and its data, JSON-ready); `snapshot`
is everything at once, for a page that has just opened. Histories are bounded, so a
console left open for weeks holds as much as one opened today.
"""

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tideline.registry import Registry

Record = dict[str, Any]
TEXT_PREVIEW = 2048  # bytes of a dead letter's original value shown


@dataclass(frozen=True)
class Change:
    kind: str  # point, timeline, models, trainer, histograms, dead_letter, health
    data: Any


def _ms(moment: datetime | int) -> int:
    return moment if isinstance(moment, int) else int(moment.timestamp() * 1000)


def preview(value: bytes | None) -> dict[str, Any]:
    """A dead letter's original bytes as an operator can read them: text where they are
    text, else hex; cut at TEXT_PREVIEW bytes, with the full size."""
    if value is None:
        return {"text": None, "hex": None, "size": 0}
    head = value[:TEXT_PREVIEW]
    try:
        text: str | None = head.decode()
        printable = text is not None and all(c.isprintable() or c in "\n\r\t" for c in text)
    except UnicodeDecodeError:
        text, printable = None, False
    return {
        "text": text if printable else None,
        "hex": None if printable else head.hex(" "),
        "size": len(value),
    }


def bin_labels(reference: Record, live_bins: int) -> list[str]:
    """The reference's bins as axis labels; a last bin the reference lacks holds unseen categories."""
    if reference["kind"] == "numeric":
        edges = [f"{e:.4g}" for e in reference["edges"]]
        if not edges:
            labels = ["all"]
        else:
            labels = [f"< {edges[0]}"]
            labels += [f"{a} to {b}" for a, b in itertools.pairwise(edges)]
            labels.append(f"≥ {edges[-1]}")
    else:
        labels = list(reference["categories"])
    return labels + ["<unseen>"] * max(0, live_bins - len(labels))


def point(record: Record) -> Record:
    """One tideline.MonitorMetrics record as a point of the per-model series."""
    volume, labelled = record["volume"], record["labelled"]
    return {
        "t": _ms(record["window_end"]),
        "model": record["model_name"],
        "version": record["model_version"],
        "champion": bool(record["features"]),  # only the champion's record has drift
        "performance": record["performance"],
        "volume": volume,
        "labelled": labelled,
        "coverage": min(1.0, labelled / volume) if volume else None,
        "label_delay_ms": record["label_delay_ms_p50"],
        "latency_p50_ms": record["scoring_latency_ms_p50"],
        "latency_p99_ms": record["scoring_latency_ms_p99"],
        "floor": record["performance_floor"],
        "psi_threshold": record["psi_threshold"],
        "pending": record["pending_joins"],
        "psi": {f["feature"]: f["psi"] for f in record["features"]},
        "prediction_psi": (record["prediction_drift"] or {}).get("psi"),
    }


def _version_summary(version: Record) -> Record:
    return {
        "model": version["model_name"],
        "version": version["version"],
        "state": version["state"],
        "aliases": version["aliases"],
        "family": version["family"],
        "trigger": version["trigger"],
        "metrics": version["metrics"],
        "created": _ms(version["created_at"]),
    }


@dataclass
class View:
    points: int = 5000  # metrics points kept per model (at 10 s, about 14 hours)
    items: int = 1000  # timeline entries kept
    letters: int = 50  # latest dead letters kept with their bytes
    registry: Registry = field(default_factory=Registry)
    series: dict[str, deque[Record]] = field(default_factory=dict)
    timeline: deque[Record] = field(default_factory=deque)
    trainer: dict[str, Record] = field(default_factory=dict)
    histograms: dict[str, list[Record]] = field(default_factory=dict)
    # model -> (version, bucket start ms) -> [labelled, errors], summed over intervals
    by_event_time: dict[str, dict[tuple[int, int], list[float]]] = field(default_factory=dict)
    dead_letters: deque[Record] = field(default_factory=deque)
    dead_letter_counts: dict[str, int] = field(default_factory=dict)  # "service|stage|reason"
    dead_letter_times: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=20_000))
    unreadable: dict[str, int] = field(default_factory=dict)  # topic -> records
    health: dict[str, Record] = field(default_factory=dict)

    def apply(self, topic: str, record: Record) -> list[Change]:
        """The changes one record of `topic` (a catalog name) makes."""
        if topic == "monitor.metrics":
            return self._metrics(record)
        if topic == "monitor.drift":
            return [self._item(self._drift_item(record))]
        if topic == "trainer.status":
            return self._status(record)
        if topic == "models.updated":
            return self._update(record)
        if topic == "dead-letters":
            return self._dead_letter(record)
        raise KeyError(f"the console does not read {topic}")

    def unreadable_record(self, topic: str, error: str) -> list[Change]:
        self.unreadable[topic] = self.unreadable.get(topic, 0) + 1
        return [Change("unreadable", dict(self.unreadable))]

    def set_health(self, health: dict[str, Record]) -> list[Change]:
        self.health = health
        return [Change("health", health)]

    def snapshot(self) -> Record:
        return {
            "series": {m: list(s) for m, s in self.series.items()},
            "timeline": list(self.timeline),
            "models": self._models(),
            "trainer": self.trainer,
            "histograms": self.histograms,
            "by_event_time": {m: _buckets(b.items()) for m, b in self.by_event_time.items()},
            "dead_letters": list(self.dead_letters),
            "dead_letter_counts": self.dead_letter_counts,
            "dead_letter_times": list(self.dead_letter_times),
            "unreadable": self.unreadable,
            "health": self.health,
        }

    def _metrics(self, record: Record) -> list[Change]:
        found = point(record)
        self.series.setdefault(found["model"], deque(maxlen=self.points)).append(found)
        changes = [Change("point", found)]
        if record["by_event_time"]:
            changes.append(
                self._event_time(found["model"], found["version"], record["by_event_time"])
            )
        if found["champion"]:
            histograms = self._histograms(record)
            if histograms:
                self.histograms[found["model"]] = histograms
                changes.append(
                    Change("histograms", {"model": found["model"], "features": histograms})
                )
        return changes

    def _event_time(self, model: str, version: int, found: list[Record]) -> Change:
        buckets = self.by_event_time.setdefault(model, {})
        touched = []
        for bucket in found:
            key = (version, _ms(bucket["start"]))
            sums = buckets.setdefault(key, [0, 0.0])
            sums[0] += bucket["labelled"]
            sums[1] += bucket["errors"]
            touched.append(key)
        while len(buckets) > self.points:  # the oldest buckets go first
            del buckets[min(buckets, key=lambda k: k[1])]
        return Change(
            "event_time",
            {"model": model, "buckets": _buckets((k, buckets[k]) for k in touched if k in buckets)},
        )

    def _histograms(self, record: Record) -> list[Record]:
        """Each feature's live window against the reference of the version it was judged on."""
        name, number = record["model_name"], record["model_version"]
        try:
            version = self.registry.version(name, number)
        except ValueError:
            return []  # its version's record is not read yet (or compacted away)
        references = {r["name"]: r for r in version["reference"]}
        found = []
        for drift in record["features"]:
            reference = references.get(drift["feature"])
            live = drift["proportions"]
            if reference is None or not live:
                continue
            expected = list(reference["proportions"])
            expected += [0.0] * (len(live) - len(expected))
            found.append(
                {
                    "feature": drift["feature"],
                    "kind": drift["kind"],
                    "bins": bin_labels(reference, len(live)),
                    "reference": expected,
                    "live": live,
                    "psi": drift["psi"],
                    "sample_size": drift["sample_size"],
                    "version": number,
                }
            )
        return found

    def _item(self, item: Record) -> Change:
        if len(self.timeline) == self.items:
            self.timeline.popleft()
        self.timeline.append(item)
        return Change("timeline", item)

    @staticmethod
    def _drift_item(record: Record) -> Record:
        features = f" on {', '.join(record['features'])}" if record["features"] else ""
        return {
            "t": _ms(record["detected_at"]),
            "kind": "drift",
            "model": record["model_name"],
            "version": record["model_version"],
            "title": f"{record['kind']} drift ({record['detector']}){features}",
            "detail": f"severity {record['severity']:.3f}; id {record['drift_id']}",
            "id": record["drift_id"],
        }

    def _status(self, record: Record) -> list[Change]:
        name = record["model_name"]
        status = {
            "t": _ms(record["at"]),
            "model": name,
            "state": record["state"],
            "trigger": record["trigger"],
            "message": record["message"],
            "details": record["details"],
        }
        self.trainer[name] = status
        item = {
            "t": status["t"],
            "kind": "trainer",
            "model": name,
            "version": None,
            "title": f"trainer {record['state']} ({record['trigger']['kind']})",
            "detail": record["message"],
            "id": record["status_id"],
        }
        return [Change("trainer", status), self._item(item)]

    def _update(self, record: Record) -> list[Change]:
        self.registry.apply(record)
        version = record["model"]
        item = {
            "t": _ms(record["at"]),
            "kind": "registry",
            "model": version["model_name"],
            "version": version["version"],
            "action": record["action"],
            "title": _update_title(record),
            "detail": f"{record['reason']} (by {record['decided_by']})",
            "trigger": version["trigger"],
            "id": record["update_id"],
        }
        return [Change("models", self._models()), self._item(item)]

    def _models(self) -> Record:
        return {
            name: {
                "paused": model.paused,
                "champion": (self.registry.champion(name) or {}).get("version"),
                "challenger": (self.registry.challenger(name) or {}).get("version"),
                "versions": [_version_summary(model.versions[n]) for n in sorted(model.versions)],
            }
            for name, model in sorted(self.registry.models.items())
        }

    def _dead_letter(self, record: Record) -> list[Change]:
        key = f"{record['service']}|{record['stage']}|{record['rule'] or record['error_class']}"
        self.dead_letter_counts[key] = self.dead_letter_counts.get(key, 0) + 1
        letter = {
            "t": _ms(record["failed_at"]),
            "service": record["service"],
            "source": f"{record['source_topic']}/{record['source_partition']}@{record['source_offset']}",
            "stage": record["stage"],
            "rule": record["rule"],
            "error_class": record["error_class"],
            "error_message": record["error_message"],
            "headers": {h["key"]: preview(h["value"])["text"] for h in record["headers"]},
            "value": preview(record["value"]),
        }
        if len(self.dead_letters) == self.letters:
            self.dead_letters.popleft()
        self.dead_letters.append(letter)
        self.dead_letter_times.append((letter["t"], key))  # the rates' data: times only
        return [
            Change("dead_letter", {"letter": letter, "key": key, "counts": self.dead_letter_counts})
        ]


def _buckets(items: Iterable[tuple[tuple[int, int], list[float]]]) -> list[Record]:
    return [
        {"version": version, "start": start, "labelled": int(n), "errors": errors}
        for (version, start), (n, errors) in items
    ]


def _update_title(record: Record) -> str:
    version = record["model"]
    if record["action"] in ("paused", "resumed"):
        return f"automatic promotion {record['action']}"
    return f"v{version['version']} {record['action']} → {version['state']}"
