"""A dead letter always fits its topic: the value cut, with its size and hash, when it would not."""

import hashlib

import pytest
from tideline import dlq
from tideline.settings import Settings

LETTERS = dlq.TOPIC.bind(Settings())


def _source(value: bytes) -> dlq.Source:
    return dlq.Source("t.events.raw", 2, 7, 1_700_000_000_000, b"card-1", value, (("h", b"v"),))


REFUSED = dlq.RejectionError("size", "RecordTooLarge", "too big")


def test_a_value_that_fits_is_kept_whole() -> None:
    value = b"\xff" * 10_000
    key, letter, headers = dlq.dead_letter(_source(value), REFUSED, "ingest", budget=20_000)
    record = LETTERS.decode(letter)
    assert record["value"] == value
    assert (record["source_topic"], record["source_partition"], record["source_offset"]) == (
        "t.events.raw",
        2,
        7,
    )
    assert key == b"t.events.raw/2/7"
    assert dlq.TRUNCATED_BYTES not in dict(headers)


@pytest.mark.parametrize("size", [20_000 - 7, 20_000, 1_000_000])
def test_a_value_over_the_budget_is_cut_with_its_size_and_hash(size: int) -> None:
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    _, letter, headers = dlq.dead_letter(_source(value), REFUSED, "ingest", budget=20_000)
    record, found = LETTERS.decode(letter), dict(headers)
    assert len(letter) < 20_000 + 1_000  # the budget and the letter's own context
    assert value.startswith(record["value"])
    assert int(found[dlq.TRUNCATED_BYTES]) == size
    assert found[dlq.TRUNCATED_SHA256].decode() == hashlib.sha256(value).hexdigest()


def test_the_default_budget_is_what_the_dead_letter_topic_admits() -> None:
    value = b"\x00" * (dlq.TOPIC.value_bytes + 1)
    _, letter, headers = dlq.dead_letter(_source(value), REFUSED, "ingest")
    assert len(letter) + sum(len(k) + len(v) for k, v in headers) <= (
        dlq.TOPIC.max_message_bytes or 0
    )
