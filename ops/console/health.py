"""Each service's health from its Prometheus endpoint: up, last poll, throughput, lag.

`summarize` is pure: what one scrape and the one before it say.
"""

from typing import Any

from ops.scrape import Scrape

Record = dict[str, Any]
STALE_POLL_S = 30.0  # a service that has not polled Kafka for this long is stuck


def summarize(service: str, url: str, now: Scrape | None, before: Scrape | None) -> Record:
    """What the console shows of one service; `now` None: its endpoint did not answer."""
    if now is None:
        return {"service": service, "url": url, "up": False, "state": "down"}
    polled = now.total("tideline_last_poll_timestamp_seconds", service=service)
    age = now.at - polled if polled else None
    consumed = now.total("tideline_records_consumed_total", service=service)
    rate = None
    if before is not None and now.at > before.at:
        earlier = before.total("tideline_records_consumed_total", service=service)
        rate = max(0.0, consumed - earlier) / (now.at - before.at)
    lag = [
        {"topic": ls["topic"], "partition": int(ls["partition"]), "lag": int(v)}
        for ls, v in now.each("tideline_consumer_lag")
        if ls.get("service") == service
    ]
    state = "healthy"
    if age is None:
        state = "starting"  # up, but no poll yet (serving waits for a first champion)
    elif age > STALE_POLL_S:
        state = "stuck"
    return {
        "service": service,
        "url": url,
        "up": True,
        "state": state,
        "last_poll_age_s": age,
        "consumed": consumed,
        "rate": rate,
        "lag": sorted(lag, key=lambda p: (p["topic"], p["partition"])),
        "total_lag": sum(p["lag"] for p in lag),
        "dead_letters": now.total("tideline_dead_letters_total", service=service),
    }
