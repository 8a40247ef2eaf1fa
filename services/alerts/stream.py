"""The Kafka side of the alerts service: the loop's topics in, webhook calls out.

A record's alert is delivered before its offset is committed, so an alert is never
lost; one that no call delivers goes to the dead-letter topic (stage `delivery`), to
be replayed once the receiver is back. Ids already delivered are remembered, so a
batch redone after a rebalance or a restart's last uncommitted batch is not sent twice
(by this process; the `Idempotency-Key` header lets a receiver drop the rare repeat).
"""

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tideline import catalog, dlq, service, signing, streams
from tideline.errors import DecodeError

from services.alerts import messages, metrics
from services.alerts.messages import Alert
from services.alerts.settings import AlertsSettings, Webhook

log = logging.getLogger(__name__)

TOPICS = tuple(map(catalog.topic, ("monitor.drift", "trainer.status", "models.updated")))
REMEMBERED = 100_000  # delivered alert ids kept, oldest forgotten first


class DeliveryError(Exception):
    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def post(hook: Webhook, alert: Alert, timeout_s: float) -> None:
    """One call; DeliveryError says whether another may succeed."""
    body = messages.slack(alert) if hook.format == "slack" else messages.alertmanager(alert)
    request = urllib.request.Request(
        hook.url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": alert.id},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:  # a 4xx other than 429 will not get better
        raise DeliveryError(
            f"{hook.url} answered {exc.code}", exc.code >= 500 or exc.code == 429
        ) from exc
    except OSError as exc:
        raise DeliveryError(f"{hook.url}: {exc}", retry=True) from exc


class Notifier:
    def __init__(self, context: service.Context[AlertsSettings]) -> None:
        self.own = context.own
        bound = [(t.name, context.topic(t)) for t in TOPICS]
        self.topics = {topic.name: (name, topic) for name, topic in bound}  # full name: both
        self.delivered: OrderedDict[str, None] = OrderedDict()
        self.verifier = signing.Verifier(context.settings)

    async def handle(self, batch: streams.Messages) -> streams.Outcome:
        outcome = streams.Outcome()
        for message in batch:
            name, topic = self.topics[message.topic]
            try:
                if name == "models.updated":  # a forged promotion must not page anybody
                    self.verifier.verify(message.key, message.value, message.headers)
                found = messages.alert(name, topic.decode(message.value))
            except signing.SignatureError as exc:
                refusal = dlq.RejectionError("signature", exc.reason, str(exc))
                outcome.rejected.append((dlq.Source.of(message), refusal))
                continue
            except DecodeError as exc:
                outcome.rejected.append(
                    (dlq.Source.of(message), dlq.RejectionError.undecodable(exc))
                )
                continue
            hook = None if found is None else self.own.webhooks.get(found.kind)
            if found is None or hook is None:
                continue
            if found.id in self.delivered:
                metrics.REPEATS.inc()
                continue
            try:
                await self.deliver(hook, found)
            except DeliveryError as exc:
                metrics.FAILED.labels(found.kind).inc()
                log.error("alert %s not delivered: %s", found.id, exc)
                refusal = dlq.RejectionError("delivery", "DeliveryError", str(exc))
                outcome.rejected.append((dlq.Source.of(message), refusal))
                continue
            metrics.SENT.labels(found.model, found.kind).inc()
            self.delivered[found.id] = None
            if len(self.delivered) > REMEMBERED:
                self.delivered.popitem(last=False)
        return outcome

    async def deliver(self, hook: Webhook, alert: Alert) -> None:
        wait = self.own.backoff_s
        for attempt in range(1, self.own.attempts + 1):
            try:
                await asyncio.to_thread(post, hook, alert, self.own.timeout_s)
                log.info("alert %s (%s) sent: %s", alert.id, alert.kind, alert.summary)
                return
            except DeliveryError as exc:
                if not exc.retry or attempt == self.own.attempts:
                    raise
                metrics.RETRIES.labels(alert.kind).inc()
                log.warning("alert %s: %s; again in %.1f s", alert.id, exc, wait)
            await asyncio.sleep(wait)
            wait *= 2


@asynccontextmanager
async def job(context: service.Context[AlertsSettings]) -> AsyncIterator[service.Job]:
    kinds = ", ".join(context.own.webhooks) or "none: set TIDELINE_ALERTS_WEBHOOKS"
    log.info("alerting on %s", kinds)
    yield service.Job(Notifier(context).handle, max_records=100)
