"""Drop repeated ids: the last ids written, however old their event times."""

from collections import OrderedDict


class Deduplicator:
    """Remembers the last `capacity` ids it saw (written or re-learned), each with the
    value written last (a label's digest; events have none); forgets the oldest first.
    Counted in records, not in event time: a backfill of last year's events is
    deduplicated like today's."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def last(self, event_id: str) -> str | None:
        """The value written last for `event_id`, if it is among the last `capacity`."""
        return self._seen.get(event_id)

    def first_time(self, event_id: str, value: str = "") -> bool:
        """False for a repeat: `event_id` among the last `capacity`, its last value this
        one; else True, and `value` becomes its last."""
        if self._seen.get(event_id) == value:
            return False
        self._seen.pop(event_id, None)
        self._seen[event_id] = value
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True
