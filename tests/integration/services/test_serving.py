"""`tideline run serving` on the real broker and Redis: models swapped mid-stream, every event
scored once by exactly the version its prediction names, a forged champion refused;
request-time scoring over HTTP."""

import asyncio
import http.client
import json
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tideline import catalog, dlq, kafka, learners, project, serde
from tideline.models import ModelClient
from tideline.online_store import Entry, OnlineStore
from tideline.scoring import Scorer
from tideline.settings import Settings

from ops import control, launcher, synthetic

from ...examples import newer_version
from ...projects import EXAMPLES
from ..pki import make as make_pki
from .running import (
    WEAK,
    Service,
    collect,
    forge_champion,
    produce,
    publish_labelled,
    start_service,
)

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])
NAME = CARDS.name
PREDICTION = catalog.topic("predictions").schema()
# a stranger's bytes, a feature vector of another project (an unknown fingerprint), one
# a newer release of this project would write, and one as large as the topic admits
UNREADABLE = [
    b"\x00garbage",
    catalog.topic("features").schema().header + b"\x02",
    newer_version(CARDS.feature_schema),
    b"\xff" * (catalog.BROKER_MAX_MESSAGE_BYTES - 1024),
]


def _predictions(messages: list[Any]) -> list[dict[str, Any]]:
    decoder = serde.Decoder([PREDICTION])
    return [decoder.decode_as(PREDICTION, m.value) | {"_partition": m.partition} for m in messages]


async def _champion_and_challenger(
    settings: Settings, running: list[Service]
) -> tuple[datetime, list[dict[str, Any]]]:
    """v1 the champion and v2 the challenger, trained on 1,500 labelled vectors (returned)."""
    await kafka.create_topics(settings)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    history = await publish_labelled(settings, CARDS, 1500, start, synthetic.Concept(CARDS, seed=7))
    start_service("trainer", settings, running)
    start_service("registry", settings, running)
    first = await control.train(settings, control.TrainingOrder(NAME, "test"), timeout_s=120)
    assert first.decision is not None
    assert first.decision["action"] == "promoted"
    second = await control.train(
        settings, control.TrainingOrder(NAME, "test", params=WEAK), timeout_s=120
    )
    assert second.decision is not None
    assert second.decision["action"] == "challenger"
    return start, history


def _constant(history: list[dict[str, Any]]) -> Any:
    """A model of the project's linear family whose every score is the same: what a stranger
    would put in the champion's place."""
    columns = learners.Columns.of(CARDS)
    x = columns.frame([v["values"] for v in history])
    model = learners.make("linear", CARDS.label.task, columns, {})
    model = learners.fit(model, CARDS.label.task, x, [i % 2 for i in range(len(x))])
    model[-1].coef_[:] = 0.0
    assert len(set(learners.scores(model, CARDS.label.task, x))) == 1
    return model


def _segments(versions: list[int]) -> list[int]:
    """[1, 1, 2, 2, 1] -> [1, 2, 1]"""
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


async def test_hot_swap_scores_every_event_once_with_the_version_it_names(
    settings: Settings, running: list[Service]
) -> None:
    start, history = await _champion_and_challenger(settings, running)
    serving = start_service("serving", settings, running, TIDELINE_SERVING_HTTP_PORT="0")
    serving.wait_for("tideline_serving_predictions_total", 1500)  # the history, by v1

    # a stream in 30 chunks; v2 is promoted after the 10th and rolled back after the 20th
    concept, vectors = synthetic.Concept(CARDS, seed=7), []
    for chunk in range(30):
        at = start + timedelta(hours=1, seconds=chunk * 100)
        vectors += await publish_labelled(settings, CARDS, 100, at, concept, seed=100 + chunk)
        if chunk == 5:  # a stranger's champion, on a broker with no ACLs: refused
            v1 = (await ModelClient(settings).registry()).version(NAME, 1)
            forged = await forge_champion(settings, v1, _constant(history))
            serving.wait_for("tideline_model_updates_refused_total", forged)
        elif chunk == 10:
            await control.command(settings, "promote", NAME, 2, "test", "hot swap")
        elif chunk == 15:  # what serving cannot read, mid-stream: dead letters, and on it goes
            await produce(settings, "features", UNREADABLE, keys=[b"k"] * len(UNREADABLE))
        elif chunk == 20:
            await control.command(settings, "rollback", NAME, None, "test", "and back")
        await asyncio.sleep(0.1)
    total = 1500 + len(vectors)
    serving.wait_for("tideline_serving_predictions_total", total, role="champion")

    found = _predictions(await collect(settings, "predictions", total))
    served = [p for p in found if not p["shadow"]]
    by_event = Counter(p["event_id"] for p in served)
    assert len(by_event) == total  # every event scored...
    assert set(by_event.values()) == {1}  # ...exactly once
    assert {p["event_id"] for p in served} >= {v["event_id"] for v in vectors}

    # per partition, in order: v1, then v2, then v1 again, each swap once and for good (the
    # forged v101 never served: the genuine promotion after it was taken)
    per_partition: dict[int, list[int]] = defaultdict(list)
    for p in served:
        per_partition[p["_partition"]].append(p["model_version"])
    assert {tuple(_segments(v)) for v in per_partition.values()} == {(1, 2, 1)}
    shadow = [p for p in found if p["shadow"]]
    assert shadow
    assert {p["model_version"] for p in shadow} == {2}  # the challenger, before its promotion
    assert {p["event_id"] for p in shadow} >= {v["event_id"] for v in history}

    # each score is the named version's own, recomputed here from the vector
    registry = await ModelClient(settings).registry()
    client = ModelClient(settings)
    scorers = {
        n: Scorer(await client.load_version(registry.version(NAME, n)), CARDS) for n in (1, 2)
    }
    by_id = {v["event_id"]: v for v in vectors}
    checked = [p for p in found if p["event_id"] in by_id]
    for number, scorer in scorers.items():
        mine = [p for p in checked if p["model_version"] == number]
        expected = scorer.scores([by_id[p["event_id"]]["values"] for p in mine])
        assert [p["score"] for p in mine] == pytest.approx(expected, abs=1e-12)
    assert serving.metric("tideline_serving_swaps_total", role="champion") == 3  # not 4
    assert serving.metric("tideline_model_updates_refused_total", reason="unsigned") == 1
    assert serving.metric("tideline_model_updates_refused_total", reason="bad_signature") == 1
    letters = dlq.TOPIC.bind(settings)
    refused = [
        letters.decode(m.value) for m in await collect(settings, "dead-letters", len(UNREADABLE))
    ]
    assert sorted(r["value"] for r in refused) == sorted(UNREADABLE)
    assert {(r["service"], r["source_topic"]) for r in refused} == {
        ("serving", catalog.topic("features").full_name(settings))
    }


def _post(
    port: int,
    body: dict[str, Any],
    token: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{'http' if tls is None else 'https'}://127.0.0.1:{port}/score"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=tls) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        return dict(json.loads(reply.read()))


async def test_request_time_scoring_over_http(
    settings: Settings, running: list[Service], tmp_path: Path
) -> None:
    await _champion_and_challenger(settings, running)
    port = Service("serving", settings).metrics_port  # a free port
    serving = start_service("serving", settings, running, TIDELINE_SERVING_HTTP_PORT=str(port))
    serving.wait_for("tideline_serving_predictions_total", 1500)

    values = {
        "amount_log": 6.2,
        "hour": 13,
        "amount": 500.0,
        "tx_count_10m": 4,
        "amount_mean_1h": 120.0,
        "amount_max_1h": 500.0,
        "amount_sum_day": 900.0,
        "merchants_1h": 3,
        "countries_30m": 2,
        "last_channel": "web",
    }
    at = datetime.now(UTC)
    store = OnlineStore(settings, CARDS)
    store.write([Entry("card_id-http", "e-http", int(at.timestamp() * 1000), 0, values)])
    store.close()
    champion = Scorer(await ModelClient(settings).load(NAME), CARDS)

    status, body = _post(port, {"entity_id": "card_id-http"})
    assert status == 200, body
    assert (body["model_name"], body["model_version"]) == (NAME, 1)
    assert body["features"] == values
    assert body["score"] == pytest.approx(champion.scores([values])[0], abs=1e-12)
    assert body["predicted"] == champion.predicted(body["score"])
    assert datetime.fromisoformat(body["features_as_of"]) == at.replace(
        microsecond=at.microsecond // 1000 * 1000
    )

    status, body = _post(port, {"entity_id": "card_id-http", "features": {"amount": 45_000.0}})
    assert status == 200
    assert body["features"]["amount"] == 45_000.0
    assert body["score"] == pytest.approx(
        champion.scores([values | {"amount": 45_000.0}])[0], abs=1e-12
    )

    status, body = _post(port, {"entity_id": "card_id-http", "features": {"colour": "red"}})
    assert status == 422
    assert "unknown features ['colour']" in body["detail"]
    status, body = _post(port, {"entity": "no id"})
    assert status == 422  # FastAPI's validation: entity_id is required

    unknown = _post(port, {"entity_id": "card_id-never-seen"})[1]
    assert unknown["features_as_of"] is None  # no vector yet: the features' defaults

    assert _get(port, "/models") == {"model_name": NAME, "champion": 1, "challenger": 2}
    assert "/score" in _get(port, "/openapi.json")["paths"]

    # request-time scoring in a process of its own, over HTTPS behind a bearer token: the
    # same answers, no stream scored
    pki = make_pki(tmp_path / "pki")
    tls = ssl.create_default_context(cafile=pki / "ca.pem")
    own_port = Service("serving", settings).metrics_port
    only = start_service(
        "serving",
        settings,
        running,
        TIDELINE_SERVING_HTTP_PORT=str(own_port),
        TIDELINE_SERVING_STREAM="false",
        TIDELINE_SERVING_GROUP_ID=f"{settings.topic_prefix}serving.would-score-the-backlog",
        TIDELINE_SERVING_TOKEN="s3cret-token",
        TIDELINE_SERVING_TLS_CERTFILE=str(pki / "server.pem"),
        TIDELINE_SERVING_TLS_KEYFILE=str(pki / "server.key"),
    )
    only.wait_for("tideline_serving_model_version", 1, role="champion")  # v1 loaded
    for token in (None, "wrong", "s3cret-token-but-longer"):
        status, body = _post(own_port, {"entity_id": "card_id-http"}, token, tls)
        assert status == 401, body
    assert only.metric("tideline_serving_unauthorized_total") == 3
    with pytest.raises((ConnectionError, http.client.HTTPException)):  # plain HTTP to TLS
        _post(own_port, {"entity_id": "card_id-http"}, "s3cret-token")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _post(own_port, {"entity_id": "card_id-http"}, "s3cret-token", ssl.create_default_context())
    mine = _post(own_port, {"entity_id": "card_id-http"}, "s3cret-token", tls)[1]
    answers = [mine, _post(port, {"entity_id": "card_id-http"})[1]]
    assert answers[0]["score"] == answers[1]["score"]
    await asyncio.sleep(2)  # a streaming process scores the 1,500 waiting vectors in less
    assert only.metric("tideline_serving_predictions_total") == 0
    assert only.alive()


async def test_a_taken_http_port_stops_serving_with_the_address(settings: Settings) -> None:
    await kafka.create_topics(settings)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"TIDELINE_SERVING_HTTP_PORT": str(port)}
        proc = (
            launcher.Process("serving", settings, EXAMPLES[0], env, port=0)
            .start(subprocess.PIPE)
            .proc
        )
        assert proc is not None
        output, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode != 0
    assert f"error while attempting to bind on address ('127.0.0.1', {port})" in output.decode()
