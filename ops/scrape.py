"""One scrape of a Prometheus endpoint, and the sums an operator's tool asks of it."""

import time
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Scrape:
    at: float  # time.time() of the scrape
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def total(self, name: str, **labels: str) -> float:
        return sum(v for n, ls, v in self.samples if n == name and labels.items() <= ls.items())

    def each(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(ls, v) for n, ls, v in self.samples if n == name]


def parse(text: str, at: float) -> Scrape:
    return Scrape(
        at,
        [
            (s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ],
    )


def scrape(url: str, timeout_s: float = 2.0) -> Scrape | None:
    """One scrape of `url`; None when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    return parse(text, time.time())
